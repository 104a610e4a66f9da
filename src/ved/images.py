"""uint8 digit images as mosaics and PNG bytes: what the CLI, the server and the report share.
No matplotlib here, so that the server never loads it."""

from __future__ import annotations

import io

import numpy as np

DEFAULT_N = 8  # images per caption, everywhere: Python, the CLI and the HTTP API
MAX_IMAGES = 1_000_000  # captions x n that one call draws or scores: 784 MB as uint8 (docs/robustness.md)


def check_image_count(captions: int, n: int, error: type[Exception]) -> None:
    """At most MAX_IMAGES images a call (the output alone is 784 bytes an image, 4 times that as
    floats); `error` in one line, before any work, otherwise."""
    if captions * n > MAX_IMAGES:
        raise error(
            f"{captions:,} captions x n = {n:,} is {captions * n:,} images; at most {MAX_IMAGES:,} a call: "
            "draw them in several calls"
        )


def grid_image(images: np.ndarray, pad: int = 1) -> np.ndarray:
    """(rows, n, 28, w) -> one mosaic; `pad` grey pixels around each digit (or strip of digits)."""
    rows, n, height, width = images.shape
    tall, wide = height + 2 * pad, width + 2 * pad
    mosaic = np.full((rows * tall, n * wide), 40, dtype=np.uint8)
    for r in range(rows):
        for c in range(n):
            mosaic[r * tall + pad : r * tall + pad + height, c * wide + pad : c * wide + pad + width] = (
                images[r, c]
            )
    return mosaic


def wrapped_grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """(n, 28, w) -> one row-major mosaic, up to `columns` digits (or strips) a row, blank cells black."""
    cols = min(columns, len(images))
    rows = -(-len(images) // cols)
    cells = np.zeros((rows * cols, *images.shape[1:]), dtype=np.uint8)
    cells[: len(images)] = images
    return grid_image(cells.reshape(rows, cols, *images.shape[1:]), pad=0)


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 grey image as PNG bytes (Pillow, which matplotlib brings along)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)  # small images: speed over a few bytes
    return buf.getvalue()


def as_uint8(images):
    """Float images (a torch tensor) in [0, 1] as uint8 in MNIST convention."""
    import torch  # images.py is read without torch by the commands that start without it

    return (images * 255).round().to(torch.uint8)
