"""The caption side of cvae-numbers alone, fitted in variants: which numbers' captions it places on
their pair of cells, including numbers that no training caption makes.

    python experiments/numbers_caption_fit.py                      # the variants below, seed 0
    python experiments/numbers_caption_fit.py --seeds 0 1 2 --variants shipped

The contents are the cells' digits in digit order (what content.discover finds, up to the names of
its classes), so that no image is needed. A development split holds out ten numbers that the shipped
held-out split does not (DEV_HELD); they are measured on their captions of the training hash split,
so no test caption is read. Each variant is the shipped fit (cvae-numbers' [model]) with one change.
"""

import argparse
import time

import torch

from ved import captions, vocab
from ved import config as configs
from ved.models.caption_prior import CaptionFit, CaptionPrior

DEV_HELD = (13, 24, 35, 41, 12, 23, 34, 45, 16, 27)
VARIANTS = {
    "shipped": {},
    "3,000 steps": {"steps": 3000},
    "numbers to 70": {"most": 70},
    "numbers to 99": {"most": 99},
    "every content in the softmax": {"all_contents": True},
}


def content(n: int) -> int:
    return (n // 10 + 1) * 10 + n % 10 if n >= 10 else n


def encoded(pool: dict[int, list[str]]):
    pairs = [(c, content(n)) for n, texts in pool.items() for c in texts]
    tokens, lengths = vocab.encode([c for c, _ in pairs])
    return tokens, lengths, torch.tensor([k for _, k in pairs])


def fit_variant(seed: int, steps=None, most=captions.MAX_NUMBER, all_contents=False) -> dict:
    m = configs.resolve(configs.load("cvae-numbers"))["model"]
    fit = CaptionFit(
        m["caption_encoder"], m["caption_hidden"], m["caption_width"], None, m["content_classes"],
        m["content_dim"], m["pull"], steps or m["caption_steps"], m["caption_balanced"],
        m["caption_gate_penalty"], m["caption_lr"], cells=2,
    )  # fmt: skip
    held = tuple(n for n in DEV_HELD if n <= most)
    train = {
        **captions.arithmetic_train_pool(),
        **captions.number_pool("train", hold_out_numbers=held, most=most),
    }
    valid = captions.number_pool("valid", hold_out_numbers=held, most=most)
    everything = captions.number_pool("train", most=most)
    torch.manual_seed(seed)
    prior = CaptionPrior(fit)
    if all_contents:  # every content competes in the fit, held-out ones too: they are pushed away
        prior._weigh_seen = lambda classes: None
    t0 = time.perf_counter()
    prior.fit(*encoded(train))
    return {
        "seconds": time.perf_counter() - t0,
        "train": prior.placed(*encoded(train)),
        "valid": prior.placed(*encoded(valid)),
        "held": prior.placed(*encoded({n: everything[n] for n in held})),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    print("| variant | seed | training captions placed | validation | held-out numbers | fit seconds |")
    print("|---|---|---|---|---|---|")
    for name in args.variants:
        for seed in args.seeds:
            r = fit_variant(seed, **VARIANTS[name])
            placed = f"{r['train']:.1%} | {r['valid']:.1%} | {r['held']:.1%}"
            print(f"| {name} | {seed} | {placed} | {r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
