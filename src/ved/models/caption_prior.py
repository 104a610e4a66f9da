"""p(k | caption): a caption encoder, a point per caption, and a learned prototype per content class.

    caption -> point c;  p(k | caption) = softmax(-|c - prototype_k|^2)

`fit` trains it before any image is seen, on the training captions and the
content classes discovered for them (content.py): cross-entropy over the
distances plus a pull to the class's prototype. With the `word-sum` encoder
the prototypes settle along a line, so captions longer than any in training
land on the right class; with `attention`, logic captions with more
distractors than trained do; `routed` gives each family of the `mixed`
captions its own of these and learns which reads a caption.

Numbers past nine (cells = 2) have a class per cell of their strip, and
their prototypes are sums: first cell j's vector plus last cell k's,

    prototype(j, k) = leading_j + prototypes_k,   j = 0 for no first cell,

so a number no training caption makes still has its point, from cells seen
in other numbers, and on the line the sums lay out it sits where its value
does. The fit weighs only the contents seen in training (a held-out number
pushed away by every step's cross-entropy would never be drawn); drawing
picks among every first-cell class seen in a first cell and every last-cell
class, held-out numbers included.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import caption_encoders


@dataclass(frozen=True)
class CaptionFit:
    """The caption side's shape and its fit (the model's Config checks the values)."""

    encoder: str  # a caption_encoders.ENCODERS name
    hidden: int
    width: int
    experts: dict[str, str] | None  # a `routed` encoder's expert per family
    classes: int  # content classes, one prototype each
    dim: int  # a caption's point
    pull: float  # the pull to the class's prototype, against the cross-entropy
    steps: int  # full-batch Adam steps (a routed fit's first stage)
    balanced: bool = False  # every class weighs the same in the cross-entropy
    gate_penalty: float = 0.0
    lr: float = 1e-2
    rest_steps: int = 0  # a routed fit's second stage; 0: as `steps`
    rest_lr: float = 0.0  # 0: as `lr`
    cells: int = 1  # 2: numbers past nine, a class for each of two cells (below)


class CaptionPrior(nn.Module):
    # A routed fit's steps take at most this many captions of each family, drawn afresh each step:
    # logic's 3,000 made the fit's cost; with 1,000 it took half the time and placed the same
    # captions (docs/speed.md); with 500, one seed in three put 98% of longer logic captions right.
    SAMPLE = 1000
    # A fit that leaves most of its own captions off their class has failed: cvae-logic's once ended
    # at loss 9.9 with a tenth of them placed (chance), where fits end near 0.01 with all placed.
    # It starts again from the same weights at half the learning rate, at most RETRIES times.
    RETRIES, PLACED = 2, 0.5

    def __init__(self, config: CaptionFit):
        super().__init__()
        c = config
        self.encoder = caption_encoders.build(c.encoder, hidden=c.hidden, width=c.width, experts=c.experts)
        self.to_point = nn.Linear(self.encoder.out_dim, c.dim)
        self.prototypes = nn.Parameter(torch.randn(c.classes, c.dim))
        self.cells = c.cells
        if c.cells == 2:  # only then: the shipped one-cell models' weights keep their keys
            self.leading = nn.Parameter(torch.randn(c.classes + 1, c.dim))
            self.register_buffer("drawable", torch.ones((c.classes + 1) * c.classes, dtype=torch.bool))
        self.pull, self.steps = c.pull, c.steps
        self.rest_steps = c.rest_steps or c.steps  # a routed fit's second stage
        self.balanced, self.gate_penalty, self.lr = c.balanced, c.gate_penalty, c.lr
        self.rest_lr = c.rest_lr or c.lr

    def gated(self) -> list[nn.Module]:
        """The encoder's modules with gates, whose `penalty` the gate penalty weighs."""
        return [m for m in self.encoder.modules() if hasattr(m, "penalty")]

    def point(self, tokens, lengths, routes=None):
        """A caption's point. `routes`: the expert of each caption while a `routed` encoder is fitted;
        otherwise its router picks."""
        h = self.encoder(tokens, lengths) if routes is None else self.encoder(tokens, lengths, routes)
        return self.to_point(h)

    def all_prototypes(self) -> torch.Tensor:
        """One row per content: a class, or with cells = 2 a pair of classes (first + 1) x k + last."""
        if self.cells == 1:
            return self.prototypes
        return (self.leading[:, None] + self.prototypes[None]).flatten(0, 1)

    def forward(self, tokens, lengths, routes=None):
        """Logits of p(k | caption): minus the squared distance from the caption's point to each
        prototype (a content that cannot be drawn: -inf)."""
        logits = -torch.cdist(self.point(tokens, lengths, routes), self.all_prototypes()).pow(2)
        return logits if self.cells == 1 else logits.masked_fill(~self.drawable, -torch.inf)

    def cells_of(self, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A content index -> (first cell's class or -1 for none, last cell's class)."""
        k = len(self.prototypes)
        return content // k - 1, content % k

    @torch.no_grad()
    def _weigh_seen(self, classes) -> torch.Tensor | None:
        """Before a two-cell fit, only the contents of `classes` compete; returns the contents that
        drawing may pick afterwards (every first-cell class seen first x every last-cell class)."""
        if self.cells == 1:
            return None
        k = len(self.prototypes)
        seen = torch.bincount(classes, minlength=(k + 1) * k).view(k + 1, k) > 0
        self.drawable.copy_(seen.flatten())
        return (seen.any(1)[:, None] & seen.any(0)[None]).flatten()

    def loss(self, logits, k):
        """Cross-entropy over the distances plus the pull to k's prototype, measured in units of the
        prototypes' spread so that they cannot just shrink together.

        `balanced`: every class's captions pull with the same weight, however many it has, and the
        spread is part of the gradient, so that no shrinking of the whole helps either. A class with
        one training caption (the bare word of a held-out result) then keeps its prototype on that
        caption, and the caption is read as it is read inside sums; the cross-entropy, which pays
        for any distance from the other classes, had pushed that lone prototype off the line the
        sums follow (docs/conditional-vae.md)."""
        spread = torch.pdist(self.all_prototypes()).pow(2).mean()
        pulled = -logits.gather(1, k[:, None])[:, 0]
        if self.balanced:
            counts = torch.bincount(k, minlength=logits.shape[1]).float()
            pull = (pulled / counts[k]).sum() / (counts > 0).sum()
        else:
            pull, spread = pulled.mean(), spread.detach()
        return F.cross_entropy(logits, k) + self.pull * pull / spread

    def fit(
        self,
        tokens,
        lengths,
        classes,
        families: list[str] | None = None,
        progress: bool = False,
        rate: float = 1.0,
    ) -> float:
        """`steps` full-batch Adam steps of the class loss over the training pool. It needs ~1,000
        steps to settle, more than an epoch of image batches gives it.

        `families`: the family each caption came from, for a `routed` encoder. Its first family's
        expert then places the prototypes alone; after that, with it, the point map and the
        prototypes fixed, the other experts and the router learn to reach them (`rest_steps` at
        `rest_lr`, the learning rate decaying to 0; at most SAMPLE captions of a family a step).
        Fitted all at once, the other families pinned the prototypes early where `word-sum` cannot
        add up to them: it placed 58-64% of unseen 2-5-operation captions right instead of 100%. At
        a constant rate the second stage ended once with the logic expert off its classes (46% of
        its own captions), once right. `rate` scales the learning rates."""
        drawable = self._weigh_seen(classes)
        try:
            return self._fit_weighed(tokens, lengths, classes, families, progress, rate)
        finally:
            if drawable is not None:
                self.drawable.copy_(drawable)

    def _fit_weighed(self, tokens, lengths, classes, families, progress, rate) -> float:
        point_map = [
            *self.to_point.parameters(),
            *([self.prototypes] + ([self.leading] if self.cells == 2 else [])),
        ]
        if not isinstance(self.encoder, caption_encoders.Routed):
            params = [*self.encoder.parameters(), *point_map]
            return self._fit(tokens, lengths, classes, None, params, self.steps, progress, self.lr * rate)
        if families is None:
            raise ValueError("caption_encoder 'routed' needs each training caption's family")
        routes = self.encoder.routes(families).to(tokens.device)
        lead = int(routes.min())  # the first family in the experts' order that has captions here
        first = routes == lead
        self._fit(
            tokens[first],
            lengths[first],
            classes[first],
            routes[first],
            [*self.encoder.experts[lead].parameters(), *point_map],
            self.steps,
            progress,
            self.lr * rate,
        )
        others = [e for i, e in enumerate(self.encoder.experts) if i != lead]
        rest = [p for e in others for p in e.parameters()] + list(self.encoder.votes.parameters())
        return self._fit(
            tokens, lengths, classes, routes, rest, self.rest_steps, progress, self.rest_lr * rate, decay=True
        )

    @torch.no_grad()
    def placed(self, tokens, lengths, classes) -> float:
        """The share of these captions whose likeliest class is theirs (a routed encoder's router picks)."""
        return (self(tokens, lengths).argmax(1) == classes).float().mean().item()

    def fit_checked(
        self, tokens, lengths, classes, families=None, progress=False
    ) -> tuple[float, float, float]:
        """`fit`, started again from the same weights at half the rate while it places fewer than
        PLACED of its own captions (at most RETRIES times; the try that placed most is kept).
        Returns its loss, the share placed and the rate it took."""
        start = copy.deepcopy(self.state_dict())
        best = None
        for retry in range(self.RETRIES + 1):
            rate = 0.5**retry
            if retry:
                self.load_state_dict(start)
            loss = self.fit(tokens, lengths, classes, families, progress, rate)
            placed = self.placed(tokens, lengths, classes)
            if placed >= self.PLACED:
                return loss, placed, rate
            if best is None or placed > best[1]:  # a failed try's weights are kept only if no try succeeds
                best = (loss, placed, rate, copy.deepcopy(self.state_dict()))
        self.load_state_dict(best[3])
        return best[:3]

    def _some(self, rows: torch.Tensor) -> torch.Tensor:
        """At most SAMPLE of these rows, drawn afresh."""
        return rows if len(rows) <= self.SAMPLE else rows[torch.randperm(len(rows))[: self.SAMPLE]]

    def _fit(self, tokens, lengths, classes, routes, params, steps, progress, lr, decay=False) -> float:
        optimizer = torch.optim.Adam(params, lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if decay else None
        tokens = tokens[:, : int(lengths.max())]
        families = [] if routes is None else [(routes == r).nonzero()[:, 0] for r in routes.unique()]
        penalised = self.gated() if self.gate_penalty else []
        loss = torch.zeros(())
        for _ in tqdm(range(steps), desc="caption classes", leave=False, disable=not progress):
            if routes is None:
                loss = self.loss(self(tokens, lengths), classes)
            else:  # every family weighs the same, however many captions it has (logic has 3,000, label 10)
                rows = [self._some(f) for f in families]
                sample, sizes = torch.cat(rows), [len(f) for f in rows]
                t, n = tokens[sample], lengths[sample]
                logits = self(t, n, routes[sample]).split(sizes)
                votes = self.encoder.router_logits(t).split(sizes)
                loss = torch.stack(
                    [
                        F.cross_entropy(v, routes[f]) + self.loss(lg, classes[f])
                        for lg, v, f in zip(logits, votes, rows)
                    ]
                ).mean()
            for module in penalised:  # a gated sum's gates stay at 1 wherever the data do not move them
                loss = loss + self.gate_penalty * module.penalty()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule:
                schedule.step()
        return loss.item()
