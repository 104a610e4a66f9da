"""A shipped config trained at several training seeds, each scored on validation captions: how far
its figures move with the seed, and whether any seed collapses.

    python experiments/seed_spread.py cvae-mixed --seeds 0 1 2 --out runs/seeds

    python experiments/seed_spread.py cvae-mixed --set model.channels=16 --set train.lr=3e-3 --tag narrow

Each seed is `ved train --config NAME --seed S` into OUT/NAME[-TAG]-seedS (resumed if there), then scored
with the model's own sampling settings on the validation captions of every family it was trained on
(5,000 images each, sampling seed 0, against the validation reference: no test image or caption is
read). Prints a table per seed and the mean with its 95% interval (report.over_seeds), and writes
OUT/NAME[-TAG]-seeds.json. The collapse check of `ved train` runs too. `--set TABLE.KEY=VALUE` (a TOML
value) changes the config before training: a variant of a recipe, named by `--tag`.
"""

import argparse
import json
import time
from pathlib import Path

from ved import captions, metrics, mnist, report
from ved import config as configs
from ved.errors import ConfigError
from ved.pipeline import load, load_judge
from ved.train import train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/seeds"))
    parser.add_argument("--samples", type=int, default=metrics.SAMPLES_PER_SPLIT)
    parser.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE")
    parser.add_argument("--tag", help="names the variant's folders and summary (default: none)")
    args = parser.parse_args()
    name = args.config + (f"-{args.tag}" if args.tag else "")
    data, judge = mnist.load(progress=False), load_judge()
    references = metrics.References(judge, data)
    per_seed, seconds, collapsed = {}, {}, {}
    for seed in args.seeds:
        config = configs.load(args.config)
        try:
            for text in args.set:
                configs.override(config, text)
        except ConfigError as e:
            raise SystemExit(f"seed_spread: --set {e}") from None
        config["train"]["seed"] = seed
        folder = args.out / f"{name}-seed{seed}"
        t0 = time.perf_counter()
        result = train(config, folder, resume=True, judge=judge, progress=False, log=print)
        seconds[seed] = result["state"]["seconds"]
        collapsed[seed] = result["collapsed"]
        pipe = load(folder)
        families = list(captions.MIXED) if config["data"]["family"] == "mixed" else None
        per_seed[seed] = metrics.evaluate_model(
            pipe.model, pipe.config, judge, families=families, splits=["valid"], samples=args.samples,
            progress=False, data=data, reference=references,
        )["results"]  # fmt: skip
        print(
            f"seed {seed}: trained in {seconds[seed]:.0f} s ({time.perf_counter() - t0:.0f} s with scoring)"
        )
    gathered = report.over_seeds(per_seed)
    header = "| captions | seeds | accuracy [95% interval], worst | FD_judge [95% interval] | KID_judge |"
    print(f"\n{header} diversity | recall |")
    print("|---|---|---|---|---|---|---|")
    for family, splits in gathered.items():
        r = splits["valid"]
        diversity = [s["diversity"] for s in r["per_seed"]]
        recall = [s["recall"] for s in r["per_seed"]]
        print(
            f"| {family} | {', '.join(map(str, args.seeds))} | {report.accuracy_cell(r)} | "
            f"{metrics.fd_cell(r)} | {metrics.kid_cell(r)} | {min(diversity):.2f}-{max(diversity):.2f} | "
            f"{min(recall):.3f}-{max(recall):.3f} |"
        )
    print(f"\ntraining seconds by seed: {seconds}; collapsed: {collapsed}")
    out = args.out / f"{name}-seeds.json"
    summary = {"set": args.set, "seconds": seconds, "collapsed": collapsed, "results": gathered}
    out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
