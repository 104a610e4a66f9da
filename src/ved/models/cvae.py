"""A conditional VAE whose latent is a content class (from the caption) and a style vector.

    caption -> point c; p(k | caption) = softmax(-|c - prototype_k|^2)   (the learned caption prior)
    image, k -> q(s | x, k)                                                (image + caption encoder)
    p(x | s, k): transposed-conv decoder, Bernoulli likelihood
    p(s | k) = N(0, I) in the ELBO; for sampling, a Gaussian (or a mixture of `style_components`)
               fitted to each class's styles

Sampling takes the caption's likeliest k, draws s from p(s | k) with its spread scaled by
`temperature`, and shows sigmoid(sharpness x the decoder's logits); with `accept`, images the
model's own critic q(k | x) doubts are drawn again.

Why a content class: the digit is worth at most log 10 = 2.3 of the ~100
nats of an image, so a conditional VAE that must find out from the ELBO
what a caption means learns it very slowly (README: 18-23% judged accuracy
after 9 epochs). Here each training caption comes with a content class
discovered from the data (content.py: k-means over every caption's mean
image; no parser), and before any image is seen the caption encoder is
fitted (`fit_captions`) to put each caption's point on its class's learned
prototype: cross-entropy over the distances plus a pull, as in
`experiments/length_generalisation.py`. With the `word-sum` encoder the
prototypes settle along a line, so captions longer than any in training
land on the right class; with `attention`, logic captions with more
distractors than trained do; `routed` gives each family of the `mixed`
captions its own of these and learns which reads a caption. The caption
side then stays fixed.

In training the decoder and the style posterior see each pair's discovered
class (one-hot), so the decoder is class-conditional from the first step.
Prior styles from N(0, I) still fall between the classes' posteriors and
decode to the wrong digit for a quarter of samples early on; sampling from
the fitted p(s | k) (refitted after every epoch, `fit_style_prior`) does
not. `consistency` > 0 adds a critic q(k | x) and trains the decoder to
make prior samples look like their class to it (0 turns it off).

A small `kl_weight` with a mixture p(s | k) is the two-stage recipe (Ghosh et al. 2020, "From
variational to deterministic autoencoders": fit the latent density after the autoencoder): the
style then carries more of the image, so the decoder draws sharper strokes, and the mixture
follows the styles' clusters that one Gaussian would smear over (README "Beyond the paper").

Loss in nats per image: Bernoulli reconstruction + kl_weight x warm-up x KL
of the style [+ critic cross-entropy + consistency x its cross-entropy on prior
samples]. Validation and test batches carry no classes: the caption's
likeliest class stands in for k.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import caption_encoders


class ConditionalVAE(nn.Module):
    likelihood = "bernoulli"
    REDRAWS = 10  # with `accept`: at most this many fresh styles for an image its critic doubts
    STYLE_FIT_STEPS = 5  # EM steps per class after each epoch, each fit continuing the last one's

    def __init__(self, caption_encoder: str = "word-sum", caption_hidden: int = 64, caption_width: int = 64,
                 content_classes: int = 10, content_dim: int = 8, style: int = 16, channels: int = 32,
                 hidden: int = 256, kl_warmup_steps: int = 0, kl_weight: float = 1.0, pull: float = 10.0,
                 caption_steps: int = 1500, consistency: float = 5.0, temperature: float = 1.0,
                 sharpness: float = 1.0, experts: dict[str, str] | None = None, style_components: int = 1,
                 accept: float = 0.0, final_fit_steps: int = 0):
        super().__init__()
        if not (isinstance(style_components, int) and style_components >= 1):
            raise ValueError(f"style_components must be a whole number >= 1, got {style_components!r}")
        if not 0 <= accept < 1:
            raise ValueError(f"accept must be a probability in [0, 1), got {accept!r}")
        if not (isinstance(final_fit_steps, int) and final_fit_steps >= 0):
            raise ValueError(f"final_fit_steps must be a whole number >= 0, got {final_fit_steps!r}")
        if accept and not consistency:  # the veto asks the critic, which only consistency > 0 trains
            raise ValueError(f"accept = {accept} needs the critic that consistency > 0 trains; got consistency = 0")
        self.content_classes = content_classes  # the trainer discovers this many classes (content.py)
        self.caption = caption_encoders.build(caption_encoder, hidden=caption_hidden, width=caption_width,
                                              experts=experts)
        self.to_point = nn.Linear(self.caption.out_dim, content_dim)
        self.prototypes = nn.Parameter(torch.randn(content_classes, content_dim))
        self.kl_warmup_steps, self.kl_weight, self.pull = kl_warmup_steps, kl_weight, pull
        self.caption_steps, self.consistency = caption_steps, consistency
        # Sampling settings only (training never reads them), kept in the config beside the weights
        self.temperature, self.sharpness, self.accept = temperature, sharpness, accept
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        ch = channels
        self.image_encoder = nn.Sequential(
            nn.Conv2d(1, ch, 4, 2, 1), nn.ReLU(),  # 14x14
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.ReLU(),  # 7x7
            nn.Flatten(), nn.Linear(2 * ch * 49, hidden), nn.ReLU())
        self.to_style = nn.Linear(hidden + content_classes, 2 * style)
        # p(s | k): a mixture of `style_components` Gaussians per class fitted to the styles of the
        # training images after every epoch (fit_style_prior); until then N(0, I)
        c = style_components
        self.register_buffer("style_weights", torch.full((content_classes, c), 1.0 / c))
        self.register_buffer("style_mean", torch.zeros(content_classes, c, style))
        self.register_buffer("style_scale", torch.eye(style).repeat(content_classes, c, 1, 1))
        self.final_fit_steps = final_fit_steps  # > 0: a fresh fit of p(s | k) after training (train.py)
        # q(k | x) on the image encoder's features: with `consistency`, images decoded from the prior
        # are trained to look like their class to it
        self.critic = nn.Linear(hidden, content_classes) if consistency else None
        self.decoder = nn.Sequential(
            nn.Linear(style + content_classes, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * ch * 49), nn.ReLU(),
            nn.Unflatten(1, (2 * ch, 7, 7)),
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), nn.ReLU(),  # 14x14
            nn.ConvTranspose2d(ch, 1, 4, 2, 1))  # 28x28 logits

    def caption_features(self, tokens, lengths, routes=None):
        """What the model makes of a caption (for the encoding plot): its point. `routes`: the expert
        of each caption while a `routed` encoder is fitted; otherwise its router picks."""
        h = self.caption(tokens, lengths) if routes is None else self.caption(tokens, lengths, routes)
        return self.to_point(h)

    def class_logits(self, tokens, lengths, routes=None):
        """Logits of p(k | caption): minus the squared distance from the caption's point to each prototype."""
        return -torch.cdist(self.caption_features(tokens, lengths, routes), self.prototypes).pow(2)

    def class_loss(self, logits, k):
        """Cross-entropy over the distances plus the pull to k's prototype, measured in units of the
        prototypes' spread so that they cannot just shrink together."""
        spread = torch.pdist(self.prototypes).pow(2).mean().detach()
        return F.cross_entropy(logits, k) + self.pull * (-logits.gather(1, k[:, None])).mean() / spread

    def fit_captions(self, tokens, lengths, classes, families: list[str] | None = None, lr: float = 1e-2,
                     progress: bool = False):
        """Before any image: `caption_steps` full-batch Adam steps of the class loss over the training
        pool. It needs ~1,000 steps to settle, more than an epoch of image batches gives it.

        `families`: the family each caption came from, for a `routed` encoder. Its first family's
        expert then places the prototypes alone; after that, with it, the point map and the
        prototypes fixed, the other experts and the router learn to reach them (as many steps again,
        the learning rate decaying to 0). Fitted all at once, the other families pinned the
        prototypes early where `word-sum` cannot add up to them: it placed 58-64% of unseen
        2-5-operation captions right instead of 100%. At a constant rate the second stage ended
        once with the logic expert off its classes (46% of its own captions), once right."""
        point_map = [*self.to_point.parameters(), self.prototypes]
        if not isinstance(self.caption, caption_encoders.Routed):
            return self._fit_classes(tokens, lengths, classes, None, [*self.caption.parameters(), *point_map], lr,
                                     progress)
        if families is None:
            raise ValueError("caption_encoder 'routed' needs each training caption's family")
        routes = self.caption.routes(families).to(tokens.device)
        lead = int(routes.min())  # the first family in the experts' order that has captions here
        first = routes == lead
        self._fit_classes(tokens[first], lengths[first], classes[first], routes[first],
                          [*self.caption.experts[lead].parameters(), *point_map], lr, progress)
        others = [e for i, e in enumerate(self.caption.experts) if i != lead]
        rest = [p for e in others for p in e.parameters()] + list(self.caption.votes.parameters())
        return self._fit_classes(tokens, lengths, classes, routes, rest, lr, progress, decay=True)

    def _fit_classes(self, tokens, lengths, classes, routes, params, lr, progress, decay=False):
        optimizer = torch.optim.Adam(params, lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.caption_steps) if decay else None
        tokens = tokens[:, : int(lengths.max())]
        families = [] if routes is None else [routes == r for r in routes.unique()]
        loss = torch.zeros(())
        for _ in tqdm(range(self.caption_steps), desc="caption classes", leave=False, disable=not progress):
            logits = self.class_logits(tokens, lengths, routes)
            if routes is None:
                loss = self.class_loss(logits, classes)
            else:  # every family weighs the same, however many captions it has (logic has 3,000, label 10)
                votes = self.caption.router_logits(tokens)
                loss = torch.stack([F.cross_entropy(votes[f], routes[f]) + self.class_loss(logits[f], classes[f])
                                    for f in families]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule:
                schedule.step()
        return loss.item()

    def loss(self, batch) -> dict[str, torch.Tensor]:
        # The caption side was fitted before any image (fit_captions) and stays put: training it on
        # along with the images once threw a tenth of the captions into other classes for an epoch.
        with torch.no_grad():
            logits = batch.per_image(self.class_logits(batch.tokens, batch.lengths))
        # Training pairs carry their discovered class; elsewhere the caption's likeliest class stands in.
        k = batch.classes if batch.classes is not None else logits.argmax(1)
        h = self.image_encoder(batch.images)
        mean, logvar = self.style_posterior(h, k)
        s = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        recon = F.binary_cross_entropy_with_logits(self.decode(s, k).flatten(1),
                                                   batch.images.flatten(1), reduction="none").sum(1).mean()
        kl = (0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)).sum(1).mean()
        weight = self.kl_weight
        if self.training:
            self.steps += 1
            weight = self.kl_weight * (self.steps / max(1, self.kl_warmup_steps)).clamp(max=1.0)  # no device sync
        out = {"loss": recon + weight * kl, "recon": recon, "kl": kl}
        if batch.classes is not None:
            classes = self.class_loss(logits, k)
            out["classes"] = classes
            if self.critic is not None:
                critic = F.cross_entropy(self.critic(h), k)
                consistency = self.sample_consistency(k)
                out["loss"] = out["loss"] + critic + self.consistency * consistency
                out.update(critic=critic, consistency=consistency)
        return out

    def sample_consistency(self, k):
        """Cross-entropy of the critic's class for images decoded from styles drawn from N(0, I), wider
        than the fitted p(s | k): the decoder learns to draw class k wherever s falls."""
        s = torch.randn(len(k), self.to_style.out_features // 2, device=k.device)
        images = torch.sigmoid(self.decode(s, k))
        # the image encoder and critic are frozen here, so that only the decoder learns to please them
        frozen = {name: p.detach() for name, p in self.named_parameters()
                  if name.startswith(("image_encoder.", "critic."))}
        h = torch.func.functional_call(self.image_encoder, _under(frozen, "image_encoder."), (images,))
        logits = torch.func.functional_call(self.critic, _under(frozen, "critic."), (h,))
        return F.cross_entropy(logits, k)

    forward = loss

    def style_posterior(self, features, k):
        """Mean and log-variance of q(s | x, k) from the image encoder's features and the class."""
        return self.to_style(torch.cat([features, F.one_hot(k, self.content_classes).float()], -1)).chunk(2, -1)

    def decode(self, style, k):
        """Pixel logits of p(x | s, k), (N, 1, 28, 28)."""
        return self.decoder(torch.cat([style, F.one_hot(k, self.content_classes).float()], -1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Models saved before p(s | k) became a mixture hold one Gaussian per class and no weights.
        mean = state_dict.get(prefix + "style_mean")
        if mean is not None and mean.dim() == 2:
            state_dict[prefix + "style_mean"] = mean[:, None]
            state_dict[prefix + "style_scale"] = state_dict[prefix + "style_scale"][:, None]
            state_dict.setdefault(prefix + "style_weights", torch.ones(len(mean), 1, device=mean.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def fit_style_prior(self, dataset, generator: torch.Generator, chunk: int = 5000, steps: int | None = None):
        """p(s | k) := a mixture of `style_components` Gaussians fitted to the styles q(s | x, k) gives
        the training images of class k (one caption draw each); one component is their mean and
        covariance. A mixture is fitted by EM, a few steps per epoch, each time from the last fit:
        12 epochs give it 60 steps at a twelfth of their cost. `steps`: that many steps from random
        rows instead, ignoring the last fit (after training: train.py). N(0, I) leaves holes between
        the classes' posteriors that decode to no digit in particular; the fitted Gaussians do not
        (README "Beyond the paper")."""
        was_training = self.training
        self.eval()
        k = dataset.pool.classes[dataset.pool.draw(dataset.labels, generator)]
        styles = []
        for lo in range(0, len(dataset), chunk):
            images = dataset.images[lo: lo + chunk].unsqueeze(1).float().div(255)
            mean, logvar = self.style_posterior(self.image_encoder(images), k[lo: lo + chunk])
            noise = torch.randn(mean.shape, generator=generator, device=generator.device).to(mean.device)
            styles.append(mean + noise * torch.exp(0.5 * logvar))
        styles = torch.cat(styles)
        components = self.style_weights.shape[1]
        eye = torch.eye(styles.shape[1], device=styles.device)
        for c in range(self.content_classes):
            mine = styles[k == c]
            if len(mine) <= styles.shape[1]:  # a class no image fell in keeps what it has
                continue
            if components == 1 or len(mine) <= components * styles.shape[1]:  # one Gaussian, in every component
                weights = torch.full((components,), 1.0 / components, device=mine.device)
                means = mine.mean(0).expand(components, -1)
                covs = (torch.cov(mine.T) + 1e-4 * eye).expand(components, -1, -1)  # a ridge, as fit_mixture adds
            elif steps or torch.equal(self.style_mean[c, 0], self.style_mean[c, 1]):  # asked, or unfitted: EM
                # cannot part components that coincide, so these start from random rows
                weights, means, covs = fit_mixture(mine, components, generator, steps=steps or self.STYLE_FIT_STEPS)
            else:  # styles move little from one epoch to the next: a few more steps from the last fit
                scale = self.style_scale[c]
                start = self.style_weights[c], self.style_mean[c], scale @ scale.transpose(1, 2)
                weights, means, covs = fit_mixture(mine, components, generator, start, self.STYLE_FIT_STEPS)
            self.style_weights[c] = weights
            self.style_mean[c] = means
            self.style_scale[c] = torch.linalg.cholesky(covs)
        self.train(was_training)

    def draw_styles(self, k, temperature: float, generator: torch.Generator | None = None):
        """Styles from p(s | k) for each class in k, each component's spread scaled by `temperature`."""
        device = generator.device if generator else "cpu"
        eps = torch.randn((len(k), self.style_mean.shape[2]), generator=generator, device=device)
        eps = temperature * eps.to(k.device)
        component = torch.zeros_like(k)
        if self.style_weights.shape[1] > 1:  # one component draws nothing more: old samples stay the same
            u = torch.rand((len(k), 1), generator=generator, device=device).to(k.device)
            component = (self.style_weights[k].cumsum(1) < u).sum(1).clamp(max=self.style_weights.shape[1] - 1)
        return self.style_mean[k, component] + (self.style_scale[k, component] @ eps[:, :, None])[..., 0]

    @torch.no_grad()
    def generate(self, tokens, lengths, n: int, generator: torch.Generator | None = None,
                 temperature: float | None = None) -> torch.Tensor:
        """(captions, n, 28, 28) images in [0, 1]: k the caption's likeliest class, the style drawn
        from p(s | k) with its spread scaled by `temperature` (0: a component's mean style; None: the
        model's own), pixels sigmoid(sharpness x decoder logits). With `accept` > 0, an image whose
        class the model's own critic q(k | x) believes less than that gets a fresh style, up to
        REDRAWS times: the model's discard pile, never the judge's (README "Beyond the paper").

        sharpness 1 gives the Bernoulli means, which are smoother than real strokes: even styles
        of real training digits decode to images with 6 times the real-vs-real FJD. Doubling the
        logits halves that and makes samples vary as much as real digits do (README "Beyond the
        paper"); the image stays a deterministic function of (s, k)."""
        temperature = self.temperature if temperature is None else temperature
        # The caption's likeliest class: its probabilities are fitted on training captions only, and
        # drawing from them would spend their leftover 1-4% on other digits (README "Beyond the paper").
        k = self.class_logits(tokens, lengths).argmax(1).repeat_interleave(n)
        images = self.decode_images(self.draw_styles(k, temperature, generator), k)
        if self.accept:
            doubted = torch.nonzero(self.critic_belief(images, k) < self.accept)[:, 0]
            for _ in range(self.REDRAWS):  # only the redrawn images need the critic again
                if not len(doubted):
                    break
                images[doubted] = self.decode_images(self.draw_styles(k[doubted], temperature, generator), k[doubted])
                doubted = doubted[self.critic_belief(images[doubted], k[doubted]) < self.accept]
        return images.view(len(tokens), n, 28, 28)

    def decode_images(self, style, k):
        return torch.sigmoid(self.sharpness * self.decode(style, k))

    def critic_belief(self, images, k):
        """q(k | x) of the model's own critic for each image's class."""
        return self.critic(self.image_encoder(images)).softmax(1).gather(1, k[:, None])[:, 0]


def fit_mixture(x, components: int, generator: torch.Generator, start=None, steps: int = 60):
    """Weights, means and covariances of a Gaussian mixture fitted to the rows of x by `steps` of EM,
    continuing from `start` (weights, means, covariances) or else from `components` random rows,
    each with the covariance of all of them."""
    x = x.double()
    n, dim = x.shape
    if start is None:
        pick = torch.randperm(n, generator=generator, device=generator.device)[:components].to(x.device)
        weights = torch.full((components,), 1.0 / components, dtype=x.dtype, device=x.device)
        means, covs = x[pick], torch.cov(x.T).expand(components, dim, dim)
    else:
        weights, means, covs = (t.double() for t in start)
    eye = torch.eye(dim, dtype=x.dtype, device=x.device)
    for _ in range(steps):
        chol = torch.linalg.cholesky(covs)
        centred = x - means[:, None]  # (components, n, dim)
        white = torch.linalg.solve_triangular(chol, centred.transpose(1, 2), upper=False)  # (components, dim, n)
        log_det = 2 * chol.diagonal(dim1=1, dim2=2).log().sum(1)
        log_p = -0.5 * (white.pow(2).sum(1) + log_det[:, None]) + weights.log()[:, None]  # up to a constant
        r = log_p.softmax(0)  # (components, n): each row's share in each component
        mass = r.sum(1) + 1e-9
        weights, means = mass / n, (r @ x) / mass[:, None]
        centred = x - means[:, None]
        covs = (r[:, :, None] * centred).transpose(1, 2) @ centred / mass[:, None, None] + 1e-4 * eye
    return weights.float(), means.float(), covs.float()


def _under(params: dict, prefix: str) -> dict:
    return {name[len(prefix):]: p for name, p in params.items() if name.startswith(prefix)}
