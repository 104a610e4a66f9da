"""One training step of a shipped recipe (the default model's unless told) under each precision and
batch size, side by side in one process.

    python benchmarks/train_step.py                              # fp32 and bf16 at 128 and 256
    python benchmarks/train_step.py --batch-sizes 128 --blocks 16
    python benchmarks/train_step.py --device cuda --batch-sizes 128 512

Each variant is its own copy of one prepared model with its own optimiser and moving average, and
the variants take turns in blocks of steps (the first block of each is a warm-up), so a machine's
drift hits all alike. The figure is the median seconds of a step: the trainer's own `train_step`
(forward, under bf16 autocast for bf16; backward; Adam; the moving average). What happens between
epochs (the style prior's fit, validation) is train_recipe.py's to measure.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import revisions
import torch

from ved import captions, mnist
from ved import config as configs
from ved.precision import autocast_for
from ved.train import EMA, make_split, train_step


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="cvae-mixed", help="a shipped config (default: cvae-mixed)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--blocks", type=int, default=8, help="turns of each variant (default: 8)")
    p.add_argument("--steps", type=int, default=15, help="steps in a turn (default: 15)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--json", help="also write the result to this file")
    args = p.parse_args()
    device = torch.device(args.device)
    # a GPU runs a step asynchronously: wait for it, or the clock reads the launch, not the work
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None

    config = configs.load(args.config)
    if config["model"]["kind"] == "cvae":  # its caption fit's cost is not a step's
        config["model"]["caption_steps"] = 10
        if config["model"].get("caption_rest_steps"):
            config["model"]["caption_rest_steps"] = 10
    config = configs.resolve(config)
    torch.manual_seed(0)
    model = configs.build(config).to(device)
    train = make_split(mnist.load(progress=False), config["data"], "train", device)
    model.prepare(train, seed=0, fresh=True, families=captions.pool_families(config["data"], "train"))
    lr, decay = config["train"]["lr"], config["train"]["ema"]

    variants = []
    for size in args.batch_sizes:
        for precision in args.precisions:
            copy_ = copy.deepcopy(model)
            variants.append(
                {
                    "name": f"{precision} batch {size}",
                    "size": size,
                    "autocast": autocast_for(precision, device),
                    "model": copy_,
                    "optimizer": copy_.optimizer(lr),
                    "ema": EMA(copy_, decay) if decay else None,
                    "batches": iter(train.batches(size, torch.Generator().manual_seed(0))),
                    "seconds": [],
                }
            )
    for block in range(args.blocks + 1):
        for v in variants:
            for _ in range(args.steps):
                batch = next(v["batches"], None)
                if batch is None:  # an epoch ran out: another one
                    v["batches"] = iter(train.batches(v["size"], torch.Generator().manual_seed(block)))
                    batch = next(v["batches"])
                sync()
                t0 = time.perf_counter()
                train_step(v["model"], v["model"], batch, v["optimizer"], v["ema"], v["autocast"])
                sync()
                if block:  # the first turn warms up
                    v["seconds"].append(time.perf_counter() - t0)

    result = {"config": args.config, "device": str(device), **revisions.machine()}
    base = None
    for v in variants:
        step = statistics.median(v["seconds"])
        epoch = step * len(train) / v["size"]
        base = base or epoch
        result[v["name"]] = {
            "ms_per_step": round(1000 * step, 1),
            "seconds_per_epoch_of_steps": round(epoch, 1),
            "speedup_over_first": round(base / epoch, 2),
        }
    revisions.report(result, args.json)


if __name__ == "__main__":
    main()
