"""Numbers past nine as strips: one 28x28 digit cell per place, side by side (28 x 56 for two digits).

MNIST has one digit an image and no writer ids, so a training strip for a caption of 15 is an MNIST
1 and an MNIST 5 of the same split, each drawn at random: the strips show the caption side which
digit each cell of a caption's image holds (content.discover_cells), while the image side still
learns from single digits. One handwriting across a strip comes from drawing all its cells with one
style (ConditionalVAE.generate), which random pairs of MNIST writers could not teach.

Strips are right-aligned like numbers in a column: a one-digit number in a two-cell strip has a blank
first cell, so the ones are always the last cell.
"""

from __future__ import annotations

import torch

from . import captions, vocab

CELL = 28


def cells_of(numbers: list[int]) -> int:
    """The cells a strip of these numbers needs: the digits of the longest."""
    return max(len(captions.digits_of(n)) for n in numbers)


class NumberCaptions:
    """The captions of numbers past nine of one split, tokenised, with the number each means (to
    compose its strips and to score them; no model reads it)."""

    def __init__(self, pool: dict[int, list[str]], device="cpu"):
        self.captions = [c for n in sorted(pool) for c in pool[n]]
        self.numbers = torch.tensor(
            [n for n in sorted(pool) for _ in pool[n]], dtype=torch.long, device=device
        )
        self.tokens, self.lengths = (t.to(device) for t in vocab.encode(self.captions))
        self.classes: torch.Tensor | None = None  # each caption's content, set by content.discover_cells

    def __len__(self):
        return len(self.captions)


def place_digits(numbers: torch.Tensor, cells: int) -> torch.Tensor:
    """(N, cells) the digit each cell shows, right-aligned; -1 for a blank cell."""
    places = 10 ** torch.arange(cells - 1, -1, -1, device=numbers.device)
    digits = numbers[:, None] // places % 10
    leading_blank = numbers[:, None] < places  # no digit that far left (0 keeps its one cell)
    leading_blank[:, -1] = False
    return digits.masked_fill(leading_blank, -1)


def compose(
    images: torch.Tensor, labels: torch.Tensor, numbers: torch.Tensor, generator: torch.Generator, cells: int
) -> torch.Tensor:
    """(N, 28, 28 x cells) uint8 strips: each cell an image of its digit drawn at random from
    `images` (uint8, (M, 28, 28)) with `labels`, blank cells 0 (background)."""
    order = torch.argsort(labels, stable=True)
    count = torch.bincount(labels, minlength=10)
    start = torch.cumsum(count, 0) - count
    digits = place_digits(numbers, cells)
    shown = digits.clamp_min(0)
    u = torch.rand(digits.shape, generator=generator, device=generator.device).to(labels.device)
    picks = order[start[shown] + (u * count[shown]).long().clamp_max(count[shown] - 1)]
    cell_images = images[picks] * (digits >= 0)[..., None, None]  # (N, cells, 28, 28)
    return cell_images.permute(0, 2, 1, 3).reshape(len(numbers), CELL, CELL * cells)


def drawn_cells(images: torch.Tensor, numbers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The cells that show a digit, (drawn cells, n, 28, 28), caption by caption and first to last,
    and the digit each shows: strips (captions, n, 28, 28 x c) drawn for `numbers` (captions,)."""
    digits = place_digits(numbers, images.shape[-1] // CELL)
    shown = digits >= 0
    return cells(images).transpose(1, 2)[shown], digits[shown]


def one_cell(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images drawn for one-digit captions, (..., 28, 28 x c), as one cell each: the last cell, and
    whether the strip had no first cell. A numbers model draws a one-digit caption that it reads as
    a number past nine with a first cell: that drawing is wrong whatever its last cell shows."""
    if images.shape[-1] == CELL:
        return images, torch.ones(images.shape[:-2], dtype=torch.bool, device=images.device)
    return images[..., -CELL:], ~images[..., :-CELL].flatten(-2).any(-1)  # a blank cell is all 0


BLANK_INK = 0.05  # a blank cell's mean ink at most: real digits average 0.13 (a one-pixel stroke 0.04)


def cells(images: torch.Tensor) -> torch.Tensor:
    """(..., 28, 28 x c) strips -> (..., c, 28, 28) their cells, first to last."""
    c = images.shape[-1] // CELL
    return images.unflatten(-1, (c, CELL)).movedim(-2, -3)


@torch.no_grad()
def read(judge, images: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
    """Whether each strip shows its number: every cell of its digits read right by the judge, every
    cell left of them blank. images (N, 28, 28 x c) in [0, 1] (or uint8), numbers (N,)."""
    floats = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    per_cell = cells(floats)  # (N, c, 28, 28)
    want = place_digits(numbers.to(per_cell.device), per_cell.shape[1])
    read_as = judge.predict(per_cell.flatten(0, 1)).view(want.shape)
    blank = per_cell.mean((-1, -2)) <= BLANK_INK
    right = torch.where(want >= 0, read_as == want, blank)
    return right.all(1)
