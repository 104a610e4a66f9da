"""A config's caption side fitted alone at several training seeds, as `ved train` fits it: how often
the fit fails to place its own captions, and whether the fit's own retry (at half the rate) saves it.

    python experiments/caption_fit_seeds.py cvae-logic --seeds 0 1 2 3 4
    python experiments/caption_fit_seeds.py cvae-mixed --seeds 0 1 2 --set caption_rest_steps=600

For each seed: the content classes are discovered from the training pairs (content.py, seeded as
training seeds them), a fresh model is built under that seed, and its caption prior is fitted with
`fit_checked`. Prints the loss, the share of training captions on their class, and the rate the kept
fit took (1: the first try; 0.5 or 0.25: a retry), and for each caption family the share of its
validation captions whose likeliest class is their digit's (a class's digit is the one most of its
training captions mean; the parser scores, the model never reads it). `--set KEY=VALUE` changes a
[model] key (a TOML value). No image is trained on and no test split is read.
"""

import argparse
import time

import torch

from ved import captions, content, mnist, vocab
from ved import config as configs
from ved.errors import ConfigError
from ved.train import make_split


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a [model] key")
    args = parser.parse_args()
    config = configs.load(args.config)
    try:
        for text in args.set:
            configs.override(config, f"model.{text}")
    except ConfigError as e:
        raise SystemExit(f"caption_fit_seeds: --set {e}") from None
    data = mnist.load(progress=False)
    train = make_split(data, config["data"], "train", "cpu")
    families = captions.pool_families(config["data"], "train")
    valid = [(c, d) for d, pool in captions.pool_for(config["data"], "valid").items() for c in pool]
    tokens, lengths = vocab.encode([c for c, _ in valid])
    digits = torch.tensor([d for _, d in valid])
    family = [captions.families_of(c)[0] for c, _ in valid]
    names = sorted(set(family), key=family.index)
    print(f"| seed | loss | placed | rate | seconds | {' | '.join(f'valid {n}' for n in names)} |")
    print("|---" * (5 + len(names)) + "|")
    for seed in args.seeds:
        torch.manual_seed(seed)  # what `ved train --seed S` does before it builds the model
        model = configs.build(config)
        content.discover(train, model.content_classes, seed=seed)
        pool, t0 = train.pool, time.perf_counter()
        loss, placed, rate = model.caption_prior.fit_checked(
            pool.tokens, pool.lengths, pool.classes, families
        )
        seconds = time.perf_counter() - t0
        tally = torch.zeros(model.content_classes, 10).index_put_(
            (pool.classes, pool.digits), torch.ones(len(pool.classes)), accumulate=True
        )
        with torch.no_grad():
            right = tally.argmax(1)[model.caption_prior(tokens, lengths).argmax(1)] == digits
        shares = [right[[f == n for f in family]].float().mean().item() for n in names]
        cells = " | ".join(f"{share:.1%}" for share in shares)
        print(f"| {seed} | {loss:.3f} | {placed:.1%} | {rate:g} | {seconds:.0f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
