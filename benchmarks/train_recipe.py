"""Training a shipped recipe (the default model's unless told): the current code beside another
revision, on one machine.

    python benchmarks/train_recipe.py                        # cvae-mixed as shipped (~15 min on 2 cores)
    python benchmarks/train_recipe.py --against HEAD~3       # that revision too, and the ratio
    python benchmarks/train_recipe.py --epochs 2 --rounds 2  # a shorter look, each code twice
    python benchmarks/train_recipe.py --device cuda          # on a GPU

Each measurement is one `ved train` process (that revision's code and config, the current virtual
environment) on the whole training set. The trainer's own clock gives the seconds of the first
epoch (with the caption side's fit), of each later epoch and of the whole run (with what the model
does after its last epoch); the judged probe after each epoch is outside that clock. A faster recipe
counts only at equal quality, so the last epoch's validation loss and probe accuracy are printed
beside the seconds. Rounds alternate between the codes so that a machine's drift hits both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import revisions

from ved import checkpoint


def measure(env: dict, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="ved-train-") as folder:
        command = [sys.executable, "-m", "ved", "train", "--config", args.config, "--out", folder]
        command += ["--device", args.device, "--quiet"]
        if args.epochs:
            command += ["--epochs", str(args.epochs)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
            sys.exit(f"train_recipe: the run failed: {lines[-1]}")
        rows = [json.loads(line) for line in (Path(folder) / "metrics.jsonl").read_text().splitlines()]
        state = checkpoint.load_train_state(Path(folder) / "last")["state"]
    seconds = [row["seconds"] for row in rows]
    later = [b - a for a, b in zip(seconds, seconds[1:])]
    return {
        "epochs": len(rows),
        "seconds": round(state["seconds"], 1),
        "first_epoch_seconds": round(seconds[0], 1),
        "later_epoch_seconds": round(statistics.median(later), 1) if later else None,
        "valid_loss": round(rows[-1]["valid_loss"], 2),
        "valid_accuracy": rows[-1].get("valid_accuracy"),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="cvae-mixed", help="a shipped config (default: cvae-mixed)")
    p.add_argument("--epochs", type=int, help="train this many epochs (default: the config's own)")
    p.add_argument("--rounds", type=int, default=1, help="measurements of each code (default: 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    revisions.add_options(p, "train with the code and config")
    args = p.parse_args()
    result = {"config": args.config, "epochs": args.epochs or "the config's", "device": args.device}
    result.update(revisions.machine())
    runs = revisions.alternate(args.against, args.rounds, lambda env: measure(env, args), result)
    for name, rows in runs.items():
        best = min(rows, key=lambda r: r["seconds"])  # the least disturbed round
        result[name] = {**best, "all_seconds": [r["seconds"] for r in rows]}
    if args.against:
        result["speedup_current_over_revision"] = round(
            result[args.against]["seconds"] / result["current"]["seconds"], 2
        )
    revisions.report(result, args.json)


if __name__ == "__main__":
    main()
