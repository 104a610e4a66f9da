"""What a saved model records about where it came from: ved's version, the commit, the date, the data."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

from .errors import is_number, shown, shown_value

VERSION = "0.1.0"  # as pyproject.toml's; a test keeps the two equal
DEFAULT_MODEL = "cvae-mixed"  # the best shipped generator: every caption family; see docs/conditional-vae.md
WEIGHTS_DIR = Path(__file__).parent / "weights"  # the shipped models, each a folder


def shipped_models() -> list[str]:
    """Names of the generators shipped in the package (the judge is not one). Here, without torch:
    `ved models` lists them and draws nothing."""
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "config.json").exists() and p.name != "judge")


def commit() -> str | None:
    """The git commit of the source tree ved runs from, if it runs from a checkout (a wheel has none)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cache_dir() -> Path:
    """ved's cache folder (MNIST, the test-split ledger): $VED_CACHE, or the system's cache folder."""
    if os.environ.get("VED_CACHE"):
        return Path(os.environ["VED_CACHE"])
    import pooch

    return Path(pooch.os_cache("ved"))


def provenance(mnist_sha256: str) -> dict:
    """The [provenance] table a training run writes into its config.json and weights' metadata."""
    return {
        "ved": VERSION,
        "commit": commit(),
        "trained": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mnist_sha256": mnist_sha256,
    }


# [provenance], as about.provenance and `ved reproduce --ship` write it: every field that `ved models`
# and the report read, by type, so that a folder from anywhere cannot feed them another
PROVENANCE_TEXT = {"ved": 40, "commit": 64, "trained": 40, "mnist_sha256": 64}
HEADLINE = {  # the shipped models' headline metrics (report.headline)
    "test_accuracy": (0.0, 1.0),
    "test_fd_judge": (0.0, 1e6),
    "test_fjd": (0.0, 1e6),  # test_fd_judge's name in ved 0.1, read for one release
    "test_diversity": (0.0, 1e3),
    "train_seconds": (0.0, 1e9),
}


def check_provenance(table, families: tuple[str, ...], error: type[Exception] = ValueError) -> dict:
    """A folder's [provenance], every field by type and range (`families`: the caption families
    there are); `error` in one line otherwise."""
    where = "[provenance]"
    if not isinstance(table, dict):
        raise error(f"{where} must be a table, got {shown_value(table)}")
    out = {}
    for key, value in table.items():
        if key in PROVENANCE_TEXT:
            if not (value is None or isinstance(value, str) and len(value) <= PROVENANCE_TEXT[key]):
                raise error(
                    f"{where} {key} = {shown_value(value)}; allowed: text of at most "
                    f"{PROVENANCE_TEXT[key]} characters"
                )
            out[key] = value
        elif key == "metrics":
            out[key] = _check_headline(value, families, error)
        else:
            raise error(
                f"unknown key '{shown(key, 40)}' in {where}; "
                f"allowed: {', '.join([*PROVENANCE_TEXT, 'metrics'])}"
            )
    return out


def _check_headline(metrics, families, error) -> dict:
    where = "[provenance] metrics"
    if not isinstance(metrics, dict):
        raise error(f"{where} must be a table, got {shown_value(metrics)}")
    for key, value in metrics.items():
        if key == "families":
            ok = isinstance(value, list) and 0 < len(value) <= len(families)
            if not ok or not all(v in families for v in value):
                raise error(f"{where} families = {shown_value(value)}; allowed: a list of {families}")
        elif key in HEADLINE:
            low, high = HEADLINE[key]
            if not is_number(value, low, high):
                raise error(
                    f"{where} {key} = {shown_value(value)}; allowed: a number from {low:g} to {high:g}"
                )
        else:
            raise error(
                f"unknown key '{shown(key, 40)}' in {where}; allowed: families, {', '.join(HEADLINE)}"
            )
    out = dict(metrics)
    if "test_fjd" in out:
        out.setdefault("test_fd_judge", out.pop("test_fjd"))
    return out
