"""A conditional VAE whose latent is a content class (from the caption) and a style vector.

    caption -> p(k | caption)        caption_prior.py: fitted before any image, then fixed
    image, k -> q(s | x, k)          image encoder + the class
    p(x | s, k)                      transposed-conv decoder, Bernoulli likelihood
    p(s | k) = N(0, I) in the ELBO; for sampling, a mixture fitted to each class's styles (style_prior.py)

Each training caption comes with a content class discovered from the data
(content.py: k-means over every caption's mean image; no parser), so the
decoder is class-conditional from the first step: a conditional VAE that
must find out from the ELBO what a caption means learns it very slowly, as
the digit is worth at most log 10 = 2.3 of the ~100 nats of an image.
`consistency` > 0 adds a critic q(k | x) and trains the decoder to make
prior samples look like their class to it. docs/conditional-vae.md tells
how each part was found and what it bought.

Loss in nats per image: Bernoulli reconstruction + kl_weight x warm-up x KL
of the style [+ critic cross-entropy + consistency x its cross-entropy on prior
samples]. Validation and test batches carry no classes: the caption's
likeliest class stands in for k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import content, vocab
from ..errors import ConfigError
from ..rules import flag, names, number, one_of, whole
from . import caption_encoders
from .base import Generator, image_decoder, image_encoder
from .caption_prior import CaptionFit, CaptionPrior
from .style_prior import StylePrior


class ConditionalVAE(Generator):
    label = "conditional VAE"
    REDRAWS = 10  # with `accept`: at most this many fresh styles for an image its critic doubts

    @dataclass
    class Config:
        """[model] of kind "cvae": each field with what it allows."""

        caption_encoder: str = one_of("word-sum", caption_encoders.ENCODERS)
        caption_hidden: int = whole(64, 1)
        caption_width: int = whole(64, 1)
        experts: dict | None = names()  # `routed`: the expert of each caption family
        content_classes: int = whole(10, 2)  # prepare() discovers this many classes (content.py)
        content_dim: int = whole(8, 1)  # a caption's point in p(k | caption)
        style: int = whole(16, 1)
        channels: int = whole(32, 1)
        hidden: int = whole(256, 1)
        kl_warmup_steps: int = whole(0, 0)
        kl_weight: float = number(1.0, 0, 1000)
        pull: float = number(10.0, 0, 1000)  # the caption fit's pull to its class's prototype
        caption_steps: int = whole(1500, 0)
        consistency: float = number(5.0, 0, 1000)  # > 0: the critic q(k | x) and its term
        # prior styles a step for the consistency term, their classes the batch's first (the batch is
        # shuffled, so a fair draw): half the batch halves its decoding and re-encoding (docs/speed.md);
        # 0: one per image of the batch
        consistency_images: int = whole(0, 0)
        style_components: int = whole(1, 1)  # of the mixture p(s | k) that sampling draws from
        final_fit_steps: int = whole(0, 0)  # > 0: a fresh fit of p(s | k) after training (finish)
        caption_balanced: bool = flag(False)
        caption_gate_penalty: float = number(0.0, 0, 1000)
        caption_lr: float = number(1e-2, 1e-8, 10)
        caption_rest_steps: int = whole(0, 0)  # a routed fit's second stage; 0: as caption_steps
        caption_rest_lr: float = number(0.0, 0, 10)  # a routed fit's second stage; 0: as caption_lr
        # 2: numbers past nine (to captions.MAX_NUMBER) as strips of two digit cells, one style for
        # both; needs [data] numbers
        cells: int = whole(1, 1, 2)

        def caption_fit(self) -> CaptionFit:
            return CaptionFit(
                self.caption_encoder, self.caption_hidden, self.caption_width, self.experts,
                self.content_classes, self.content_dim, self.pull, self.caption_steps,
                self.caption_balanced, self.caption_gate_penalty, self.caption_lr,
                self.caption_rest_steps, self.caption_rest_lr, self.cells,
            )  # fmt: skip

    def __init__(self, config: Config | None = None):
        super().__init__()
        c = self.config = config or self.Config()
        self.content_classes = c.content_classes
        self.caption_prior = CaptionPrior(c.caption_fit())
        for key, own in (("caption_rest_steps", "caption_steps"), ("caption_rest_lr", "caption_lr")):
            if getattr(c, key) and c.caption_encoder != "routed":
                raise ConfigError(
                    f"{key} = {getattr(c, key)!r} sets the second stage of a routed caption fit; got "
                    f"caption_encoder = '{c.caption_encoder}', which fits in one ({own})"
                )
        if c.caption_gate_penalty and not self.caption_prior.gated():
            raise ConfigError(
                f"caption_gate_penalty = {c.caption_gate_penalty!r} needs a caption encoder with gates "
                f"(gated-sum or scaled-sum); got '{c.caption_encoder}'"
            )
        self.kl_warmup_steps, self.kl_weight, self.consistency = c.kl_warmup_steps, c.kl_weight, c.consistency
        self.consistency_images = c.consistency_images
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.image_encoder = image_encoder(c.channels, c.hidden)
        self.to_style = nn.Linear(c.hidden + c.content_classes, 2 * c.style)
        self.style_prior = StylePrior(c.content_classes, c.style, c.style_components)
        self.final_fit_steps = c.final_fit_steps
        # q(k | x) on the image encoder's features: with `consistency`, images decoded from the prior
        # are trained to look like their class to it
        self.critic = nn.Linear(c.hidden, c.content_classes) if c.consistency else None
        self.decoder = image_decoder(c.style + c.content_classes, c.channels, c.hidden)  # 28x28 logits

    # ------------------------------------------------------------ training hooks (models/base.py)

    def prepare(self, train, seed, fresh, families, progress=False):
        centres = content.discover(train, self.content_classes, seed=seed)  # seeded: a resume finds the same
        numbers = train.numbers  # present exactly when cells = 2 (config.check_numbers)
        if numbers is not None:
            content.discover_cells(numbers, train, centres, seed=seed)
        note = self._fit_caption_prior(train.pool, numbers, families, progress) if fresh else None
        # The image steps leave the caption side as fitted; frozen, it is also no parameter whose
        # gradient DDP waits for under torchrun.
        self.caption_prior.requires_grad_(False)
        return note

    def _fit_caption_prior(self, pool, numbers, families, progress) -> str:
        tokens, lengths, classes = pool.tokens, pool.lengths, pool.classes
        if numbers is not None:  # one fit over both, so that numbers and digits share one line
            tokens, lengths = vocab.encode(pool.captions + numbers.captions)
            tokens, lengths = tokens.to(classes.device), lengths.to(classes.device)
            classes = torch.cat([classes, numbers.classes])
            families = None if families is None else [*families, *["arithmetic"] * len(numbers)]
        loss, placed, rate = self.caption_prior.fit_checked(
            tokens, lengths, classes, families, progress=progress
        )
        note = f"caption classes fitted: loss {loss:.3f}, {placed:.1%} of training captions on their class"
        if placed < self.caption_prior.PLACED:
            note += "; every learning rate tried placed fewer than half: lower [model] caption_lr"
        elif rate < 1:
            note += f", at {rate:g} x caption_lr (the full rate placed fewer than half)"
        return note

    def after_epoch(self, train, generator):
        self.fit_style_prior(train, generator)

    @property
    def finishes(self):
        return bool(self.final_fit_steps)

    def finish(self, train, generator):
        # A mixture p(s | k) is refitted afresh to the chosen epoch's styles: the fits that followed
        # the styles from epoch to epoch can end with a few broad components (docs/conditional-vae.md).
        if not self.final_fit_steps:
            return False
        self.fit_style_prior(train, generator, steps=self.final_fit_steps)
        return True

    # sharpness 0 draws every pixel at 0.5: a blank image; accept 1 could never be met
    setting_bounds = {"temperature": (0.0, 5.0), "sharpness": (0.1, 10.0), "accept": (0.0, 0.999)}

    def check_settings(self, **settings):
        accept = settings.get("accept", 0)
        if accept and self.critic is None:  # the veto asks the critic, which only consistency > 0 trains
            raise ConfigError(
                f"accept = {accept} needs the critic that consistency > 0 trains; got consistency = 0"
            )

    # ------------------------------------------------------------ the model

    def caption_features(self, tokens, lengths):
        """What the model makes of a caption (for the encoding plot): its point."""
        return self.caption_prior.point(tokens, lengths)

    def class_logits(self, tokens, lengths):
        """Logits of p(k | caption)."""
        return self.caption_prior(tokens, lengths)

    def loss(self, batch) -> dict[str, torch.Tensor]:
        # The caption side was fitted before any image (prepare) and stays put: training it on
        # along with the images once threw a tenth of the captions into other classes for an epoch.
        # Training pairs carry their discovered class, so a training step never reads its captions
        # (5% of a step); elsewhere the caption's likeliest class stands in.
        if batch.classes is not None:
            k = batch.classes
        else:
            with torch.no_grad():
                content = batch.per_image(self.class_logits(batch.tokens, batch.lengths)).argmax(1)
                k = self.caption_prior.cells_of(content)[1]  # an image is one cell: its last
        h = self.image_encoder(batch.images)
        mean, logvar = self.style_posterior(h, k)
        s = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        recon = (
            F.binary_cross_entropy_with_logits(
                self.decode(s, k).flatten(1), batch.images.flatten(1), reduction="none"
            )
            .sum(1)
            .mean()
        )
        kl = (0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)).sum(1).mean()
        weight = self.kl_weight
        if self.training:
            self.steps += 1
            weight = self.kl_weight * (self.steps / max(1, self.kl_warmup_steps)).clamp(
                max=1.0
            )  # no device sync
        out = {"loss": recon + weight * kl, "recon": recon, "kl": kl}
        if batch.classes is not None:
            if self.critic is not None:
                critic = F.cross_entropy(self.critic(h), k)
                consistency = self.sample_consistency(k[: self.consistency_images or None])
                out["loss"] = out["loss"] + critic + self.consistency * consistency
                out.update(critic=critic, consistency=consistency)
        return out

    def sample_consistency(self, k):
        """Cross-entropy of the critic's class for images decoded from styles drawn from N(0, I), wider
        than the fitted p(s | k): the decoder learns to draw class k wherever s falls."""
        s = torch.randn(len(k), self.to_style.out_features // 2, device=k.device)
        images = torch.sigmoid(self.decode(s, k))
        # the image encoder and critic are frozen here, so that only the decoder learns to please them
        frozen = {
            name: p.detach()
            for name, p in self.named_parameters()
            if name.startswith(("image_encoder.", "critic."))
        }
        h = torch.func.functional_call(self.image_encoder, _under(frozen, "image_encoder."), (images,))
        logits = torch.func.functional_call(self.critic, _under(frozen, "critic."), (h,))
        return F.cross_entropy(logits, k)

    def style_posterior(self, features, k):
        """Mean and log-variance of q(s | x, k) from the image encoder's features and the class."""
        return self.to_style(torch.cat([features, F.one_hot(k, self.content_classes).float()], -1)).chunk(
            2, -1
        )

    def decode(self, style, k):
        """Pixel logits of p(x | s, k), (N, 1, 28, 28)."""
        return self.decoder(torch.cat([style, F.one_hot(k, self.content_classes).float()], -1))

    @torch.no_grad()
    def fit_style_prior(
        self, dataset, generator: torch.Generator, chunk: int = 5000, steps: int | None = None
    ):
        """Fit p(s | k) to the styles q(s | x, k) gives the training images of class k (one caption
        draw each). `steps`: a fresh fit of that many EM steps (StylePrior.fit)."""
        was_training = self.training
        self.eval()
        k = dataset.pool.classes[dataset.pool.draw(dataset.labels, generator)]
        styles = []
        for lo in range(0, len(dataset), chunk):
            images = dataset.images[lo : lo + chunk].unsqueeze(1).float().div(255)
            mean, logvar = self.style_posterior(self.image_encoder(images), k[lo : lo + chunk])
            noise = torch.randn(mean.shape, generator=generator, device=generator.device).to(mean.device)
            styles.append((mean + noise * torch.exp(0.5 * logvar)).float())  # bf16 under autocast
        with torch.autocast(k.device.type, enabled=False):  # the mixture's fit is float64 work
            self.style_prior.fit(torch.cat(styles), k, generator, steps)
        self.train(was_training)

    @torch.no_grad()
    def generate(
        self,
        tokens,
        lengths,
        n: int,
        generator: torch.Generator | list[torch.Generator] | None = None,
        *,
        temperature: float = 1.0,
        sharpness: float = 1.0,
        accept: float = 0.0,
    ) -> torch.Tensor:
        """(captions, n, 28, 28) images in [0, 1]: k the caption's likeliest class, the style drawn
        from p(s | k) with its spread scaled by `temperature` (0: a component's mean style), pixels
        sigmoid(sharpness x decoder logits). With `accept` > 0, an image whose class the model's own
        critic q(k | x) believes less than that gets a fresh style, up to REDRAWS times: the model's
        discard pile, never the judge's.

        sharpness 1 gives the Bernoulli means, which are smoother than real strokes: even styles
        of real training digits decode to images with 6 times the real-vs-real FJD. Doubling the
        logits halves that and makes samples vary as much as real digits do
        (docs/conditional-vae.md); the image stays a deterministic function of (s, k)."""
        self.check_settings(accept=accept)
        # The caption's likeliest class: its probabilities are fitted on training captions only, and
        # drawing from them would spend their leftover 1-4% on other digits.
        with torch.autocast(tokens.device.type, enabled=False):  # a bf16 draw keeps the fp32 class
            first, k = self.caption_prior.cells_of(self.class_logits(tokens, lengths).argmax(1))
        cells = 2 if bool((first >= 0).any()) else 1
        first, k = first.repeat_interleave(n), k.repeat_interleave(n)
        rows = torch.arange(len(tokens)).repeat_interleave(n)  # the caption of each image

        def draw(k, first, rows):
            styles = self.style_prior.draw(k, temperature, generator, rows)
            last = torch.sigmoid(sharpness * in_buckets(self.decode, styles, k))
            return (
                last if cells == 1 else torch.cat([self._first_cells(styles, k, first, sharpness), last], -1)
            )

        images = draw(k, first, rows)
        if accept:
            doubted = torch.nonzero(self._strip_belief(images, k, first) < accept)[:, 0]
            for _ in range(self.REDRAWS):  # only the redrawn images need the critic again
                if not len(doubted):
                    break
                images[doubted] = draw(k[doubted], first[doubted], rows[doubted.cpu()])
                doubted = doubted[self._strip_belief(images[doubted], k[doubted], first[doubted]) < accept]
        return images.view(len(tokens), n, 28, 28 * cells)

    def _first_cells(self, styles, k, first, sharpness):
        """A strip's first cells in the hand of its last: the last cell's style, standardised in its
        class's p(s | k) taken as one Gaussian, through the first cell's class's (as same_style
        writes every digit in one hand); blank where a number has one digit."""
        mean, scale = self.style_prior.overall()
        shown = first.clamp_min(0)
        with torch.autocast(styles.device.type, enabled=False):  # a triangular solve is fp32 work
            z = torch.linalg.solve_triangular(scale[k], (styles.float() - mean[k])[..., None], upper=False)
            moved = mean[shown] + (scale[shown] @ z)[..., 0]
        cell = torch.sigmoid(sharpness * in_buckets(self.decode, moved, shown))
        return cell * (first >= 0).to(cell.dtype)[:, None, None, None]

    def _strip_belief(self, images, k, first):
        """The critic's least belief in any cell of a strip (a blank cell is not asked)."""
        belief = in_buckets(self.critic_belief, images[..., -28:].contiguous(), k)
        if images.shape[-1] == 28:
            return belief
        shown = first.clamp_min(0)
        lead = in_buckets(self.critic_belief, images[..., :28].contiguous(), shown)
        return torch.where(first >= 0, torch.minimum(belief, lead), belief)

    @torch.no_grad()
    def same_style(self, tokens, lengths, n, generator=None, **settings):
        """Row i draws one standardised style as each caption's class: the same noise, scaled by
        `temperature`, through each class's fitted p(s | k) taken as one Gaussian. A style drawn for
        one class and decoded as another keeps drawing the first class's digit (the style carries
        much of the image); the same noise through each class's own spread keeps the stroke width
        and slant instead. `accept` is not used, as a redraw would change the handwriting."""
        settings = {**self.sample_defaults(), **settings}
        temperature, sharpness = settings["temperature"], settings["sharpness"]
        first, k = self.caption_prior.cells_of(self.class_logits(tokens, lengths).argmax(1))
        mean, scale = self.style_prior.overall()
        device = generator.device if generator else "cpu"
        eps = temperature * torch.randn((n, mean.shape[1]), generator=generator, device=device).to(k.device)

        def cell(k):  # (n, captions, 28, 28): row i's noise through each caption's class
            styles = mean[k][None] + (scale[k][None] @ eps[:, None, :, None])[..., 0]
            return torch.sigmoid(sharpness * self.decode(styles.flatten(0, 1), k.repeat(n))).view(
                n, len(k), 28, 28
            )

        if not bool((first >= 0).any()):
            return cell(k)
        return torch.cat([cell(first.clamp_min(0)) * (first >= 0)[None, :, None, None], cell(k)], -1)

    def critic_belief(self, images, k):
        """q(k | x) of the model's own critic for each image's class."""
        return self.critic(self.image_encoder(images)).softmax(1).gather(1, k[:, None])[:, 0]


def in_buckets(fn, *batch: torch.Tensor) -> torch.Tensor:
    """fn(*batch), run on the batch padded to a bucket's rows (a power of two up to 256, then a
    multiple of 256) and cut back. oneDNN keeps a compiled kernel, and its memory, for every batch
    shape it meets; the redraws' sizes differ every time, so a long job's memory grew without end
    (1.2 GB more over a million images; benchmarks/memory.py). In buckets it meets a few dozen
    shapes, at most 256 rows or twice a tiny batch's work more. Each row's result is its own."""
    rows = len(batch[0])
    size = 1 << max(0, (rows - 1).bit_length()) if rows <= 256 else -(-rows // 256) * 256
    if size == rows:
        return fn(*batch)
    padded = [torch.cat([t, t[:1].expand(size - rows, *t.shape[1:])]) for t in batch]
    return fn(*padded)[:rows]


def _under(params: dict, prefix: str) -> dict:
    return {name[len(prefix) :]: p for name, p in params.items() if name.startswith(prefix)}
