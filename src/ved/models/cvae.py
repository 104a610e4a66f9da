"""A conditional VAE: a conv encoder q(z | x[, caption]), a learned prior p(z | caption),
a transposed-conv decoder p(x | z[, caption]) with a Bernoulli likelihood.

Sampling draws z from the caption's prior. The prior's mean (and, with
`learned_prior_scale`, its log-variance) is affine in the caption vector:
with a `word-sum` caption encoder that is what should let captions longer
than any seen in training land on the right digit (see caption_encoders.py).
Whether the posterior and the decoder also see the caption is a switch,
because letting them see it gives the prior less reason to hold one point
per digit; the README records what each setting measured.

Loss: the negative ELBO in nats per image, Bernoulli log-likelihood summed
over pixels and KL summed over latent units, the KL weight ramped from 0 to 1
over the first `kl_warmup_steps` training steps (counted in a buffer, so a
resumed run continues the ramp).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import caption_encoders


class ConditionalVAE(nn.Module):
    likelihood = "bernoulli"

    def __init__(self, caption_encoder: str = "word-sum", caption_hidden: int = 64, caption_width: int = 64,
                 latent: int = 16, channels: int = 32, hidden: int = 256, kl_warmup_steps: int = 2000,
                 posterior_sees_caption: bool = False, decoder_sees_caption: bool = False,
                 learned_prior_scale: bool = False):
        super().__init__()
        self.caption = caption_encoders.build(caption_encoder, hidden=caption_hidden, width=caption_width)
        c = self.caption.out_dim
        self.learned_prior_scale = learned_prior_scale
        self.prior = nn.Linear(c, (2 if learned_prior_scale else 1) * latent)
        self.posterior_sees_caption, self.decoder_sees_caption = posterior_sees_caption, decoder_sees_caption
        self.kl_warmup_steps = kl_warmup_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        ch = channels
        self.image_encoder = nn.Sequential(
            nn.Conv2d(1, ch, 4, 2, 1), nn.ReLU(),  # 14x14
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.ReLU(),  # 7x7
            nn.Flatten(), nn.Linear(2 * ch * 49, hidden), nn.ReLU())
        self.to_posterior = nn.Linear(hidden + (c if posterior_sees_caption else 0), 2 * latent)
        self.decoder_in = nn.Sequential(nn.Linear(latent + (c if decoder_sees_caption else 0), hidden), nn.ReLU(),
                                        nn.Linear(hidden, 2 * ch * 49), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.Unflatten(1, (2 * ch, 7, 7)),
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), nn.ReLU(),  # 14x14
            nn.ConvTranspose2d(ch, 1, 4, 2, 1))  # 28x28 logits

    def encode_caption(self, tokens, lengths):
        c = self.caption(tokens, lengths)
        if self.learned_prior_scale:
            mean, logvar = self.prior(c).chunk(2, -1)
        else:
            mean = self.prior(c)
            logvar = torch.zeros_like(mean)
        return c, mean, logvar

    def caption_features(self, tokens, lengths):
        """What the model makes of a caption (for the encoding plot): the prior means."""
        return self.encode_caption(tokens, lengths)[1]

    def decode(self, z, c):
        h = self.decoder_in(torch.cat([z, c], -1) if self.decoder_sees_caption else z)
        return self.decoder(h)

    def loss(self, batch) -> dict[str, torch.Tensor]:
        c, prior_mean, prior_logvar = (batch.per_image(t) for t in self.encode_caption(batch.tokens, batch.lengths))
        h = self.image_encoder(batch.images)
        mean, logvar = self.to_posterior(torch.cat([h, c], -1) if self.posterior_sees_caption else h).chunk(2, -1)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        logits = self.decode(z, c)
        recon = F.binary_cross_entropy_with_logits(logits, batch.images, reduction="none").flatten(1).sum(1).mean()
        kl = 0.5 * (prior_logvar - logvar + (logvar.exp() + (mean - prior_mean).pow(2)) / prior_logvar.exp() - 1)
        kl = kl.sum(1).mean()
        weight = 1.0
        if self.training:
            self.steps += 1
            weight = (self.steps / max(1, self.kl_warmup_steps)).clamp(max=1.0)  # a tensor: no device sync
        return {"loss": recon + weight * kl, "recon": recon, "kl": kl}

    forward = loss

    @torch.no_grad()
    def generate(self, tokens, lengths, n: int, generator: torch.Generator | None = None,
                 temperature: float = 1.0) -> torch.Tensor:
        """(captions, n, 28, 28) pixel probabilities: z from the caption's prior, its spread
        scaled by `temperature` (0: decode the prior mean)."""
        c, mean, logvar = self.encode_caption(tokens, lengths)
        eps = torch.randn((n, *mean.shape), generator=generator,
                          device=generator.device if generator else "cpu").to(mean.device)
        z = (mean + temperature * eps * torch.exp(0.5 * logvar)).transpose(0, 1).reshape(-1, mean.shape[-1])
        images = torch.sigmoid(self.decode(z, c.repeat_interleave(n, 0)))
        return images.view(len(tokens), n, 28, 28)
