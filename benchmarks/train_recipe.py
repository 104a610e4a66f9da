"""Training a shipped recipe (the default model's unless told): the current code beside another
revision, on one machine.

    python benchmarks/train_recipe.py                        # cvae-mixed as shipped (~15 min on 2 cores)
    python benchmarks/train_recipe.py --against HEAD~3       # that revision too, and the ratio
    python benchmarks/train_recipe.py --epochs 2 --rounds 2  # a shorter look, each code twice
    python benchmarks/train_recipe.py --device cuda          # on a GPU
    python benchmarks/train_recipe.py --recipe-of a841e7e --plot curve.png  # time to quality
    python benchmarks/train_recipe.py --variant "lr 4e-3, 5 epochs: train.lr=4e-3 train.max_epochs=5"

`--recipe-of REV` trains the config as it was at REV with the current code, beside the current
config: two recipes, one code. `--variant "LABEL: TABLE.KEY=VALUE ..."` (TOML values, repeatable)
trains the config so changed, with the current code too. Every run's `metrics.jsonl` gives its
curve: the trainer's seconds after each epoch against the judged probe's accuracy and Frechet
distance on 2,000 validation captions (`valid_accuracy`, `valid_fd_judge`; a revision older than
the probe's Frechet distance logs no such column). The shipped model comes after the last epoch's
probe (a model may refit after training), so each curve ends with that model drawn on the same
probe, at the run's total seconds. `--plot FILE` draws the curves side by side.

Each measurement is one `ved train` process (that revision's code and config, the current virtual
environment) on the whole training set. The trainer's own clock gives the seconds of the first
epoch (with the caption side's fit), of each later epoch and of the whole run (with what the model
does after its last epoch); the judged probe after each epoch is outside that clock. A faster recipe
counts only at equal quality, so the last epoch's validation loss and probe accuracy are printed
beside the seconds, and so is the wall-clock time of the whole `ved train` process (with loading
MNIST, validation and the probes). Rounds alternate between the codes so that a machine's drift
hits both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import revisions

from ved import checkpoint


def measure(env: dict, args, config: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="ved-train-") as folder:
        command = [sys.executable, "-m", "ved", "train", "--config", config, "--out", folder]
        command += ["--device", args.device, "--quiet"]
        if args.epochs:
            command += ["--epochs", str(args.epochs)]
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        if done.returncode not in (0, 2):  # 2: trained to the end, and collapsed (a figure too)
            sys.exit(f"train_recipe: the run failed: {lines[-1]}")
        rows = [json.loads(line) for line in (Path(folder) / "metrics.jsonl").read_text().splitlines()]
        state = checkpoint.load_train_state(Path(folder) / "last")["state"]
        shipped = probe_shipped(folder, args.device)
    seconds = [row["seconds"] for row in rows]
    later = [b - a for a, b in zip(seconds, seconds[1:])]
    curve = [[row["seconds"], row.get("valid_accuracy"), row.get("valid_fd_judge")] for row in rows]
    return {
        "epochs": len(rows),
        "seconds": round(state["seconds"], 1),
        "wall_seconds": round(wall, 1),
        "first_epoch_seconds": round(seconds[0], 1),
        "later_epoch_seconds": round(statistics.median(later), 1) if later else None,
        "valid_loss": round(rows[-1]["valid_loss"], 2),
        "valid_accuracy": rows[-1].get("valid_accuracy"),
        "shipped_probe": shipped,
        "collapsed": lines[-1] if done.returncode == 2 else None,
        "curve": curve + [[round(state["seconds"], 3), shipped["accuracy"], shipped["fd_judge"]]],
    }


def probe_shipped(folder: str, device: str) -> dict:
    """The shipped model of a run on the trainer's own validation probe (train.fixed_batch, seed 2)."""
    from ved import metrics, mnist, pipeline
    from ved.train import fixed_batch, make_split

    pipe = pipeline.load(folder, device=device)
    valid = make_split(mnist.load(progress=False), pipe.config["data"], "valid", device)
    probe = fixed_batch(valid, pipe.config["train"]["eval_images"], seed=2)
    judge = pipeline.load_judge(device=device)
    return metrics.judged_probe(pipe.model, judge, probe, pipe.config["sample"])


