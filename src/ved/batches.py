"""Tensor-resident captioned MNIST: images, labels and caption pools live on the training device.

A batch's captions are drawn by tensor indexing into a pre-tokenised pool,
never by per-sample Python, so an epoch costs a few hundred small kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import vocab


@dataclass
class Batch:
    images: torch.Tensor  # (B, 1, 28, 28) float in [0, 1], 1 = ink
    tokens: torch.Tensor  # (U, L) ids of the batch's distinct captions, padded with vocab.PAD
    lengths: torch.Tensor  # (U,) tokens including <start> and <end>
    caption_of: torch.Tensor  # (B,) row of `tokens` that captions each image
    digits: torch.Tensor  # (B,) the digit each image's caption means (for scoring only)
    classes: torch.Tensor | None = None  # (B,) each caption's discovered content class (content.py), if any

    def per_image(self, per_caption: torch.Tensor) -> torch.Tensor:
        """Rows for the distinct captions -> one row per image.

        index_select rather than x[index]: the backward of indexing scatter-adds
        in an order that varies between CPU threads on large batches, and the
        same seed must give the same weights.
        """
        return per_caption.index_select(0, self.caption_of)


class CaptionPool:
    """All captions of one family and split, tokenised once, grouped by digit."""

    def __init__(self, pools: dict[int, list[str]], device="cpu", every_digit: bool = True):
        """`every_digit`: refuse a pool that lacks a digit (it could not caption every image); a
        test split of one result (hold_out_result) is scored with every_digit=False."""
        self.captions = [c for d in range(10) for c in pools[d]]
        counts = [len(pools[d]) for d in range(10)]
        if every_digit and min(counts) == 0:
            raise ValueError(f"caption pool has no caption for digit {counts.index(0)}")
        ids, lengths = vocab.encode(self.captions)
        self.tokens, self.lengths = ids.to(device), lengths.to(device)
        self.digits = torch.repeat_interleave(torch.arange(10), torch.tensor(counts)).to(device)
        self.count = torch.tensor(counts, device=device)
        self.start = torch.cumsum(self.count, 0) - self.count
        self.classes: torch.Tensor | None = None  # set by content.discover

    def draw(self, digits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One random pool index per digit, uniform within that digit's captions."""
        u = torch.rand(digits.shape, generator=generator, device=generator.device if generator else "cpu")
        u = u.to(digits.device)
        return self.start[digits] + (u * self.count[digits]).long().clamp_max(self.count[digits] - 1)

    def __len__(self):
        return len(self.captions)


class CaptionedImages:
    """One split of MNIST with a caption pool; yields shuffled batches as tensors."""

    def __init__(self, images, labels, pool: CaptionPool, device="cpu", numbers=None):
        self.numbers = numbers  # strips.NumberCaptions: captions of numbers past nine, if the data has them
        self.images = torch.as_tensor(images).to(device)  # uint8 stays uint8 until a batch is cut
        self.labels = torch.as_tensor(labels).long().to(device)
        self.pool = pool
        self.device = torch.device(device)

    def __len__(self):
        return len(self.labels)

    def batch(self, index: torch.Tensor, caption_index: torch.Tensor, dedupe: bool = True) -> Batch:
        """Images and captions; with dedupe each distinct caption is encoded once (pools are small).
        Off the CPU neither the dedupe nor the cut to the batch's longest caption is made: each reads
        a value back from the device, and a step that waits for its GPU leaves it idle between
        launches. Encoders mask padding, so a caption reads the same either way."""
        on_cpu = self.device.type == "cpu"
        if dedupe and on_cpu:
            rows, caption_of = torch.unique(caption_index, return_inverse=True)
        else:
            rows, caption_of = caption_index, torch.arange(len(caption_index), device=caption_index.device)
        tokens, lengths = self.pool.tokens[rows], self.pool.lengths[rows]
        if on_cpu:
            tokens = tokens[:, : int(lengths.max())]  # the pool pads to its longest caption
        images = self.images[index].unsqueeze(1).float().div_(255.0)
        classes = None if self.pool.classes is None else self.pool.classes[caption_index]
        return Batch(images, tokens, lengths, caption_of, self.pool.digits[caption_index], classes)

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        """One epoch. With world_size > 1 each rank takes its own slice of every global batch."""
        n = len(self)
        order = (
            torch.randperm(n, generator=generator).to(self.device)
            if shuffle
            else torch.arange(n, device=self.device)
        )
        captions = self.pool.draw(self.labels[order], generator)
        for lo in range(0, n, batch_size):
            idx, cap = order[lo : lo + batch_size], captions[lo : lo + batch_size]
            if world_size > 1:
                idx, cap = idx[rank::world_size], cap[rank::world_size]
            yield self.batch(idx, cap)
