"""Training speed: ved's trainer against a reference pipeline built the way the paper's code works.

The reference is a torch DataLoader over MNIST whose collate function draws and
tokenises each caption in Python (then sorts by length, as the paper's does, but
keeps the labels aligned). Both train the same PaperVED with the same loss.

    python benchmarks/train_speed.py            # the full benchmark (a few minutes)
    python benchmarks/train_speed.py --quick    # a smoke run

Reports (a) seconds per 50k-image epoch at batch 128 for both and their ratio,
with the model's own step on batches made beforehand: no pipeline feeding this
model can beat the reference by more than the reference's epoch over that; (b)
seconds of training to reach 99% judge accuracy on validation captions
(arithmetic family) for ved at its best settings and the reference at the paper's.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ved import captions, mnist, models, vocab
from ved.batches import Batch
from ved.config import load as load_config
from ved.metrics import judged_accuracy
from ved.mnist import MNIST_MEAN, MNIST_STD
from ved.pipeline import load_judge
from ved.train import fixed_batch, make_split, train

CONFIG = "paper-arithmetic"  # a shipped config (src/ved/configs/)
BEST = {"batch_size": 512, "lr": 4e-3}  # ved's fastest settings to 99%, found with this script


class CaptionedMNIST(Dataset):
    """As torchvision's MNIST with ToTensor() and Normalize(): a PIL image per sample."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = Image.fromarray(self.images[i], mode="L")
        x = torch.from_numpy(np.array(image, dtype=np.float32) / 255.0).unsqueeze(0)  # ToTensor
        x = (x - MNIST_MEAN) / MNIST_STD  # Normalize((0.1307,), (0.3081,))
        return x, int(self.labels[i])


class PaperCollate:
    """Per-sample Python: draw a caption for each label, tokenise it, sort the batch by length."""

    def __init__(self, pools, seed=0):
        self.pools, self.rng = pools, random.Random(seed)

    def __call__(self, items):
        drawn = [(img, lab, vocab.tokenize(self.rng.choice(self.pools[lab]))) for img, lab in items]
        drawn.sort(key=lambda t: len(t[2]), reverse=True)
        ids = torch.full((len(drawn), len(drawn[0][2])), vocab.PAD, dtype=torch.long)
        for row, (_, _, seq) in zip(ids, drawn):
            row[: len(seq)] = torch.tensor(seq)
        lengths = torch.tensor([len(t[2]) for t in drawn])
        digits = torch.tensor([t[1] for t in drawn])  # aligned with the sorted images
        images = torch.stack([t[0] for t in drawn]) * MNIST_STD + MNIST_MEAN  # PaperVED normalises itself
        return Batch(images, ids, lengths, torch.arange(len(drawn)), digits)


def paper_model(lr: float, seed: int):
    """The paper's VED with the optimizer code ved's trainer uses."""
    torch.manual_seed(seed)
    model = models.build(load_config(CONFIG)["model"])
    return model, torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


