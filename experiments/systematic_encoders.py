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

    python experiments/systematic_encoders.py [--steps 1500] [--seeds 2] [--only NAME ...] [--prior]
"""

from __future__ import annotations

import argparse

import torch
from length_generalisation import run, tensors

from ved import captions
from ved.models.caption_prior import CaptionPrior

DEV = {
    "add_primitive six": {"add_primitive": "six"},
    "hold_out_result 2": {"hold_out_result": 2},
    "pairs (30, seed 1)": {"hold_out_pairs": 30},
}
# (encoder, weight of its penalty, weight of its word vectors' squared norm, weight of the
# cross-entropy that separates the points)
ENCODERS = (
    ("word-sum", 0, 0, 1),
    ("gated-sum", 0, 0, 1),
    ("gated-sum", 0.001, 0, 1),
    ("gated-sum", 0.01, 0, 1),
    ("gated-sum", 0.01, 0.001, 1),
    ("gated-sum", 0.01, 0.01, 1),
    ("word-sum", 0, 0.01, 1),
    ("gated-sum", 0.01, 0, 0.1),
    ("gated-sum", 0.01, 0, 0),
    ("word-sum", 0, 0, 0.1),
    ("scaled-sum", 0.01, 0, 1),
    ("scaled-sum", 0.01, 0, 0.1),
    ("scaled-sum", 0, 0, 0.1),
    ("gru", 0, 0, 1),
    ("attention", 0, 0, 1),
)


# The models' own caption side (models/caption_prior.py: encoder, map to a point, prototypes) with
# `--prior`: the recipe ved's arithmetic runs ship, and the one for the systematic splits with two
# of its parts taken away in turn
PRIORS = {
    "shipped: word-sum, 1,500 steps at 0.01": {"encoder": "word-sum", "steps": 1500},
    "scaled-sum, balanced pull, gate penalty 0.01, 3,000 steps at 0.003": {
        "encoder": "scaled-sum", "balanced": True, "gate_penalty": 0.01, "lr": 3e-3, "steps": 3000},
    "the same without the balanced pull": {
        "encoder": "scaled-sum", "gate_penalty": 0.01, "lr": 3e-3, "steps": 3000},
    "the same with gated-sum for scaled-sum": {
        "encoder": "gated-sum", "balanced": True, "gate_penalty": 0.01, "lr": 3e-3, "steps": 3000},
}  # fmt: skip


def prior_run(train, held, seed, encoder, steps, **options) -> float:
    """Held-out captions placed in their digit's class by the model's caption prior, fitted as in
    training: classes given (here the digits; in training the discovered ones), full-batch Adam."""
    torch.manual_seed(seed)
    prior = CaptionPrior(encoder, 64, 64, None, 10, 8, 10.0, steps, **options)
    tokens, lengths, digits, _ = tensors(train)
    prior.fit(tokens, lengths, digits)
    tokens, lengths, digits, _ = tensors(held)
    with torch.no_grad():
        return (prior(tokens, lengths).argmax(1) == digits).float().mean().item()


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
    parser.add_argument("--prior", action="store_true", help="the models' caption prior, recipes of PRIORS")
    args = parser.parse_args()
    if args.prior:
        print("| split (development choice) | caption prior | held out right, per seed |\n|---|---|---|")
        for split, option in DEV.items():
            train, held = dev_split(option)
            for label, recipe in PRIORS.items():
                accs = [prior_run(train, held, s, **recipe) for s in range(args.seeds)]
                print(f"| {split} | {label} | {', '.join(f'{a:.1%}' for a in accs)} |", flush=True)
        return
    print("| split (development choice) | encoder | held out right, per seed | by operations (seed 0) |")
    print("|---|---|---|---|")
    for split, option in DEV.items():
        train, held = dev_split(option)
        for name, penalty, decay, separation in ENCODERS:
            if args.only and name not in args.only:
                continue
            seeds = range(args.seeds)
            options = {"penalty": penalty, "word_decay": decay, "separation": separation}
            results = [run(name, "point", train, held, args.steps, s, **options) for s in seeds]
            ops = " ".join(f"{k}:{v:.0%}" for k, v in results[0][1].items())
            accs = ", ".join(f"{acc:.1%}" for acc, _ in results)
            label = ", ".join(
                [name]
                + ([f"gate penalty {penalty:g}"] if penalty else [])
                + ([f"word decay {decay:g}"] if decay else [])
                + ([f"separation {separation:g}"] if separation != 1 else [])
            )
            print(f"| {split} | {label} | {accs} | {ops} |", flush=True)


if __name__ == "__main__":
    main()
