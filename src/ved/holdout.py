"""The test split is read by final reports only.

Test images (`MNIST.split("test")`) and test captions (`captions.caption_pool(..., "test")`) can be
read only inside `final_report()`. The commands that report (`ved evaluate`, the evaluate and draw
stages of `ved reproduce`, the judge's last line) enter it; training, early stopping and the
experiments that choose settings never do, so a read of the test split from them raises
`TestSplitError` instead of quietly tuning on it. `train()` also runs under `sealed()`, which closes
the gate even when its caller opened it.

Every opening that reads the test split appends one line to a ledger (the date, the commit, the
command and what was read), so that a reader sees how often test figures were looked at: `ved
reproduce` keeps OUT/test-split-ledger.md (docs/results/ holds the study's), anything else the one
in ved's cache folder, or the file $VED_TEST_LEDGER names.
"""

from __future__ import annotations

import datetime
import os
import shlex
import sys
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from . import about
from .errors import VedError

_open = ContextVar("ved_test_split_open", default=False)
_opening = ContextVar("ved_test_split_opening", default=None)  # this opening: its ledger, and if written
LEDGER = "test-split-ledger.md"
LEDGER_HEADER = (
    "# Test-split ledger\n\nEach line is one opening of the test split that read it (ved.holdout): "
    "when, at which commit, by which command, and what it read.\n\n"
)


class TestSplitError(VedError):
    """A read of test images or test captions outside a final report."""

    __test__ = False  # pytest: a class named Test* here is not a test


@contextmanager
def _gate(is_open: bool):
    token = _open.set(is_open)
    try:
        yield
    finally:
        _open.reset(token)


@contextmanager
def final_report(what: str = "", ledger: Path | None = None):
    """Open the test split to the code inside: a report of finished models, never a choice. The
    first read inside appends a line to `ledger` (default: default_ledger()) saying `what` was read
    (default: what the read names)."""
    token = _opening.set({"what": what, "ledger": ledger, "written": False})
    try:
        with _gate(True):
            yield
    finally:
        _opening.reset(token)


def sealed():
    """Close the test split to the code inside, whatever the caller opened (training runs here)."""
    return _gate(False)


def is_open() -> bool:
    return _open.get()


def require(what: str) -> None:
    """Refuse a read of the test split (`what`: the thing read) outside final_report(); inside, the
    opening's first read is written to its ledger."""
    if not _open.get():
        raise TestSplitError(
            f"{what} belong to the test split, which only a final report reads (inside "
            "ved.holdout.final_report()); choose settings, epochs and runs on the validation split"
        )
    opening = _opening.get()
    if opening is not None and not opening["written"]:
        opening["written"] = True
        record(opening["ledger"] or default_ledger(), opening["what"] or what)


def default_ledger() -> Path:
    return Path(os.environ.get("VED_TEST_LEDGER") or about.cache_dir() / LEDGER)


def record(ledger: Path, what: str) -> None:
    """Append one line to the ledger (created with its heading): one write of an appending file, so
    lines of processes that share it never interleave. A ledger that cannot be written is a warning,
    not a lost report."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    program = "ved" if program == "__main__.py" else program  # python -m ved
    command = shlex.join([program, *sys.argv[1:]])[:300]
    line = f"- {when}, commit {(about.commit() or 'unknown')[:12]}: `{command}`: {what}\n"
    try:
        Path(ledger).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            text = (LEDGER_HEADER if os.fstat(fd).st_size == 0 else "") + line
            os.write(fd, text.encode("utf-8", "backslashreplace"))
        finally:
            os.close(fd)
    except OSError as e:
        warnings.warn(f"the test-split ledger {ledger} could not be written: {e}", stacklevel=3)
