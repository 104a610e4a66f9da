"""A caption-conditioned rectified flow (a diffusion model), the other peer to measure ved against.

    caption -> c                      a caption encoder of caption_encoders.py, learned with the rest
    x_t = (1 - t) x + t e, e ~ N(0, I)  the straight path from an image (scaled to [-1, 1]) to noise
    v(x_t, t, c) ~ e - x              a small U-Net, trained by mean squared error

The recipe of minRF (Ryu's minimal rectified flow, trained on MNIST) and SD3:
t logit-normal (sigmoid of a standard normal), the caption replaced by a
learned "no caption" vector for a share of the training images (`drop_caption`),
so that one network gives both the conditional and the unconditional velocity.
Sampling integrates from noise at t = 1 to t = 0 in `steps` Euler steps with
classifier-free guidance: v = v(x, t, none) + guidance x (v(x, t, c) - v(x, t, none)).
The loss is the mean squared velocity error per pixel (`recon` too, for the loop's log).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..rules import number, whole
from .base import CaptionConditioned, noise
from .caption_encoders import CaptionConfig, Condition

CHUNK = 1024  # images integrated at once: bounds the memory of a large call


class Block(nn.Module):
    """A residual block whose features are shifted by the time-and-caption embedding."""

    def __init__(self, c_in: int, c_out: int, embedding: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.shift = nn.Linear(embedding, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x))) + self.shift(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class UNet(nn.Module):
    """28 -> 14 -> 7 and back, one block per level, skips joined by concatenation."""

    def __init__(self, ch: int, embedding: int):
        super().__init__()
        self.stem = nn.Conv2d(1, ch, 3, padding=1)
        self.down28 = Block(ch, ch, embedding)
        self.down14 = Block(ch, 2 * ch, embedding)
        self.middle = Block(2 * ch, 2 * ch, embedding)
        self.up14 = Block(4 * ch, 2 * ch, embedding)
        self.up28 = Block(3 * ch, ch, embedding)
        self.out = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, 1, 3, padding=1))

    def forward(self, x, emb):
        h28 = self.down28(self.stem(x), emb)
        h14 = self.down14(F.avg_pool2d(h28, 2), emb)
        h = self.middle(F.avg_pool2d(h14, 2), emb)  # 7x7
        h = self.up14(torch.cat([F.interpolate(h, scale_factor=2.0), h14], 1), emb)
        h = self.up28(torch.cat([F.interpolate(h, scale_factor=2.0), h28], 1), emb)
        return self.out(h)


class CaptionFlow(CaptionConditioned):
    label = "rectified flow"
    likelihood = "mse"

    @dataclass
    class Config(CaptionConfig):
        """[model] of kind "flow": each field with what it allows."""

        channels: int = whole(32, 8)  # of the U-Net's first level; GroupNorm(8) wants a multiple of 8
        drop_caption: float = number(0.1, 0, 1, below_high=True, what="a share")

    def __init__(self, config: Config | None = None):
        super().__init__()
        c = self.config = config or self.Config()
        self.drop_caption, self.router_steps, self.channels = c.drop_caption, c.router_steps, c.channels
        embedding = 4 * c.channels
        self.condition = Condition(c, embedding)
        self.no_caption = nn.Parameter(torch.zeros(embedding))
        self.time = nn.Sequential(
            nn.Linear(c.channels, embedding), nn.SiLU(), nn.Linear(embedding, embedding)
        )
        self.unet = UNet(c.channels, embedding)
        self.layout = torch.contiguous_format

    def use_layout(self, layout: torch.memory_format) -> None:
        """The U-Net's memory layout. On a CPU channels_last draws 1.5x as fast, while a training step
        under bf16 autocast runs 1.4x slower in it (docs/peers.md); the weights' values are the same."""
        if layout != self.layout:
            self.unet.to(memory_format=layout)
            self.layout = layout

    def velocity(self, x, t, c):
        """v(x_t, t, c) for images x (N, 1, 28, 28) in [-1, 1]-scale, times t (N,), conditions c (N, E)."""
        half = self.channels // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
        angles = 1000 * t[:, None] * freqs[None]
        x = x.contiguous(memory_format=self.layout)
        return self.unet(x, self.time(torch.cat([angles.sin(), angles.cos()], 1)) + c)

    def loss(self, batch) -> dict[str, torch.Tensor]:
        self.use_layout(torch.contiguous_format)
        x = batch.images * 2 - 1
        c = batch.per_image(self.condition(batch.tokens, batch.lengths))
        if self.training and self.drop_caption:
            dropped = torch.rand(len(c), 1, device=c.device) < self.drop_caption
            c = torch.where(dropped, self.no_caption.expand_as(c), c)
        t = torch.sigmoid(torch.randn(len(x), device=x.device))
        e = torch.randn_like(x)
        tt = t[:, None, None, None]
        mse = (self.velocity((1 - tt) * x + tt * e, t, c) - (e - x)).pow(2).mean()
        return {"loss": mse, "recon": mse}

    setting_bounds = {"steps": (1, 1000), "guidance": (0.0, 20.0)}

    @torch.no_grad()
    def generate(
        self, tokens, lengths, n: int, generator=None, *, steps: int = 20, guidance: float = 2.0
    ) -> torch.Tensor:
        """(captions, n, 28, 28) images in [0, 1]: noise integrated to an image in `steps` Euler
        steps, the velocity guided towards the caption by `guidance` (1: no guidance, one pass)."""
        self.use_layout(torch.channels_last)
        c = self.condition(tokens, lengths).repeat_interleave(n, 0)
        rows = torch.arange(len(tokens)).repeat_interleave(n)
        start = noise("normal", generator, rows, 1, 28, 28)  # drawn whole, as a call for fewer images
        images = [
            self.integrate(start[lo : lo + CHUNK].to(c.device), c[lo : lo + CHUNK], steps, guidance)
            for lo in range(0, len(c), CHUNK)
        ]
        return torch.cat(images).view(len(tokens), n, 28, 28)

    def integrate(self, x, c, steps: int, guidance: float):
        none = self.no_caption.expand_as(c)
        for i in range(steps, 0, -1):
            t = torch.full((len(x),), i / steps, device=x.device)
            if guidance == 1:
                v = self.velocity(x, t, c)
            else:
                with_caption, without = self.velocity(
                    torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, none])
                ).chunk(2)
                v = without + guidance * (with_caption - without)
            x = x - v / steps
        return ((x + 1) / 2).clamp(0, 1)[:, 0]

    @torch.no_grad()
    def same_style(self, tokens, lengths, n, generator=None, **settings):
        """Row i starts every caption from the same noise: a flow's sampler is deterministic given
        it, and the same start keeps much of the stroke."""
        settings = {**self.sample_defaults(), **settings}
        steps, guidance = settings["steps"], settings["guidance"]
        self.use_layout(torch.channels_last)
        c = self.condition(tokens, lengths).repeat(n, 1)
        start = noise("normal", generator, torch.zeros(n, dtype=torch.long), 1, 28, 28)
        start = start.to(c.device).repeat_interleave(len(tokens), 0)
        images = [
            self.integrate(start[lo : lo + CHUNK], c[lo : lo + CHUNK], steps, guidance)
            for lo in range(0, len(c), CHUNK)
        ]
        return torch.cat(images).view(n, len(tokens), 28, 28)
