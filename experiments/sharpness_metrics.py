"""How `sharpness` moves each variety metric, measured without the test images.

    python experiments/sharpness_metrics.py

Arithmetic validation captions, 2,000 samples, scored against the validation reference
(metrics.RealReference(split="valid"): validation's even images, its odd ones held out). Real training
digits of each caption's digit stand for a perfect generator.
"""

import torch

import ved
from ved import captions, metrics, mnist
from ved.pipeline import load_judge


class RealDigits(torch.nn.Module):
    """Real training images of each caption's digit (this script may read captions; models may not)."""

    def __init__(self, data):
        super().__init__()
        images, labels = data.split("train")
        self.by_digit = [torch.as_tensor(images[labels == d]).float() / 255 for d in range(10)]

    def generate(self, tokens, lengths, n, generator=None):
        rows = []
        for row, length in zip(tokens.tolist(), lengths.tolist()):
            pool = self.by_digit[captions.parse(" ".join(captions.WORDS[i] for i in row[1 : length - 1]))]
            rows.append(pool[torch.randint(len(pool), (n,), generator=generator)])
        return torch.stack(rows)


def main():
    data, judge = mnist.load(progress=False), load_judge()
    reference = metrics.RealReference(judge, data, split="valid")
    pool = captions.caption_pool("arithmetic", "valid")
    print("| generator | accuracy | FJD | diversity | precision | recall |\n|---|---|---|---|---|---|")

    def row(name, model, settings=None):
        r = metrics.score_pool(model, judge, pool, reference, samples=2000, settings=settings)
        print(f"| {name} | {r['accuracy']:.1%} | {r['fjd']:.1f} | {r['diversity']:.2f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} |", flush=True)  # fmt: skip

    row("real training digits", RealDigits(data))
    pipe = ved.load("cvae-arithmetic")
    for sharpness in (1.0, 1.5, 2.0, 3.0):
        row(f"cvae-arithmetic, sharpness {sharpness}, no veto", pipe.model, {"sharpness": sharpness})
    row("cvae-arithmetic, shipped settings (sharpness 1.5, accept 0.9)", pipe.model, pipe.settings)
    paper = ved.load("paper-arithmetic")
    row("paper-arithmetic", paper.model, paper.settings)


if __name__ == "__main__":
    main()
