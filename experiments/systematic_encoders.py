"""Which caption encoder combines known words in ways it never saw? The caption side alone on the
systematic splits, as experiments/length_generalisation.py does for length.

Each encoder is trained (`point` target, as the models' caption prior) on the training captions of
a split and scored on what that split holds out. The splits here are development choices, not the
ones ved reports: the digit word `six` seen only on its own (add_primitive), no training caption but
`two` evaluating to 2 (hold_out_result), and 30 one-operation captions drawn with seed 1 (pairs).
Held out are the one-operation captions that left training, and, for the first two, seeded
captions of 2 to 5 operations that use the word or reach the result. No test split is read: the
splits ved reports (`three` and `seven`, 7 and 4, the pairs of seeds 0 and 2: `ved reproduce --all`) stay
sealed for the report.

    python experiments/systematic_encoders.py [--steps 1500] [--seeds 2]
"""

from __future__ import annotations

import argparse

from length_generalisation import run

from ved import captions

DEV = {
    "add_primitive six": {"add_primitive": "six"},
    "hold_out_result 2": {"hold_out_result": 2},
    "pairs (30, seed 1)": {"hold_out_pairs": 30},
}
# (encoder, weight of its penalty, weight of its word vectors' squared norm)
ENCODERS = (("word-sum", 0, 0), ("gated-sum", 0, 0), ("gated-sum", 1e-3, 0), ("gated-sum", 1e-2, 0),
            ("gated-sum", 1e-2, 1e-3), ("gated-sum", 1e-2, 1e-2), ("word-sum", 0, 1e-2), ("gru", 0, 0),
            ("attention", 0, 0))  # fmt: skip


def dev_split(option: dict):
    train = captions.arithmetic_pool("train", seed=1, **option)
    every = captions.arithmetic_train_pool()
    held = {d: [c for c in every[d] if c not in train[d]] for d in range(10)}
    if "add_primitive" in option:
        longer = captions.arithmetic_test_pool(101, must_use=option["add_primitive"])
    elif "hold_out_result" in option:
        longer = captions.arithmetic_test_pool(101, digits=(option["hold_out_result"],))
    else:
        longer = {d: [] for d in range(10)}
    return train, {d: held[d] + longer[d] for d in range(10)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="full-batch Adam steps (default: 1500)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0.. (default: 2)")
    parser.add_argument("--only", nargs="*", help="these encoders only (default: every one)")
    args = parser.parse_args()
    print("| split (development choice) | encoder | held out right, per seed | by operations (seed 0) |")
    print("|---|---|---|---|")
    for split, option in DEV.items():
        train, held = dev_split(option)
        for name, penalty, decay in ENCODERS:
            if args.only and name not in args.only:
                continue
            seeds = range(args.seeds)
            options = {"penalty": penalty, "word_decay": decay}
            results = [run(name, "point", train, held, args.steps, s, **options) for s in seeds]
            ops = " ".join(f"{k}:{v:.0%}" for k, v in results[0][1].items())
            accs = ", ".join(f"{acc:.1%}" for acc, _ in results)
            label = ", ".join(
                [name]
                + ([f"gate penalty {penalty:g}"] if penalty else [])
                + ([f"word decay {decay:g}"] if decay else [])
            )
            print(f"| {split} | {label} | {accs} | {ops} |", flush=True)


if __name__ == "__main__":
    main()
