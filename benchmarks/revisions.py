"""Run a benchmark on the code of another git revision beside the current code, on one machine.

Speed claims are ratios measured side by side: `checkout(REV)` gives a temporary git worktree of
REV, and `env_for(tree)` the environment in which `python -m ved` runs that tree's code (its
shipped weights included) with the current virtual environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def checkout(rev: str):
    """A detached worktree of `rev` for the duration; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="ved-rev-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(folder), rev],
        check=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False)


def env_for(tree: Path | None) -> dict:
    """The environment that runs `tree`'s ved (None: the current checkout's)."""
    src = (tree or ROOT) / "src"
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}


def describe(rev: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", rev], capture_output=True, text=True
    )
    return done.stdout.strip()[:80]


@contextlib.contextmanager
def nothing():
    """What `checkout` gives when there is no revision to compare with."""
    yield None


def alternate(against: str | None, rounds: int, measure, result: dict) -> dict[str, list]:
    """`measure(env)` of the current code, and of `against` when given (its description goes into
    `result`), `rounds` times each, the codes taking turns so that a machine's drift hits both."""
    with checkout(against) if against else nothing() as tree:
        codes = {"current": env_for(None)}
        if against:
            codes[against] = env_for(tree)
            result["revision"] = describe(against)
        runs = {name: [] for name in codes}
        for _ in range(rounds):
            for name, env in codes.items():
                runs[name].append(measure(env))
    return runs


def add_options(parser, what: str) -> None:
    """The options every side-by-side benchmark takes."""
    parser.add_argument("--against", metavar="REV", help=f"also {what} of this git revision, and compare")
    parser.add_argument("--json", help="write the numbers here too")


def machine() -> dict:
    """What a figure was measured on, to print beside it (an absolute figure is true of one machine)."""
    import torch

    about = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    about["torch"] = torch.__version__
    if torch.cuda.is_available():
        about["gpu"] = torch.cuda.get_device_name()
    return about


def report(result: dict, path: str | None) -> None:
    """Print the result as JSON, and write it to `path` too when given."""
    print(json.dumps(result, indent=2))
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
