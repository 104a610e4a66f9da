"""Captioned MNIST as a torch Dataset, for any family and split, usable without ved's trainer.

    from torch.utils.data import DataLoader
    from ved.data import CaptionedMNIST

    train = CaptionedMNIST("arithmetic", "train")
    loader = DataLoader(train, batch_size=128, shuffle=True, collate_fn=CaptionedMNIST.collate)
    for batch in loader:  # image (B, 1, 28, 28) in [0, 1], tokens (B, L) padded, lengths, digit, caption
        ...

Each image gets one caption of its digit from the split's caption pool, drawn once from `seed` (ved's
own trainer draws a fresh caption each epoch instead). Options of the harder splits
(`train_max_ops`, `hold_out_pairs`, `logic_k`, ...) are those of captions.caption_pool. The test
split opens only inside a final report (ved.holdout).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from . import captions, mnist, vocab


class CaptionedMNIST(Dataset):
    def __init__(self, family: str = "arithmetic", split: str = "train", seed: int = 0, data=None, **options):
        pool = captions.caption_pool(family, split, seed, **options)
        images, labels = (data or mnist.load(progress=False)).split(split)
        self.family, self.split = family, split
        self.images = torch.from_numpy(images)  # uint8, 0 = background
        self.digits = torch.from_numpy(labels.astype("int64"))
        g = torch.Generator().manual_seed(seed)
        pick = torch.rand(len(labels), generator=g)
        self.captions = [
            pool[d][int(u * len(pool[d])) % len(pool[d])] for d, u in zip(labels.tolist(), pick.tolist())
        ]

    def __len__(self) -> int:
        return len(self.digits)

    def __getitem__(self, i: int) -> dict:
        return {
            "image": self.images[i].float().div(255)[None],  # (1, 28, 28) in [0, 1]
            "caption": self.captions[i],
            "tokens": torch.tensor(vocab.tokenize(self.captions[i])),  # <start> words <end>
            "digit": int(self.digits[i]),
        }

    @staticmethod
    def collate(items: list[dict]) -> dict:
        """A batch: images stacked, token ids padded with <pad> and their lengths, digits, captions."""
        tokens, lengths = vocab.encode([item["caption"] for item in items])
        return {
            "image": torch.stack([item["image"] for item in items]),
            "tokens": tokens,
            "lengths": lengths,
            "digit": torch.tensor([item["digit"] for item in items]),
            "caption": [item["caption"] for item in items],
        }
