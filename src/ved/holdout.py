"""The test split is read by final reports only.

Test images (`MNIST.split("test")`) and test captions (`captions.caption_pool(..., "test")`) can be
read only inside `final_report()`. The commands that report (`ved evaluate`, the evaluate and draw
stages of `ved reproduce`, the judge's last line) enter it; training, early stopping and the
experiments that choose settings never do, so a read of the test split from them raises
`TestSplitError` instead of quietly tuning on it. `train()` also runs under `sealed()`, which closes
the gate even when its caller opened it.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from .errors import VedError

_open = ContextVar("ved_test_split_open", default=False)


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


def final_report():
    """Open the test split to the code inside: a report of finished models, never a choice."""
    return _gate(True)


def sealed():
    """Close the test split to the code inside, whatever the caller opened (training runs here)."""
    return _gate(False)


def is_open() -> bool:
    return _open.get()


def require(what: str) -> None:
    """Refuse a read of the test split (`what`: the thing read) outside final_report()."""
    if not _open.get():
        raise TestSplitError(
            f"{what} belong to the test split, which only a final report reads (inside "
            "ved.holdout.final_report()); choose settings, epochs and runs on the validation split"
        )
