"""ved as a benchmark: score any generator's images for captions with ved's judge.

    captions = open("captions.txt").read().splitlines()   # ved captions list ... --out captions.txt
    images = my_generator(captions)                        # (captions, n, 28, 28) uint8, 0 = background
    result = ved.bench.score(images, captions)             # against the test split's real digits

The figures are those of `ved evaluate` (metrics.score_images): the judge's accuracy (per caption,
per family, overall), FJD per digit in the judge's feature space against real digits of the split
(beside `fjd_real`, what held-out real digits score at the same count), precision and recall, and
pixel diversity relative to real digits. Scoring on the test split is a final report, so it opens
the test split for itself (holdout.py); choose your settings with split="valid".
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from . import captions, holdout, metrics, mnist
from .errors import VedError, shown
from .pipeline import load_judge


class BenchError(VedError):
    """Images or captions the benchmark cannot score."""


def check_images(images, count: int) -> torch.Tensor:
    """uint8 (captions, n, 28, 28), one row per caption and n >= 2, as floats in [0, 1]."""
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.dtype != np.uint8:
        raise BenchError(f"images must be uint8 (0 = background, 255 = ink), got {array.dtype}")
    if array.ndim != 4 or array.shape[2:] != (28, 28):
        raise BenchError(f"images must have the shape (captions, n, 28, 28), got {tuple(array.shape)}")
    if array.shape[0] != count:
        raise BenchError(f"images have {array.shape[0]} rows for {count} captions; give one row per caption")
    if array.shape[1] < 2:
        raise BenchError("give at least 2 images per caption: diversity compares a caption's images")
    return torch.from_numpy(np.ascontiguousarray(array)).float().div(255)


def family_of(caption: str) -> str:
    """The family a caption is counted in: its first in FAMILIES order (a bare digit word: label)."""
    return captions.families_of(caption)[0]


@torch.no_grad()
def score(images, caption_list, split: str = "test", judge=None, device="cpu", data=None) -> dict:
    """Score `images` (uint8 (captions, n, 28, 28), row i drawn for caption_list[i]) against the real
    digits of `split` ("test" or "valid"). Returns the overall figures, `by_family` (the same figures
    for each family's rows) and `by_caption` (each caption's digit and accuracy). BenchError or
    CaptionError in one line for input it cannot score."""
    if split not in ("test", "valid"):
        raise BenchError(f"split '{shown(split, 20)}': choose test or valid")
    caption_list = [str(c) for c in caption_list]
    digits = [captions.parse(c) for c in caption_list]  # CaptionError names a caption with no digit
    x = check_images(images, len(caption_list))
    judge = judge or load_judge(device=device)
    opened = holdout.final_report() if split == "test" else contextlib.nullcontext()
    with opened:
        reference = metrics.RealReference(judge, data or mnist.load(progress=False), device, split=split)
        result = metrics.score_images(x, caption_list, judge, reference)
        families = [family_of(c) for c in caption_list]
        result["by_family"] = {
            family: metrics.score_images(
                x[[i for i, f in enumerate(families) if f == family]],
                [c for c, f in zip(caption_list, families) if f == family],
                judge,
                reference,
            )
            for family in dict.fromkeys(families)
        }
    predicted = judge.predict(x.reshape(-1, 28, 28).to(device)).view(x.shape[:2]).cpu()
    result["by_caption"] = [
        {"caption": c, "digit": d, "accuracy": (row == d).float().mean().item()}
        for c, d, row in zip(caption_list, digits, predicted)
    ]
    result["split"] = split
    return result
