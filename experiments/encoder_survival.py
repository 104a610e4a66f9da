"""Whether a conditional VAE's image encoder survives its first training steps: the posterior collapse
of docs/conditional-vae.md, traced.

    python experiments/encoder_survival.py cvae-logic --seeds 0 1 2 3 4 5 6 7 8 9 --steps 300
    python experiments/encoder_survival.py cvae-logic --seeds 8 --steps 300 --set train.warmup_steps=0

For each seed: the content classes are discovered as training discovers them, a fresh model is built
under that seed, and the image steps of `ved train` run (the optimiser, the [train] rate with its
warm-up, the config's precision) without the caption side's fit, which the image steps never read.
At a few steps it prints the step's KL (nats) and critic cross-entropy (ln 10 = 2.30 is chance), and
for each ReLU layer of the image encoder the share of its units (channels) that answer any of 2,000
training images: a unit that answers none gets no gradient, and never answers again. The random
stream differs from a full `ved train` run's (the caption fit draws from it first), so a seed here is
not the same run as that seed in training. No validation or test image is read.
"""

import argparse

import torch

from ved import config as configs
from ved import content, mnist
from ved.errors import ConfigError
from ved.models.base import units_answering
from ved.precision import autocast_for
from ved.precision import resolve as resolve_precision
from ved.train import learning_rate, make_split, train_step

SHOWN = (1, 10, 25, 50, 100, 200, 300, 500, 1000, 2000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE")
    args = parser.parse_args()
    config = configs.load(args.config)
    try:
        for change in args.set:
            configs.override(config, change)
        config = configs.resolve(config)
    except ConfigError as e:
        raise SystemExit(f"encoder_survival: {e}") from None
    tcfg = config["train"]
    data = mnist.load(progress=False)
    train = make_split(data, config["data"], "train", "cpu")
    probe = train.images[:2000].unsqueeze(1).float() / 255
    autocast = autocast_for(resolve_precision(tcfg["precision"], "cpu"), "cpu")
    total = tcfg["max_epochs"] * -(-len(train) // tcfg["batch_size"])
    print("| seed | step | KL | critic | units answering, by encoder layer |")
    print("|---|---|---|---|---|")
    for seed in args.seeds:
        torch.manual_seed(seed)  # what `ved train --seed S` does before it builds the model
        model = configs.build(config)
        content.discover(train, model.content_classes, seed=seed)
        optimizer, generator = model.optimizer(tcfg["lr"]), torch.Generator().manual_seed(seed)
        step = 0
        while step < args.steps:
            for batch in train.batches(tcfg["batch_size"], generator):
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(tcfg, step, total)
                losses = train_step(model, model, batch, optimizer, None, autocast)
                step += 1
                if step in SHOWN or step == args.steps:
                    shares = " / ".join(f"{s:.0%}" for s in units_answering(model.image_encoder, probe))
                    critic = losses["critic"].item() if "critic" in losses else float("nan")
                    kl = losses["kl"].item()
                    print(f"| {seed} | {step} | {kl:.4f} | {critic:.2f} | {shares} |", flush=True)
                if step == args.steps:
                    break


if __name__ == "__main__":
    main()
