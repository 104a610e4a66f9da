"""Figures: matplotlib plots written as PNG files (the report's, and `ved sample --out x.png`)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .checkpoint import atomic_write_bytes  # noqa: E402
from .images import grid_image  # noqa: E402


def save_figure(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


def sample_grid(images: np.ndarray, row_labels: list[str], path: Path, title: str | None = None) -> None:
    """One row per caption, the caption written at the row's left (the paper's Figure 4 layout)."""
    rows, n = images.shape[:2]
    wide = n * 0.42 * images.shape[-1] / 28  # a strip of two digits is twice a digit's width
    label_width = max(map(len, row_labels), default=0) * 0.075 + 0.2
    fig = plt.figure(figsize=(label_width + wide, rows * 0.42 + (0.35 if title else 0.05)))
    ax = fig.add_axes([label_width / (label_width + wide), 0, 1 - label_width / (label_width + wide), 1])
    ax.imshow(grid_image(images), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([r * 30 + 15 for r in range(rows)], row_labels, fontsize=9)  # 30 = 28 + 2 * pad
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    save_figure(fig, path)


def side_by_side(panels: dict[str, np.ndarray], row_labels: list[str], path: Path) -> None:
    """Several models' samples for the same captions: one panel per model, captions at the left."""
    rows, n = next(iter(panels.values())).shape[:2]
    label_width = max(map(len, row_labels), default=0) * 0.075 + 0.2
    size = (label_width + len(panels) * (n * 0.42 + 0.2), rows * 0.42 + 0.4)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    for i, (ax, (name, images)) in enumerate(zip(axes[0], panels.items())):
        ax.imshow(grid_image(images), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_yticks([r * 30 + 15 for r in range(rows)], row_labels if i == 0 else [], fontsize=9)
        ax.set_xticks([])
        ax.tick_params(length=0)
        ax.set_title(name, fontsize=10)
        for spine in ax.spines.values():
            spine.set_visible(False)
    save_figure(fig, path)


def _panels(n: int, width: float = 3.6, height: float = 2.8):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, axes[0]


def loss_curves(histories: dict[str, list[dict]], path: Path) -> None:
    """Figure 2: train and validation reconstruction loss per epoch, one panel per run."""
    fig, axes = _panels(len(histories))
    for ax, (name, history) in zip(axes, histories.items()):
        epochs = [r["epoch"] for r in history]
        ax.plot(epochs, [r["train_recon"] for r in history], label="train")
        ax.plot(epochs, [r["valid_recon"] for r in history], label="validation")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("reconstruction loss")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def accuracy_curves(histories: dict[str, list[dict]], path: Path) -> None:
    """Figure 3: judge accuracy of generated images per epoch, train and validation captions."""
    fig, axes = _panels(len(histories))
    for ax, (name, history) in zip(axes, histories.items()):
        epochs = [r["epoch"] for r in history]
        ax.plot(epochs, [r.get("train_accuracy", np.nan) for r in history], label="train captions")
        ax.plot(epochs, [r.get("valid_accuracy", np.nan) for r in history], label="validation captions")
        ax.set_ylim(0, 1.02)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("judge accuracy")
    axes[0].legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def accuracy_by_operations(rows: dict[str, dict], path: Path) -> None:
    """Accuracy per number of operations, one bar group per model."""
    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(rows)
    ops = sorted({int(k) for r in rows.values() for k in r})
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [rows[name].get(k, rows[name].get(str(k), np.nan)) for k in ops]
        ax.bar(np.arange(len(ops)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(ops)) + width * (len(names) - 1) / 2, [str(k) for k in ops])
    ax.set_xlabel("operations in the caption")
    ax.set_ylabel("judge accuracy")
    ax.set_ylim(0, 1.02)
    ax.axhline(0.1, color="gray", lw=0.8, ls=":")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def confusion_matrix(confusion, path: Path, title: str) -> None:
    c = np.asarray(confusion, dtype=float)
    c = c / np.maximum(c.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    im = ax.imshow(c, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("judge's digit")
    ax.set_ylabel("caption's digit")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    save_figure(fig, path)


def encoding_projection(
    points: np.ndarray, values: list[int], markers: list[str], path: Path, title: str
) -> None:
    """2-D PCA of caption encodings, coloured by the caption's value; o = train captions, x = test."""
    centred = points - points.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    for marker in sorted(set(markers)):
        keep = np.array([m == marker for m in markers])
        sc = ax.scatter(
            xy[keep, 0],
            xy[keep, 1],
            c=np.asarray(values)[keep],
            cmap="tab10",
            vmin=-0.5,
            vmax=9.5,
            marker=marker,
            s=14 if marker == "o" else 10,
            alpha=0.8,
            linewidths=0.6,
        )
    fig.colorbar(sc, ax=ax, ticks=range(10), label="caption's digit")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, path)
