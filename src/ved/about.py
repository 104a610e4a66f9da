"""What a saved model records about where it came from: ved's version, the commit, the date, the data."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

VERSION = "0.1.0"  # as pyproject.toml's; a test keeps the two equal
DEFAULT_MODEL = "cvae-mixed"  # the best shipped generator: every caption family; see docs/conditional-vae.md


def commit() -> str | None:
    """The git commit of the source tree ved runs from, if it runs from a checkout (a wheel has none)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(mnist_sha256: str) -> dict:
    """The [provenance] table a training run writes into its config.json and weights' metadata."""
    return {
        "ved": VERSION,
        "commit": commit(),
        "trained": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mnist_sha256": mnist_sha256,
    }
