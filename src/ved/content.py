"""Content classes discovered from caption-image pairs: k-means over each caption's mean image.

Every training caption comes with a few to a few hundred images. Captions
that mean the same digit have near-identical mean images and captions that
mean different digits do not, so k-means over the mean images groups the
captions by what they show without reading a word of them. Measured on the
default pools: every cluster holds one digit's captions (arithmetic: 128
captions, 305 or more images each; logic: 3,000 captions, 5 or more each).

This uses no parser and no arithmetic: only which image came with which
caption. The conditional VAE learns to put each caption on its class's
point; captions it never saw are placed by what its caption encoder learned.
"""

from __future__ import annotations

import torch

from . import strips as strips_module
from .batches import CaptionedImages


def caption_means(
    dataset: CaptionedImages, generator: torch.Generator, draws: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean image (flattened) and image count of every caption in the pool, over `draws` epochs' worth
    of caption draws (each image paired with a caption as training pairs them)."""
    pixels = dataset.images.flatten(1).float() / 255
    sums = torch.zeros(len(dataset.pool), pixels.shape[1], device=pixels.device)
    counts = torch.zeros(len(dataset.pool), device=pixels.device)
    for _ in range(draws):
        drawn = dataset.pool.draw(dataset.labels, generator)
        sums.index_add_(0, drawn, pixels)
        counts += torch.bincount(drawn, minlength=len(dataset.pool))
    return sums / counts.clamp_min(1)[:, None], counts


def kmeans(
    points: torch.Tensor,
    weights: torch.Tensor,
    k: int,
    generator: torch.Generator,
    iterations: int = 50,
    restarts: int = 10,
) -> torch.Tensor:
    """Weighted k-means with k-means++ starts; the centres of the restart with the lowest cost."""
    best_cost, best = float("inf"), None
    for _ in range(restarts):
        centres = points[torch.multinomial(weights.cpu(), 1, generator=generator).to(points.device)]
        for _ in range(k - 1):
            d2 = torch.cdist(points, centres).pow(2).min(1).values
            pick = torch.multinomial((d2 * weights).cpu() + 1e-12, 1, generator=generator).to(points.device)
            centres = torch.cat([centres, points[pick]])
        for _ in range(iterations):
            onehot = (
                torch.nn.functional.one_hot(torch.cdist(points, centres).argmin(1), k).float()
                * weights[:, None]
            )
            mass = onehot.sum(0)
            centres = torch.where(
                mass[:, None] > 0, onehot.t() @ points / mass.clamp_min(1e-12)[:, None], centres
            )
        cost = (torch.cdist(points, centres).pow(2).min(1).values * weights).sum().item()
        if cost < best_cost:
            best_cost, best = cost, centres
    return best


def discover(train: CaptionedImages, k: int, seed: int = 0) -> torch.Tensor:
    """Give every caption of `train` a content class in 0..k-1, stored as `pool.classes`; returns the
    centres (k, 784). Captions outside training get theirs from the model's caption prior."""
    g = torch.Generator().manual_seed(seed)
    means, counts = caption_means(train, g)
    seen = counts > 0
    centres = kmeans(means[seen], counts[seen], k, g)
    train.pool.classes = torch.cdist(means, centres).argmin(1)
    return centres


def discover_cells(
    numbers, train: CaptionedImages, centres: torch.Tensor, seed: int = 0, draws: int = 20
) -> torch.Tensor:
    """Give every caption of a number past nine its content: which class each cell of its strips
    shows, found as `discover` finds a digit's (the nearest centre to the cell's mean image over
    `draws` strips). Stored as `numbers.classes`, one index per caption: (first cell's class + 1) x k
    + last cell's class, so that a one-cell caption's index is its class (models/caption_prior.py)."""
    g = torch.Generator().manual_seed(seed + 1)
    sums = torch.zeros(len(numbers), 2, 28 * 28, device=centres.device)
    for _ in range(draws):
        strips = strips_module.compose(train.images, train.labels, numbers.numbers, g, 2).float() / 255
        sums += strips.view(-1, 28, 2, 28).permute(0, 2, 1, 3).reshape(len(numbers), 2, -1)
    first, last = (torch.cdist(sums[:, i] / draws, centres).argmin(1) for i in (0, 1))
    numbers.classes = (first + 1) * len(centres) + last
    return numbers.classes
