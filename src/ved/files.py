"""Reading and writing files safely. No torch here: the data and caption commands start without it.

Every file ved reads that a user can hand it goes through `read_bytes` (a size cap that holds for
pipes and devices too: it reads at most the cap plus one byte) and, for JSON and TOML, through
`parse_json` / `parse_toml` (a nesting cap, so that no file can end in a RecursionError). Writes
are atomic: a reader sees the old file or the new one, and a failed write names its file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import VedError, one_line, shown

UMASK = os.umask(0)
os.umask(UMASK)

MAX_DEPTH = 32  # tables and lists inside each other; ved's own files nest 5 deep at most
MAX_CONFIG_BYTES = 1 << 20  # a config, TOML or config.json: ved's are a few KB


def read_bytes(path, limit: int, what: str = "", error: type[Exception] = VedError) -> bytes:
    """The bytes of a file, a pipe or a device, refused in one line past `limit` bytes: `what`
    names it in the message (default: its path in quotes)."""
    path = Path(path)
    what = what or f"'{shown(path, 200)}'"
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{what} not found") from None
    except IsADirectoryError:
        raise error(f"{what} is a folder; give a file") from None
    except OSError as e:
        raise error(f"{what} cannot be read ({e.strerror or one_line(e)})") from None
    if len(data) > limit:
        raise error(f"{what} is over {_size(limit)}; a ved file of this kind is smaller")
    return data


def read_text(path, limit: int, what: str = "", error: type[Exception] = VedError) -> str:
    """`read_bytes`, decoded as UTF-8 (refused in one line otherwise)."""
    what = what or f"'{shown(path, 200)}'"
    try:
        return read_bytes(path, limit, what, error).decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} is not UTF-8 text") from None


def parse_json(text: str | bytes, what: str, error: type[Exception] = VedError):
    """JSON nested at most MAX_DEPTH deep; `error` in one line naming `what` otherwise."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise error(f"{what} is nested too deep; allowed: {MAX_DEPTH} levels") from None
    except ValueError as e:  # not JSON, not UTF-8, an integer of over 4,300 digits
        raise error(f"{what} is not valid JSON ({shown(one_line(e), 80)})") from None
    check_depth(value, what, error)
    return value


def parse_toml(text: str, what: str, error: type[Exception] = VedError) -> dict:
    """TOML nested at most MAX_DEPTH deep; `error` in one line naming `what` otherwise."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise error(f"{what} is nested too deep; allowed: {MAX_DEPTH} levels") from None
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise error(f"{what} is not valid TOML: {shown(one_line(e), 120)}") from None
    check_depth(value, what, error)
    return value


def check_depth(value, what: str, error: type[Exception] = VedError) -> None:
    """Refuse a value whose lists and dicts nest deeper than MAX_DEPTH (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise error(f"{what} is nested too deep; allowed: {MAX_DEPTH} levels")
            stack += [(v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)]


def _size(limit: int) -> str:
    return f"{limit >> 20} MB" if limit >= 1 << 20 else f"{limit >> 10} KB"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: a reader sees the old file or the new one.
    A failed write (a full disk) leaves no temp file and names the file it was writing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; keep the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
