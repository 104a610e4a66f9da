"""A config's caption side fitted alone at several training seeds, as `ved train` fits it: how often
the fit fails to place its own captions, and whether the fit's own retry (at half the rate) saves it.

    python experiments/caption_fit_seeds.py cvae-logic --seeds 0 1 2 3 4

For each seed: the content classes are discovered from the training pairs (content.py, seeded as
training seeds them), a fresh model is built under that seed, and its caption prior is fitted with
`fit_checked`. Prints the loss, the share of training captions on their class, and the rate the kept
fit took (1: the first try; 0.5 or 0.25: a retry). No image is trained on and no test split is read.
"""

import argparse
import time

import torch

from ved import captions, content, mnist
from ved import config as configs
from ved.train import make_split


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    config = configs.load(args.config)
    data = mnist.load(progress=False)
    train = make_split(data, config["data"], "train", "cpu")
    families = captions.pool_families(config["data"], "train")
    print("| seed | loss | placed | rate | seconds |\n|---|---|---|---|---|")
    for seed in args.seeds:
        torch.manual_seed(seed)  # what `ved train --seed S` does before it builds the model
        model = configs.build(config)
        content.discover(train, model.content_classes, seed=seed)
        pool, t0 = train.pool, time.perf_counter()
        loss, placed, rate = model.caption_prior.fit_checked(
            pool.tokens, pool.lengths, pool.classes, families
        )
        print(
            f"| {seed} | {loss:.3f} | {placed:.1%} | {rate:g} | {time.perf_counter() - t0:.0f} |", flush=True
        )


if __name__ == "__main__":
    main()
