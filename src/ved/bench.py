"""ved as a benchmark: score any generator's images for captions with ved's judge.

    captions = open("captions.txt").read().splitlines()   # ved captions list ... --out captions.txt
    images = my_generator(captions)                        # (captions, n, 28, 28) uint8, 0 = background
    result = ved.bench.score(images, captions)             # against the test split's real digits

The figures are those of `ved evaluate` (metrics.score_images): the judge's accuracy (per caption,
per family, overall), FD_judge and KID_judge per digit in the judge's feature space against real
digits of the split (FD_judge beside `fd_judge_real`, what held-out real digits score at the same
count; KID_judge with its standard deviation), precision and recall, and
pixel diversity relative to real digits. Scoring on the test split is a final report, so it opens
the test split for itself (holdout.py); choose your settings with split="valid".
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from . import captions, holdout, metrics, mnist, strips
from .errors import VedError, shown
from .images import MAX_IMAGES, check_image_count
from .pipeline import load_judge


class BenchError(VedError):
    """Images or captions the benchmark cannot score."""


IMAGE_SIZES = ((28, 28), (28, 56))
SHAPES = "(captions, n, 28, 28), or (captions, n, 28, 56) for strips of numbers past nine"


def check_images(images, count: int) -> torch.Tensor:
    """uint8 (captions, n, 28, 28) or strips (captions, n, 28, 56), one row per caption and n >= 2,
    as a uint8 tensor (scored a chunk at a time: floats of every image at once would take four times
    the memory)."""
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.dtype != np.uint8:
        raise BenchError(f"images must be uint8 (0 = background, 255 = ink), got {array.dtype}")
    if array.ndim != 4 or array.shape[2:] not in IMAGE_SIZES:
        raise BenchError(f"images must have the shape {SHAPES}, got {tuple(array.shape)}")
    if array.shape[0] != count:
        raise BenchError(f"images have {array.shape[0]} rows for {count} captions; give one row per caption")
    if array.shape[1] < 2:
        raise BenchError("give at least 2 images per caption: diversity compares a caption's images")
    check_image_count(array.shape[0], array.shape[1] * (array.shape[3] // 28), BenchError)
    return torch.from_numpy(np.ascontiguousarray(array))


def read_samples(path) -> np.ndarray:
    """A .npy file of uint8 images (captions, n, 28, 28) or strips (captions, n, 28, 56), its header
    checked before anything is allocated: the shape it claims must fit MAX_IMAGES and the bytes the
    file holds. Never unpickled."""
    where = f"--samples '{shown(path, 200)}'"
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"npy format version {version}")
            read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
            shape, fortran, dtype = read_header(f, max_header_size=10_000)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
            if dtype != np.uint8 or len(shape) != 4 or tuple(shape[2:]) not in IMAGE_SIZES or fortran:
                raise BenchError(
                    f"{where} is not a .npy array of uint8 images {SHAPES}, 0 = background: "
                    f"it holds {dtype} {tuple(shape)}"
                )
            count = int(np.prod(shape, dtype=np.int64)) // 784  # 28 x 28 cells
            if count > MAX_IMAGES:
                raise BenchError(f"{where} holds {count:,} images; at most {MAX_IMAGES:,} are scored at once")
            if size - offset != count * 784:
                raise BenchError(f"{where} claims {count:,} images but holds {size - offset:,} bytes of them")
            return np.fromfile(f, dtype=np.uint8, count=count * 784).reshape(shape)
    except BenchError:
        raise
    except FileNotFoundError:
        raise BenchError(f"{where} not found") from None
    except IsADirectoryError:
        raise BenchError(f"{where} is a folder; give a .npy file") from None
    except (OSError, ValueError) as e:  # not a .npy file: numpy's own words
        raise BenchError(f"{where} is not a .npy array of uint8 images ({shown(str(e), 80)})") from None


def family_of(caption: str) -> str:
    """The family a caption is counted in: its first in FAMILIES order (a bare digit word: label)."""
    return captions.families_of(caption)[0]


@torch.no_grad()
def score(
    images, caption_list, split: str = "test", judge=None, device="cpu", data=None, cas: bool = False
) -> dict:
    """Score `images` (uint8 (captions, n, 28, 28), row i drawn for caption_list[i]) against the real
    digits of `split` ("test" or "valid"). Returns the overall figures, `by_family` (the same figures
    for each family's rows) and `by_caption` (each caption's digit and accuracy); with `cas`, also the
    Classification Accuracy Score of these images (a classifier trained on them, tested on the split's
    real digits; metrics.classification_accuracy_score), which trains two classifiers. BenchError or
    CaptionError in one line for input it cannot score."""
    if split not in ("test", "valid"):
        raise BenchError(f"split '{shown(split, 20)}': choose test or valid")
    caption_list = [str(c) for c in caption_list]
    x = check_images(images, len(caption_list))
    wide = x.shape[-1] > 28  # strips of numbers past nine
    # CaptionError names a caption with no digit (or number)
    values = [(captions.number if wide else captions.parse)(c) for c in caption_list]
    judge = judge or load_judge(device=device)
    data = data or mnist.load(progress=False)
    opened = (
        holdout.final_report(f"{len(images)} captions' images scored by ved.bench")
        if split == "test"
        else contextlib.nullcontext()
    )
    with opened:
        reference = metrics.RealReference(judge, data, device, split=split)
        result = (metrics.score_strips if wide else metrics.score_images)(x, caption_list, judge, reference)
        if cas:  # a classifier trained on every drawn cell, labelled with its digit
            cells, digits = strips.drawn_cells(x, torch.tensor(values))
            per_image = digits.repeat_interleave(x.shape[1])
            result.update(metrics.classification_accuracy_score(cells.flatten(0, 1), per_image, data, split))
        if wide:  # every number past nine is an arithmetic caption
            result["by_family"] = {"arithmetic": {k: v for k, v in result.items() if k != "by_caption"}}
            result["split"] = split
            return result
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
    predicted = metrics.judge_images(judge, x.reshape(-1, 28, 28), device)[1].view(x.shape[:2])
    result["by_caption"] = [
        {"caption": c, "digit": d, "accuracy": (row == d).float().mean().item()}
        for c, d, row in zip(caption_list, values, predicted)
    ]
    result["split"] = split
    return result
