"""The paper's variational encoder-decoder: the caption alone gives z; an MLP draws the digit.

Faithful to the published code: fixed binary word embeddings (width 5), a
GRU (hidden 30) whose last state gives the means and log-variances of 100
latent units (10 Gaussians of dimension 10), and a 100 -> 500 -> 784 decoder.
`caption_encoder` swaps in another caption encoder (see caption_encoders.py)
and leaves the rest as published.
Loss `KL + 2 * MSE` on normalised images, the KL averaged over latent
elements and the MSE over pixels. `likelihood = "bernoulli"` swaps in the
usual ELBO: summed Bernoulli log-likelihood and summed KL, in nats per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..mnist import MNIST_MEAN, MNIST_STD
from ..rules import number, one_of, whole
from . import caption_encoders
from .base import Generator, noise


class PaperVED(Generator):
    label = "paper VED"
    min_diversity = None  # its decoder all but ignores the latent noise: diversity 0.08-0.12 as published

    @dataclass
    class Config:
        """[model] of kind "paper_ved" (the default kind): each field with what it allows."""

        gru_hidden: int = whole(30, 1)
        latent: int = whole(100, 1)
        decoder_hidden: int = whole(500, 1)
        likelihood: str = one_of("mse", ("mse", "bernoulli"))
        mse_weight: float = number(2.0, 0, 1000)
        caption_encoder: str = one_of("binary-gru", caption_encoders.ENCODERS)
        caption_width: int = whole(64, 1)  # learned encoders' word width (binary-gru: 5, fixed)

    def __init__(self, config: Config | None = None):
        super().__init__()
        c = self.config = config or self.Config()
        self.likelihood, self.mse_weight = c.likelihood, c.mse_weight
        self.encoder = caption_encoders.build(c.caption_encoder, hidden=c.gru_hidden, width=c.caption_width)
        self.to_mean = nn.Linear(self.encoder.out_dim, c.latent)
        self.to_logvar = nn.Linear(self.encoder.out_dim, c.latent)
        self.decoder = nn.Sequential(
            nn.Linear(c.latent, c.decoder_hidden), nn.ReLU(), nn.Linear(c.decoder_hidden, 784)
        )

    def encode(self, tokens, lengths):
        h = self.encoder(tokens, lengths)
        return self.to_mean(h), self.to_logvar(h)

    def caption_features(self, tokens, lengths):
        """What the model makes of a caption (for the encoding plot): the latent means."""
        return self.encode(tokens, lengths)[0]

    def loss(self, batch) -> dict[str, torch.Tensor]:
        mean, logvar = self.encode(batch.tokens, batch.lengths)
        mean, logvar = batch.per_image(mean), batch.per_image(logvar)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        out = self.decoder(z)
        kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp())
        x = batch.images.flatten(1)
        if self.likelihood == "mse":
            recon = F.mse_loss(out, (x - MNIST_MEAN) / MNIST_STD)  # mean over pixels and batch
            kl = kl.mean()  # mean over latent elements and batch, as the paper's code
            return {"loss": kl + self.mse_weight * recon, "recon": recon, "kl": kl}
        recon = F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1).mean()
        kl = kl.sum(1).mean()
        return {"loss": recon + kl, "recon": recon, "kl": kl}

    setting_bounds = {"temperature": (0.0, 5.0)}

    @torch.no_grad()
    def generate(self, tokens, lengths, n: int, generator=None, *, temperature: float = 1.0) -> torch.Tensor:
        """(captions, n, 28, 28) images in [0, 1]: z drawn from the caption's Gaussian,
        its spread scaled by `temperature` (0: decode the mean). `generator`: one, or one per caption
        (base.noise)."""
        with torch.autocast(tokens.device.type, enabled=False):  # a bf16 draw reads captions in fp32
            mean, logvar = self.encode(tokens, lengths)
        if isinstance(generator, (list, tuple)):  # (n, latent) per caption, as a call for it alone draws
            rows = torch.arange(len(tokens)).repeat_interleave(n)
            eps = noise("normal", generator, rows, mean.shape[1]).view(len(tokens), n, -1).transpose(0, 1)
        else:  # (n, captions, latent) in one draw, as before per-caption generators existed
            eps = noise("normal", generator, torch.zeros(n, dtype=torch.long), *mean.shape)
        eps = eps.to(mean.device)
        z = (mean + temperature * eps * torch.exp(0.5 * logvar)).transpose(0, 1)
        out = self.decoder(z)
        images = torch.sigmoid(out) if self.likelihood == "bernoulli" else out * MNIST_STD + MNIST_MEAN
        return images.clamp(0, 1).view(len(tokens), n, 28, 28)

    @torch.no_grad()
    def same_style(self, tokens, lengths, n, generator=None, *, temperature=1.0):
        """This model has no style apart from content: every row shows each caption's latent mean."""
        means = self.generate(tokens, lengths, 1, generator, temperature=0.0)[:, 0]
        return means.unsqueeze(0).expand(n, -1, -1, -1).contiguous()
