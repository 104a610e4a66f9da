"""p(s | k): a mixture of Gaussians over the style latent for each content class, fitted to styles.

The conditional VAE is trained with N(0, I) as its style prior, which leaves
holes between the classes' posteriors that decode to no digit in particular.
Sampling draws from this fit instead (docs/conditional-vae.md). It is a
two-stage recipe (Ghosh et al. 2020, "From variational to deterministic
autoencoders"): fit the latent density after the autoencoder.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import noise


class StylePrior(nn.Module):
    FIT_STEPS = 5  # EM steps per class after each epoch, each fit continuing the last one's

    def __init__(self, classes: int, style: int, components: int = 1):
        super().__init__()
        # until the first fit: N(0, I) in every component
        self.register_buffer("weights", torch.full((classes, components), 1.0 / components))
        self.register_buffer("mean", torch.zeros(classes, components, style))
        self.register_buffer("scale", torch.eye(style).repeat(classes, components, 1, 1))

    @torch.no_grad()
    def fit(
        self, styles: torch.Tensor, k: torch.Tensor, generator: torch.Generator, steps: int | None = None
    ):
        """Fit each class's mixture to the styles of its rows; one component is their mean and
        covariance. A mixture is fitted by EM, FIT_STEPS per call, each time from the last fit:
        12 epochs give it 60 steps at a twelfth of their cost. `steps`: that many steps from random
        rows instead, ignoring the last fit."""
        classes, components, dim = self.mean.shape
        eye = torch.eye(dim, device=styles.device)
        for c in range(classes):
            mine = styles[k == c]
            if len(mine) <= dim:  # a class no image fell in keeps what it has
                continue
            if components == 1 or len(mine) <= components * dim:  # one Gaussian, in every component
                weights = torch.full((components,), 1.0 / components, device=mine.device)
                means = mine.mean(0).expand(components, -1)
                covs = (torch.cov(mine.T) + 1e-4 * eye).expand(
                    components, -1, -1
                )  # a ridge, as fit_mixture adds
            elif steps or torch.equal(self.mean[c, 0], self.mean[c, 1]):  # asked, or unfitted: EM cannot
                # part components that coincide, so these start from random rows
                weights, means, covs = fit_mixture(mine, components, generator, steps=steps or self.FIT_STEPS)
            else:  # styles move little from one epoch to the next: a few more steps from the last fit
                scale = self.scale[c]
                start = self.weights[c], self.mean[c], scale @ scale.transpose(1, 2)
                weights, means, covs = fit_mixture(mine, components, generator, start, self.FIT_STEPS)
            self.weights[c] = weights
            self.mean[c] = means
            self.scale[c] = torch.linalg.cholesky(covs)

    def overall(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each class's mixture as one Gaussian (its mean and covariance): means (classes, style) and
        Cholesky factors (classes, style, style)."""
        covs = self.scale @ self.scale.transpose(-1, -2)
        mean = (self.weights[..., None] * self.mean).sum(1)
        apart = self.mean - mean[:, None]
        cov = (self.weights[..., None, None] * (covs + apart[..., :, None] * apart[..., None, :])).sum(1)
        return mean, torch.linalg.cholesky(cov)

    def draw(self, k: torch.Tensor, temperature: float, generator=None, rows=None) -> torch.Tensor:
        """A style for each class in k, each component's spread scaled by `temperature`. `generator`
        and `rows` as in base.noise (default: every draw from one generator)."""
        rows = torch.zeros(len(k), dtype=torch.long) if rows is None else rows
        eps = temperature * noise("normal", generator, rows, self.mean.shape[2]).to(k.device)
        component = torch.zeros_like(k)
        if self.weights.shape[1] > 1:  # one component draws nothing more: old samples stay the same
            u = noise("uniform", generator, rows, 1).to(k.device)
            component = (self.weights[k].cumsum(1) < u).sum(1).clamp(max=self.weights.shape[1] - 1)
        return self.mean[k, component] + (self.scale[k, component] @ eps[:, :, None])[..., 0]


def fit_mixture(x, components: int, generator: torch.Generator, start=None, steps: int = 60):
    """Weights, means and covariances of a Gaussian mixture fitted to the rows of x by `steps` of EM,
    continuing from `start` (weights, means, covariances) or else from `components` random rows,
    each with the covariance of all of them.

    Both steps go through each row's outer product x x^T, made once: a quadratic form is then
    x^T P x = <vec P, vec x x^T>, and a component's scatter sum_n r_n x_n x_n^T is one product of r
    with those rows. Two matrix products with the (n, dim^2) outer products replace whitening every
    row for every component, whose (components, n, dim) temporaries made the fit 4 times slower
    (docs/speed.md). The expanded forms cancel, which float64 absorbs."""
    x = x.double()
    n, dim = x.shape
    if start is None:
        pick = torch.randperm(n, generator=generator, device=generator.device)[:components].to(x.device)
        weights = torch.full((components,), 1.0 / components, dtype=x.dtype, device=x.device)
        means, covs = x[pick], torch.cov(x.T).expand(components, dim, dim)
    else:
        weights, means, covs = (t.double() for t in start)
    eye = torch.eye(dim, dtype=x.dtype, device=x.device)
    outer = (x[:, :, None] * x[:, None, :]).flatten(1)  # (n, dim^2)
    for _ in range(steps):
        chol = torch.linalg.cholesky(covs)
        precision = torch.cholesky_inverse(chol)  # (components, dim, dim)
        pull = (precision @ means[:, :, None])[..., 0]  # P mu
        quad = outer @ precision.flatten(1).T - 2 * x @ pull.T + (means * pull).sum(1)  # (n, components)
        log_det = 2 * chol.diagonal(dim1=1, dim2=2).log().sum(1)
        log_p = -0.5 * (quad.T + log_det[:, None]) + weights.log()[:, None]  # up to a constant
        r = log_p.softmax(0)  # (components, n): each row's share in each component
        mass = r.sum(1) + 1e-9
        weights, means = mass / n, (r @ x) / mass[:, None]
        scatter = (r @ outer).view(components, dim, dim) / mass[:, None, None]
        covs = scatter - means[:, :, None] * means[:, None, :] + 1e-4 * eye
        covs = (covs + covs.transpose(1, 2)) / 2  # exactly symmetric for the next Cholesky
    return weights.float(), means.float(), covs.float()
