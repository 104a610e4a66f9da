"""Numbers past nine at several training seeds: how often a strip shows its number, per-cell quality,
and the one-digit figures beside them.

    python experiments/numbers_study.py --seeds 0 1 2 --out runs/numbers              # validation
    python experiments/numbers_study.py --seeds 0 1 2 --out runs/numbers --split test # final report

Trains cvae-numbers and cvae-numbers-held-out at each seed into OUT/NAME-seedS (resumed, or left as
they are when finished), then scores each on the split's captions of numbers past nine (10 strips a
caption, sampling seed 0, the model's own settings): a strip is right when the judge reads every
cell as its digit and the cells left of the number are blank. Its cells are also scored as digits
(`metrics.score_images`, each cell captioned by its digit's word): FD_judge, KID_judge and diversity
per cell against the split's real digits. The one-digit rows are `ved evaluate`'s on the
arithmetic captions. The held-out run's test captions are its ten held-out numbers only; its
validation captions are the other numbers' (the held-out numbers never appear in training or
validation). `--split test` opens the test split (ved.holdout) once a run and seed, each opening a
line in docs/results/test-split-ledger.md.
Writes docs/results/numbers.json and prints the table of docs/numbers.md.
"""

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

from ved import captions, figures, holdout, metrics, mnist, report
from ved import config as configs
from ved.pipeline import load, load_judge
from ved.train import train

RUNS = ("cvae-numbers", "cvae-numbers-held-out")
PER_CAPTION = 10
CELL_FIGURES = (
    "fd_judge",
    "fd_judge_real",
    "fd_judge_floor",
    "kid_judge",
    "kid_judge_std",
    "diversity",
    "recall",
)


def score_numbers(pipe, judge, pool: dict[int, list[str]], reference) -> dict:
    texts = [c for n in sorted(pool) for c in pool[n]]
    images = torch.as_tensor(pipe.generate(texts, PER_CAPTION, seed=0))  # (captions, n, 28, 56) uint8
    row = metrics.score_strips(images, texts, judge, reference)
    by_number: dict[int, list[float]] = {}
    for r in row.pop("by_caption"):
        by_number.setdefault(r["number"], []).append(r["accuracy"])
    row["worst_number"] = min((sum(a) / len(a), n) for n, a in by_number.items())
    return row


SHOWN = ["seven plus eight", "nine plus nine plus nine", "four plus four plus four plus four", "seven",
         "nine plus nine plus nine plus nine plus nine"]  # fmt: skip


def draw_figures(pipe) -> None:
    """docs/results/figures/numbers-*.png: strips for a few captions, and rows of one hand each."""
    folder = Path("docs/results/figures")
    labels = [f"{c}  (= {captions.number(c)})" for c in SHOWN]
    figures.sample_grid(pipe.generate(SHOWN, 8, seed=0), labels, folder / "numbers-samples.png")
    rows = pipe.same_style(4, generator=0, prompt=SHOWN).transpose(1, 0, 2, 3)  # a caption a row
    figures.sample_grid(rows, labels, folder / "numbers-same-style.png", title="columns: one hand each")


def compare_accepts(folder: Path, accepts: list[float]) -> None:
    """The digits' validation figures of a numbers model beside the shipped digits model's, at each
    `accept`: what the numbers' sampling setting costs the digits."""
    data, judge = mnist.load(progress=False), load_judge()
    references = metrics.References(judge, data)
    print("| model | accept | accuracy | FD_judge | diversity | recall |\n|---|---|---|---|---|---|")
    for model in (folder, "cvae-arithmetic"):
        pipe = load(model)
        for accept in accepts:
            config = {**pipe.config, "sample": {**pipe.config["sample"], "accept": accept}}
            r = metrics.evaluate_model(
                pipe.model, config, judge, splits=["valid"], progress=False, data=data, reference=references
            )["results"]["arithmetic"]["valid"]
            figures = f"{r['accuracy']:.1%} | {r['fd_judge']:.1f} | {r['diversity']:.2f} | {r['recall']:.3f}"
            print(f"| {model} | {accept} | {figures} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/numbers"))
    parser.add_argument("--split", choices=("valid", "test"), default="valid")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument(
        "--figures-only", action="store_true", help="only draw the figures, from OUT's first seed"
    )
    parser.add_argument(
        "--accepts", type=float, nargs="+", help="only the one-digit validation rows of OUT's first seed of "
        "cvae-numbers and the shipped cvae-arithmetic at each of these `accept` settings"
    )  # fmt: skip
    args = parser.parse_args()
    if args.figures_only:
        return draw_figures(load(args.out / f"{RUNS[0]}-seed{args.seeds[0]}"))
    if args.accepts:
        return compare_accepts(args.out / f"{RUNS[0]}-seed{args.seeds[0]}", args.accepts)
    data, judge = mnist.load(progress=False), load_judge()
    references = metrics.References(judge, data)

    def opened(name, seed):  # the test split only inside a final report, which the ledger records
        if args.split == "valid":
            return contextlib.nullcontext()
        what = f"numbers past nine and digits of {name} at seed {seed}"
        return holdout.final_report(what, ledger=Path("docs/results/test-split-ledger.md"))

    results, seconds = {}, {}
    for name in args.runs:
        per_seed = {}
        for seed in args.seeds:
            config = configs.load(name)
            config["train"]["seed"] = seed
            folder = args.out / f"{name}-seed{seed}"
            t0 = time.perf_counter()
            seconds[f"{name}-seed{seed}"] = train(
                config, folder, resume=True, judge=judge, progress=False, log=print
            )["state"]["seconds"]
            pipe = load(folder)
            with opened(name, seed):
                pool = captions.number_pool_for(pipe.config["data"], args.split)
                two = score_numbers(pipe, judge, pool, references[args.split])
                one = metrics.evaluate_model(
                    pipe.model, pipe.config, judge, splits=[args.split], progress=False,
                    data=data, reference=references,
                )["results"]["arithmetic"][args.split]  # fmt: skip
            per_seed[seed] = {"numbers": {args.split: two}, "digits": {args.split: one}}
            if name == RUNS[0] and seed == args.seeds[0]:  # strips of training-free captions, no test caption
                draw_figures(pipe)
            print(f"{name} seed {seed}: numbers {two['accuracy']:.4f}, digits {one['accuracy']:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
        results[name] = report.over_seeds(per_seed)
    print("\n| run | captions | seeds | accuracy [95% interval], worst | FD_judge per cell | diversity |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        for what in ("numbers", "digits"):
            r = rows[what][args.split]
            diversity = [s["diversity"] for s in r["per_seed"]]
            spread = f"{min(diversity):.2f}-{max(diversity):.2f}"
            which = "10-45" if what == "numbers" else "0-9"
            print(
                f"| {name} | {which} ({args.split}) | {r['seeds']} | {report.accuracy_cell(r)} | "
                f"{metrics.fd_cell(r)} | {spread} |"
            )
    out = Path("docs/results/numbers.json")
    written = json.loads(out.read_text()) if out.exists() else {}
    entry = written.setdefault(args.split, {"results": {}, "train_seconds": {}})  # other runs' rows kept
    entry["results"].update(results)
    entry["train_seconds"].update(seconds)
    out.write_text(json.dumps(written, indent=1) + "\n")


if __name__ == "__main__":
    main()