def timed_steps(model, optimizer, batches) -> float:
    """Seconds for forward, backward and an optimizer step on each batch, however they are made."""
    t0 = time.perf_counter()
    for batch in batches:
        loss = model(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - t0


def reference_run(data, judge, epochs: int, target: float | None, batch_size=128, lr=1e-3, seed=0):
    """The paper's way: DataLoader + Python collate. Returns per-epoch seconds and accuracies."""
    config = load_config(CONFIG)
    model, optimizer = paper_model(lr, seed)
    pools = captions.caption_pool("arithmetic", "train")
    loader = DataLoader(
        CaptionedMNIST(*data.split("train")),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=PaperCollate(pools, seed),
    )
    probe = fixed_batch(make_split(data, config["data"], "valid", "cpu"), 2000, seed=2)
    rows, seconds = [], 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        seconds += timed_steps(model, optimizer, loader)
        model.eval()
        acc = judged_accuracy(model, judge, probe)
        rows.append({"epoch": epoch, "seconds": seconds, "valid_accuracy": acc})
        print(f"  reference epoch {epoch}: {seconds:.1f}s, valid accuracy {acc:.3f}", flush=True)
        if target and acc >= target:
            break
    return rows


def ved_run(judge, epochs: int, batch_size=128, lr=1e-3, patience=1000):
    config = load_config(CONFIG)
    config["train"].update(batch_size=batch_size, lr=lr, max_epochs=epochs, patience=patience)
    with tempfile.TemporaryDirectory() as out:
        history = train(config, out, judge=judge, progress=False)["history"]
    for r in history:
        print(
            f"  ved bs={batch_size} lr={lr} epoch {r['epoch']}: {r['seconds']:.1f}s, "
            f"valid accuracy {r['valid_accuracy']:.3f}",
            flush=True,
        )
    return history


def model_only_epoch(data, batch_size=128, seed=0) -> float:
    """Seconds for 50k images of forward, backward and Adam alone, on batches cut beforehand."""
    config = load_config(CONFIG)
    dataset = make_split(data, config["data"], "train", "cpu")
    batches = list(dataset.batches(batch_size, torch.Generator().manual_seed(seed)))
    return timed_steps(*paper_model(1e-3, seed), batches)


def first_reaching(rows, target):
    return next((r["seconds"] for r in rows if r["valid_accuracy"] >= target), None)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one epoch each, no time-to-accuracy (default: off)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--repeats", type=int, default=3, help="epoch-speed repeats (default: 3)")
    p.add_argument("--json", help="write the numbers here too")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data, judge = mnist.load(), load_judge()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    # (a) epoch speed at batch 128, the same model and loss
    epochs = 1 if args.quick else 2
    ved_epoch, ref_epoch = [], []
    for _ in range(1 if args.quick else args.repeats):
        ved_rows = ved_run(judge, epochs)
        ved_epoch.append(ved_rows[-1]["seconds"] / len(ved_rows))
        ref_rows = reference_run(data, judge, 1, None)
        ref_epoch.append(ref_rows[-1]["seconds"])
    model_epoch = [model_only_epoch(data) for _ in range(1 if args.quick else args.repeats)]
    result = {
        "ved_epoch_s": statistics.median(ved_epoch),
        "reference_epoch_s": statistics.median(ref_epoch),
        "model_only_epoch_s": statistics.median(model_epoch),
        "ved_epoch_s_all": ved_epoch,
        "reference_epoch_s_all": ref_epoch,
        "model_only_epoch_s_all": model_epoch,
    }
    result["speedup"] = result["reference_epoch_s"] / result["ved_epoch_s"]
    result["speedup_ceiling"] = result["reference_epoch_s"] / result["model_only_epoch_s"]

    # (b) time to 99% judge accuracy on validation captions
    if not args.quick:
        best = ved_run(judge, 12, **BEST)
        ref = reference_run(data, judge, 25, 0.99)
        result.update(
            ved_best_settings=f"batch {BEST['batch_size']}, lr {BEST['lr']}",
            ved_s_to_99=first_reaching(best, 0.99),
            ved_final_accuracy=best[-1]["valid_accuracy"],
            reference_s_to_99=first_reaching(ref, 0.99),
            reference_final_accuracy=ref[-1]["valid_accuracy"],
        )

    print("\n| measure | ved | reference (paper-style) |\n|---|---|---|")
    print(
        f"| s per 50k-image epoch, batch 128 | {result['ved_epoch_s']:.2f} "
        f"| {result['reference_epoch_s']:.2f} |"
    )
    print(f"| speed-up | {result['speedup']:.1f}x | 1x |")
    print(
        "| the model's own step alone (batches made beforehand), s per epoch "
        f"| {result['model_only_epoch_s']:.2f} | |"
    )
    print(f"| speed-up ceiling: reference epoch / model step alone | {result['speedup_ceiling']:.1f}x | |")
    if "ved_s_to_99" in result:

        def reached(seconds, epochs):
            return f"{seconds:.0f}" if seconds else f"not reached in {epochs} epochs"

        print(
            f"| s of training to 99% valid accuracy | {reached(result['ved_s_to_99'], len(best))} "
            f"({result['ved_best_settings']}) "
            f"| {reached(result['reference_s_to_99'], len(ref))} (paper settings) |"
        )
        print(
            f"| final valid accuracy | {result['ved_final_accuracy']:.3f} "
            f"| {result['reference_final_accuracy']:.3f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
