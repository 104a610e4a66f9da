"""The errors ved raises for input it refuses. Each message is one line naming what was wrong and
what is allowed; the CLI prints it as it is (exit 2), the server sends it with a 4xx."""

import math
import unicodedata


class VedError(ValueError):
    """Input ved refuses: a caption, an argument, a model folder, a config, a run folder."""


class ConfigError(VedError):
    """A config file or value ved refuses (a key, its type or range, a model it cannot build)."""


def one_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def shown(text, limit: int = 100) -> str:
    """User input as an error message may repeat it: one line, at most `limit` characters, and
    printable whatever it holds: a lone surrogate cannot be encoded, so it would break the message,
    and a control or format character (ESC, BEL, a bidi override) would act on the terminal, so each
    is shown escaped (`\\x1b`)."""
    text = " ".join(str(text)[: 4 * limit].split()).encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(_escaped(ch) if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escaped(ch: str) -> str:
    return ch.encode("unicode_escape").decode("ascii")


def shown_value(value, limit: int = 60) -> str:
    """A config or argument value as Python writes it, shortened as `shown` does."""
    return shown(repr(value), limit)


def parsed_number(text: str) -> int | float | None:
    """A number typed on the command line: an int if it is whole digits, else a float; None if it is
    neither (the one place ved reads a number from text, so its callers catch nothing)."""
    try:
        return int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:  # not a number, or digits int() refuses (superscripts)
        return None


def is_whole(value, low: int, high: int) -> bool:
    """A Python int (not a bool, which is one too) from low to high."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_number(value, low: float = -math.inf, high: float = math.inf) -> bool:
    """A finite int or float (not a bool) from low to high."""
    real = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return real and low <= value <= high