def recipe_of(rev: str, name: str, folder: Path) -> str:
    """The shipped config `name` as it was at `rev`, written into `folder`: its path."""
    text = subprocess.run(
        ["git", "-C", str(revisions.ROOT), "show", f"{rev}:src/ved/configs/{name}.toml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = folder / f"{name}-at-{rev}.toml"
    path.write_text(text)
    return str(path)


def variant_of(text: str, config: str, folder: Path) -> tuple[str, str]:
    """`--variant "LABEL: TABLE.KEY=VALUE ..."` -> (LABEL, the path of the changed config)."""
    from ved import config as configs
    from ved.errors import ConfigError

    label, sep, changes = text.partition(":")
    if not (sep and label.strip() and changes.split()):
        sys.exit(f"train_recipe: --variant {text!r}: expected 'LABEL: TABLE.KEY=VALUE ...'")
    changed = configs.load(config)
    try:
        for change in changes.split():
            configs.override(changed, change)
    except ConfigError as e:
        sys.exit(f"train_recipe: --variant {e}")
    path = folder / f"variant-{len(list(folder.glob('variant-*')))}.toml"
    lines = [f"name = {toml_value(changed['name'])}"]
    for table in ("model", "data", "train", "sample"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in changed[table].items() if v is not None]
    path.write_text("\n".join(lines) + "\n")
    return label.strip(), str(path)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"


def plot(result: dict, names: list[str], path: str) -> None:
    """Probe accuracy and Frechet distance against the trainer's seconds, a line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, fd) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name in names:
        curve = result[name]["curve"]
        t = [row[0] for row in curve]
        for ax, column in ((acc, 1), (fd, 2)):
            ys = [row[column] for row in curve]
            if any(y is None for y in ys):
                continue
            ax.plot(t[:-1], ys[:-1], "o-", label=result[name].get("label", name))
            ax.plot(t[-1:], ys[-1:], "*", markersize=12, color=ax.lines[-1].get_color())
    acc.set(xlabel="training seconds", ylabel="judged accuracy", title="the validation probe's accuracy")
    fd.set(
        xlabel="training seconds",
        ylabel="FD in the judge's features",
        title="its Frechet distance to real digits",
    )
    fd.set_yscale("log")
    for ax in (acc, fd):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"{result['config']} on {result['machine']}, {result['cores']} cores: "
        "dots after each epoch, stars the shipped model"
    )
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="cvae-mixed", help="a shipped config (default: cvae-mixed)")
    p.add_argument("--epochs", type=int, help="train this many epochs (default: the config's own)")
    p.add_argument("--rounds", type=int, default=1, help="measurements of each code (default: 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--recipe-of", metavar="REV", help="also train the config as it was at REV (current code)")
    p.add_argument("--variant", action="append", default=[], help="also train 'LABEL: TABLE.KEY=VALUE ...'")
    p.add_argument("--plot", metavar="FILE", help="draw the time-to-quality curves into this PNG")
    revisions.add_options(p, "train with the code and config")
    args = p.parse_args()
    result = {"config": args.config, "epochs": args.epochs or "the config's", "device": args.device}
    result.update(revisions.machine())
    with tempfile.TemporaryDirectory(prefix="ved-recipe-") as folder:
        recipes = {}  # label -> config, trained with the current code only
        if args.recipe_of:
            recipes[f"recipe of {args.recipe_of}"] = recipe_of(args.recipe_of, args.config, Path(folder))
        recipes.update(variant_of(text, args.config, Path(folder)) for text in args.variant)

        def each_code(env):
            out = {"current": measure(env, args, args.config)}
            if env == revisions.env_for(None):
                out.update((label, measure(env, args, config)) for label, config in recipes.items())
            return out

        runs = revisions.alternate(args.against, args.rounds, each_code, result)
    names = []
    for code, measured in runs.items():
        for which in measured[0]:
            rows = [m[which] for m in measured]
            name = code if which == "current" else which
            best = min(rows, key=lambda r: r["seconds"])  # the least disturbed round
            label = f"{args.config} as shipped, {code} code" if which == "current" else which
            result[name] = {**best, "all_seconds": [r["seconds"] for r in rows], "label": label}
            names.append(name)
    if args.against:
        result["speedup_current_over_revision"] = round(
            result[args.against]["seconds"] / result["current"]["seconds"], 2
        )
    for name in names[1:]:
        result[name]["seconds_against_current"] = round(
            result[name]["seconds"] / result["current"]["seconds"], 2
        )
    if args.plot:
        plot(result, names, args.plot)
    revisions.report(result, args.json)


if __name__ == "__main__":
    main()
