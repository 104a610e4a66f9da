"""The textbook conditional VAE (Sohn, Lee, Yan 2015), a peer to measure ved's model against.

    caption -> c                     a caption encoder of caption_encoders.py, learned with the rest
    q(z | x, c), p(x | z, c)         the conv encoder and transposed-conv decoder of cvae.py's widths
    p(z) = N(0, I)                   for training and for sampling

Loss: the negative ELBO in nats per image (Bernoulli reconstruction + KL). Unlike
ved's model (cvae.py), nothing tells it which captions mean the same digit: it
must find that out from the ELBO, where the digit is worth at most log 10 nats
of an image's ~100 (docs/peers.md measures what that costs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..rules import number, whole
from .base import CaptionConditioned, image_decoder, image_encoder, noise
from .caption_encoders import CaptionConfig, Condition


class TextbookCVAE(CaptionConditioned):
    label = "textbook conditional VAE"

    @dataclass
    class Config(CaptionConfig):
        """[model] of kind "textbook_cvae": each field with what it allows."""

        condition: int = whole(32, 1)  # the caption's vector that both halves are conditioned on
        latent: int = whole(32, 1)
        channels: int = whole(32, 1)
        hidden: int = whole(256, 1)
        kl_weight: float = number(1.0, 0, 1000)

    def __init__(self, config: Config | None = None):
        super().__init__()
        c = self.config = config or self.Config()
        self.latent, self.kl_weight, self.router_steps = c.latent, c.kl_weight, c.router_steps
        self.condition = Condition(c, c.condition)
        self.image_encoder = image_encoder(c.channels, c.hidden)
        self.to_latent = nn.Linear(c.hidden + c.condition, 2 * c.latent)
        self.decoder = image_decoder(c.latent + c.condition, c.channels, c.hidden)  # 28x28 logits

    def decode(self, z, c):
        return self.decoder(torch.cat([z, c], 1))

    def loss(self, batch) -> dict[str, torch.Tensor]:
        c = batch.per_image(self.condition(batch.tokens, batch.lengths))
        mean, logvar = self.to_latent(torch.cat([self.image_encoder(batch.images), c], 1)).chunk(2, 1)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        logits = self.decode(z, c).flatten(1)
        recon = F.binary_cross_entropy_with_logits(logits, batch.images.flatten(1), reduction="none")
        recon = recon.sum(1).mean()
        kl = (0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)).sum(1).mean()
        return {"loss": recon + self.kl_weight * kl, "recon": recon, "kl": kl}

    setting_bounds = {"temperature": (0.0, 5.0), "sharpness": (0.1, 10.0)}

    @torch.no_grad()
    def generate(
        self, tokens, lengths, n: int, generator=None, *, temperature: float = 1.0, sharpness: float = 1.0
    ) -> torch.Tensor:
        """(captions, n, 28, 28) images in [0, 1]: z from N(0, temperature^2 I), pixels
        sigmoid(sharpness x decoder logits) (1: the Bernoulli means, as the textbook samples)."""
        c = self.condition(tokens, lengths)
        rows = torch.arange(len(tokens)).repeat_interleave(n)
        z = temperature * noise("normal", generator, rows, self.latent).to(c.device)
        images = torch.sigmoid(sharpness * self.decode(z, c.repeat_interleave(n, 0)))
        return images.view(len(tokens), n, 28, 28)

    @torch.no_grad()
    def same_style(self, tokens, lengths, n, generator=None, *, temperature=1.0, sharpness=1.0):
        """Row i decodes one z with every caption: z is the style, the caption the content."""
        c = self.condition(tokens, lengths)
        z = temperature * noise("normal", generator, torch.zeros(n, dtype=torch.long), self.latent)
        z = z.to(c.device).repeat_interleave(len(c), 0)
        images = torch.sigmoid(sharpness * self.decode(z, c.repeat(n, 1)))
        return images.view(n, len(c), 28, 28)
