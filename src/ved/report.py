"""Figures (matplotlib, PNG) and the Markdown report."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .checkpoint import atomic_write_bytes  # noqa: E402


def save_figure(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


def grid_image(images: np.ndarray) -> np.ndarray:
    """(rows, n, 28, 28) -> one (rows*30, n*30) mosaic with 2-pixel gutters."""
    rows, n = images.shape[:2]
    mosaic = np.full((rows * 30, n * 30), 40, dtype=np.uint8)
    for r in range(rows):
        for c in range(n):
            mosaic[r * 30 + 1: r * 30 + 29, c * 30 + 1: c * 30 + 29] = images[r, c]
    return mosaic


def sample_grid(images: np.ndarray, row_labels: list[str], path: Path, title: str | None = None) -> None:
    """One row per caption, the caption written at the row's left (the paper's Figure 4 layout)."""
    rows, n = images.shape[:2]
    label_width = max(map(len, row_labels), default=0) * 0.075 + 0.2
    fig = plt.figure(figsize=(label_width + n * 0.42, rows * 0.42 + (0.35 if title else 0.05)))
    ax = fig.add_axes([label_width / (label_width + n * 0.42), 0, 1 - label_width / (label_width + n * 0.42), 1])
    ax.imshow(grid_image(images), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([r * 30 + 15 for r in range(rows)], row_labels, fontsize=9)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    save_figure(fig, path)
