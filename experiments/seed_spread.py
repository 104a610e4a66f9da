"""A shipped config trained at several training seeds, each scored on validation captions: how far
its figures move with the seed, and whether any seed collapses.

    python experiments/seed_spread.py cvae-mixed --seeds 0 1 2 --out runs/seeds

Each seed is `ved train --config NAME --seed S` into OUT/NAME-seedS (resumed if there), then scored
with the model's own sampling settings on the validation captions of every family it was trained on
(5,000 images each, sampling seed 0, against the validation reference: no test image or caption is
read). Prints a table per seed and the mean with its 95% interval (report.over_seeds), and writes
OUT/NAME-seeds.json. The collapse check of `ved train` runs too.
"""

import argparse
import json
import time
from pathlib import Path

from ved import captions, metrics, mnist, report
from ved import config as configs
from ved.pipeline import load, load_judge
from ved.train import train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/seeds"))
    parser.add_argument("--samples", type=int, default=metrics.SAMPLES_PER_SPLIT)
    args = parser.parse_args()
    data, judge = mnist.load(progress=False), load_judge()
    references = metrics.References(judge, data)
    per_seed, seconds, collapsed = {}, {}, {}
    for seed in args.seeds:
        config = configs.load(args.config)
        config["train"]["seed"] = seed
        folder = args.out / f"{config['name']}-seed{seed}"
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
    print(f"\n{header} diversity |")
    print("|---|---|---|---|---|---|")
    for family, splits in gathered.items():
        r = splits["valid"]
        diversity = [s["diversity"] for s in r["per_seed"]]
        print(
            f"| {family} | {', '.join(map(str, args.seeds))} | {report.accuracy_cell(r)} | "
            f"{metrics.fd_cell(r)} | {metrics.kid_cell(r)} | {min(diversity):.2f}-{max(diversity):.2f} |"
        )
    print(f"\ntraining seconds by seed: {seconds}; collapsed: {collapsed}")
    out = args.out / f"{args.config}-seeds.json"
    out.write_text(json.dumps({"seconds": seconds, "collapsed": collapsed, "results": gathered}, indent=1))


if __name__ == "__main__":
    main()
