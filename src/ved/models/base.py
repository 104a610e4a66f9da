"""The whole contract of a generative model: what the loop, the pipeline and the study ask of it.

A new model family is one module under ved/models defining a Generator subclass with

- `Config`: a dataclass of its [model] keys, each field stating its bounds (rules.py);
  the class is built as `Model(Model.Config(...))`;
- `loss(batch)` -> dict of scalar tensors, "loss" the one minimised (`forward` is `loss`);
- `generate(tokens, lengths, n, generator, *, SETTINGS)` -> (captions, n, 28, 28) in [0, 1]:
  its keyword-only arguments are its sampling settings and their defaults, the only place they
  are written; a config's [sample] table sets them and a call may override them;
- `setting_bounds`: each sampling setting's bounds;
- `label`: its name in the study's tables; `likelihood`: "bernoulli" or "mse";

and one line in models.GENERATORS. The hooks below let a model run its own steps around the loop
(as nanoGPT keeps `configure_optimizers` on the model) without the loop knowing its recipe.
"""

from __future__ import annotations

import inspect
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from .caption_encoders import fit_router


class Generator(nn.Module, metaclass=ABCMeta):
    @dataclass
    class Config:
        """[model] keys of this kind; a family without any keeps this empty one."""

    label = "a generative model"  # its name in the study's tables
    # The least pixel diversity of its samples, relative to real digits', that a trained model of
    # this family should reach: below it `ved train` calls the run collapsed (train.collapse_of).
    # None for a family known to draw near-identical samples by design (the paper's VED).
    min_diversity: float | None = 0.3
    likelihood = "bernoulli"  # of pixels: "bernoulli" (logits) or "mse"; validation reports it

    @abstractmethod
    def loss(self, batch) -> dict[str, torch.Tensor]:
        """The batch's losses (batches.Batch): "loss" is minimised, "recon" picks the best epoch, and
        a VAE's "kl" with a Bernoulli "recon" gives its ELBO in the study's tables."""

    def forward(self, batch) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    @abstractmethod
    def generate(self, tokens, lengths, n: int, generator=None, **settings) -> torch.Tensor:
        """(captions, n, 28, 28) images in [0, 1], `settings` the keyword-only sampling settings."""

    def caption_features(self, tokens, lengths) -> torch.Tensor:
        """What the model makes of each caption, (captions, D): the study's caption-encoding plot."""
        raise NotImplementedError(f"{type(self).__name__} shows no caption features")

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        """The optimiser of the image-training loop."""
        return torch.optim.Adam(self.parameters(), lr=lr, foreach=True)  # foreach: measured faster on CPU

    def prepare(
        self, train, seed: int, fresh: bool, families: list[str], progress: bool = False
    ) -> str | None:
        """Before the first epoch, on every start (`fresh`: not resumed); `train` is the training
        CaptionedImages, `families` each training caption's family. Returns a line for the log, if any."""

    def after_epoch(self, train, generator: torch.Generator) -> None:
        """After each epoch's steps, on the weights that are validated and kept."""

    # Every sampling setting's bounds, inclusive: what a [sample] table, a call, the CLI and the HTTP
    # API accept. A setting without bounds is refused (config.check_sample), so none goes unchecked.
    setting_bounds: dict[str, tuple[float, float]] = {}

    finishes = False  # True if `finish` has work to do: only then does the loop load the best weights

    def finish(self, train, generator: torch.Generator) -> bool:
        """After the last epoch, on the best weights; True if it changed them (they are saved again)."""
        return False

    def check_settings(self, **settings) -> None:
        """ConfigError in one line if these sampling settings (each within its bounds, which config.py
        checks) cannot be used with this model as built."""

    def same_style(self, tokens, lengths, n: int, generator: torch.Generator | None = None, **settings):
        """(n, captions, 28, 28) images in [0, 1]: row i draws every caption in one handwriting."""
        raise NotImplementedError(f"{type(self).__name__} cannot draw one style as several captions")

    @classmethod
    def sample_defaults(cls) -> dict:
        """The sampling settings `generate` takes and their defaults."""
        params = inspect.signature(cls.generate).parameters.values()
        return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}


class CaptionConditioned(Generator):
    """A generator that learns its caption encoder (`self.condition`, a caption_encoders.Condition)
    with the rest of it, as the peers do; only a `routed` encoder's router is fitted beforehand."""

    router_steps = 300

    def prepare(self, train, seed, fresh, families, progress=False):
        if fresh:
            fit_router(self.condition.encoder, train.pool.tokens, families, self.router_steps)

    def caption_features(self, tokens, lengths):
        return self.condition(tokens, lengths)


def image_encoder(channels: int, hidden: int) -> nn.Sequential:
    """28x28 images -> `hidden` features: two stride-2 convolutions (1 -> channels -> 2 x channels)."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 4, 2, 1),
        nn.ReLU(),  # 14x14
        nn.Conv2d(channels, 2 * channels, 4, 2, 1),
        nn.ReLU(),  # 7x7
        nn.Flatten(),
        nn.Linear(2 * channels * 49, hidden),
        nn.ReLU(),
    )


@torch.no_grad()
def units_answering(encoder: nn.Sequential, images: torch.Tensor) -> list[float]:
    """Per ReLU of an image_encoder, the share of its units (a channel: any of its pixels) that answer
    any of `images` (N, 1, 28, 28). A unit that answers none gets no gradient and never answers again:
    with none left in a layer, the encoder is silent for good (docs/conditional-vae.md)."""
    shares, x = [], images
    for layer in encoder:
        x = layer(x)
        if isinstance(layer, nn.ReLU):
            peak = x.amax((2, 3)) if x.dim() == 4 else x
            shares.append((peak > 0).any(0).float().mean().item())
    return shares


def image_decoder(inputs: int, channels: int, hidden: int) -> nn.Sequential:
    """`inputs` features -> 28x28 pixel logits, mirroring image_encoder."""
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 2 * channels * 49),
        nn.ReLU(),
        nn.Unflatten(1, (2 * channels, 7, 7)),
        nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1),
        nn.ReLU(),  # 14x14
        nn.ConvTranspose2d(channels, 1, 4, 2, 1),
    )


def noise(kind: str, generator, rows: torch.Tensor, *shape: int) -> torch.Tensor:
    """torch.randn ("normal") or torch.rand ("uniform") of (len(rows), *shape), drawn on the
    generator's device. `generator`: one torch.Generator (or None) for every row, or a list of one
    per caption, with `rows[i]` (sorted) the caption of draw i: each caption then takes its draws
    from its own generator in the order a call for it alone would, so what it gets does not depend on
    the other captions of the batch (the server draws several requests, each seeded, in one pass)."""
    draw = torch.randn if kind == "normal" else torch.rand
    if not isinstance(generator, (list, tuple)):
        return draw((len(rows), *shape), generator=generator, device=generator.device if generator else "cpu")
    counts = torch.bincount(rows.cpu(), minlength=len(generator)).tolist()
    return torch.cat(
        [draw((c, *shape), generator=g, device=g.device).cpu() for g, c in zip(generator, counts)]
    )
