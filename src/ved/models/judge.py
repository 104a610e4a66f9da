"""The judge: a CNN trained on real MNIST that scores generated digits.

Its 128-unit penultimate layer gives the features for the Frechet judge
distance. Loaded for scoring it is frozen and in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

from ..mnist import MNIST_MEAN, MNIST_STD


def _block(c_in, c_out):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)
    )


class Judge(nn.Module):
    def __init__(self, width: int = 24, features: int = 128, dropout: float = 0.3):
        super().__init__()
        self.body = nn.Sequential(
            _block(1, width),
            _block(width, 2 * width),
            _block(2 * width, 4 * width),
            nn.Flatten(),
            nn.Linear(4 * width * 9, features),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, 10))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 28, 28) or (B, 1, 28, 28) in [0, 1]."""
        x = images.reshape(-1, 1, 28, 28).float()
        return self.body(((x - MNIST_MEAN) / MNIST_STD).contiguous(memory_format=torch.channels_last))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
        return torch.cat(
            [self(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)]
        )
