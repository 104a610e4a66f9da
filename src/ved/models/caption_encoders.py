"""Caption encoders: token ids (N, L) and lengths -> one vector per caption.

Chosen by name in a model config (`caption_encoder = "..."`):

- `binary-gru`: the paper's GRU over fixed binary word codes, last state;
- `gru`: a GRU over learned embeddings, last state;
- `attention`: each word with the word before it, one layer of self-attention
  over the words, then sum and max pooling (the paper's future work);
- `attention-mean`: the same with mean and max pooling, which no number of
  distractors moves far (the `routed` model's logic expert);
- `word-sum`: each word read with the word before it, then summed;
- `gated-sum`: each word scaled by a gate the word before it sets, then summed (linear in each word);
- `scaled-sum`: the same with one number per gate, so the word before scales the whole vector;
- `routed`: one of the above per caption family, and a router that learns from
  the words which family a caption is (for the `mixed` family).

Length generalisation comes from the last one. Summed word-in-context
vectors mapped linearly to a target that is one point per digit can only
fit `a`, `a plus b` and `a minus b` if each `plus b` adds the same vector to
whatever came before; a caption with five operations then lands where its
value does. Pooling by max or mixing words by attention or recurrence breaks
that, as `experiments/length_generalisation.py` measures. No one encoder here
does both arithmetic and logic, hence `routed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import vocab
from ..errors import ConfigError, shown
from ..rules import names, one_of, whole

VOCAB_SIZE = len(vocab.WORD_ID)


def _previous(tokens: torch.Tensor) -> torch.Tensor:
    return F.pad(tokens[:, :-1], (1, 0), value=vocab.PAD)


def _words(tokens: torch.Tensor) -> torch.Tensor:
    """True where a real word is (not <start>, <end> or padding)."""
    return (tokens != vocab.PAD) & (tokens != vocab.START) & (tokens != vocab.END)


class _LastStateGRU(nn.Module):
    def forward(self, tokens, lengths):
        states, _ = self.gru(self.embed(tokens))
        # One-way GRU: padding after a caption never changes its last real state.
        return states[torch.arange(len(tokens), device=tokens.device), lengths - 1]


class BinaryGRU(_LastStateGRU):
    def __init__(self, hidden: int = 30, **_):
        super().__init__()
        self.register_buffer("embedding", vocab.binary_embedding())
        self.gru = nn.GRU(vocab.EMBED_WIDTH, hidden, batch_first=True)
        self.out_dim = hidden

    def embed(self, tokens):
        return self.embedding[tokens]


class GRU(_LastStateGRU):
    def __init__(self, hidden: int = 64, width: int = 64, **_):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB_SIZE, width)
        self.gru = nn.GRU(width, hidden, batch_first=True)
        self.out_dim = hidden

    def embed(self, tokens):
        return self.embedding(tokens)


class WordSum(nn.Module):
    def __init__(self, hidden: int = 64, width: int = 64, **_):
        super().__init__()
        self.word = nn.Embedding(VOCAB_SIZE, width)
        self.before = nn.Embedding(VOCAB_SIZE, width)
        self.mix = nn.Sequential(nn.GELU(), nn.Linear(width, hidden))
        self.out_dim = hidden

    def forward(self, tokens, lengths):
        h = self.mix(self.word(tokens) + self.before(_previous(tokens)))
        return h.masked_fill(~_words(tokens).unsqueeze(-1), 0).sum(1)


class GatedSum(nn.Module):
    """Each word's vector scaled elementwise by a gate that the word before it sets, then summed:
    linear in every word, so a digit word seen only on its own (`add_primitive`) adds its learned
    vector wherever it stands, and `minus` can learn to negate whatever word follows it. Gates start
    at 1, so a word never seen before another (the primitive) changes nothing after it."""

    def __init__(self, hidden: int = 64, width: int = 64, **_):
        super().__init__()
        self.word = nn.Embedding(VOCAB_SIZE, width)
        self.gate = nn.Embedding(VOCAB_SIZE, width)
        nn.init.ones_(self.gate.weight)
        self.out = nn.Linear(width, hidden)
        self.out_dim = hidden

    def penalty(self):
        """The gates' squared distance from 1: a word's gate moves only as far as the data needs."""
        return (self.gate.weight - 1).pow(2).sum()

    def forward(self, tokens, lengths):
        h = self.gate(_previous(tokens)) * self.word(tokens)
        return self.out(h.masked_fill(~_words(tokens).unsqueeze(-1), 0).sum(1))


class ScaledSum(GatedSum):
    """`gated-sum` with one number per gate instead of one per width: the word before scales the
    whole vector of the word after it. A word seen only on its own (`add_primitive`) can keep its
    value in any of the vector's directions, and `minus` still negates all of them; an elementwise
    gate negates only the directions the other words use."""

    def __init__(self, hidden: int = 64, width: int = 64, **_):
        super().__init__(hidden, width)
        self.gate = nn.Embedding(VOCAB_SIZE, 1)
        nn.init.ones_(self.gate.weight)


class Attention(nn.Module):
    def __init__(self, hidden: int = 64, width: int = 64, heads: int = 4, **_):
        super().__init__()
        self.word = nn.Embedding(VOCAB_SIZE, width)
        self.before = nn.Embedding(VOCAB_SIZE, width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.out = nn.Linear(2 * width, hidden)
        self.out_dim = hidden

    def forward(self, tokens, lengths):
        # No absolute positions: the word before gives local order, so longer captions look familiar.
        x = self.word(tokens) + self.before(_previous(tokens))
        mixed, _ = self.attention(x, x, x, key_padding_mask=tokens == vocab.PAD, need_weights=False)
        h = self.mlp(self.norm(x + mixed))
        words = _words(tokens).unsqueeze(-1)
        return self.out(torch.cat([self.pool(h, words), h.masked_fill(~words, -1e4).amax(1)], -1))

    def pool(self, h, words):
        return h.masked_fill(~words, 0).sum(1)


class AttentionMean(Attention):
    """`attention` with the words' mean in place of their sum, beside the max: nothing in it grows
    with the caption's length. In the `routed` model the sum drifted with every distractor: the
    caption side put 78% of logic captions with 8 distractors in their digit's class, against 100%
    with the mean (and 100% at 4 to 7; trained on 1 to 3; two seeds, docs/conditional-vae.md)."""

    def pool(self, h, words):
        return h.masked_fill(~words, 0).sum(1) / words.sum(1).clamp_min(1)


# A routed encoder's experts, in the order that numbers its weights and picks the family that places
# the class prototypes alone (the first: see CaptionPrior.fit), frozen as the shipped models were
# trained; a family not named here comes after these, in name order. A config names its experts
# (config.resolve records captions.REGISTRY's, which a test keeps equal to these for the four);
# these serve a routed encoder built without any. Models never read the caption registry.
PAPER_EXPERTS = {
    "arithmetic": "word-sum",
    "label": "word-sum",
    "sentence": "word-sum",
    "logic": "attention-mean",
}


class Routed(nn.Module):
    """One expert encoder per caption family and a router over the words that picks one per caption.

    While fitting, each caption goes to the expert of the family it came from, which the dataset
    knows as it knows which image came with which caption (`routes`), and the router learns to
    name that family from the words. Afterwards the router alone picks. Its score for a family is
    the largest of the caption's per-word votes, so it does not drift with caption length: `min`
    marks a logic caption whether it has 2 distractors or 8. Families share no expert: sentence
    captions fitted by the arithmetic captions' `word-sum` slowed its length generalisation
    (82% against 100% on unseen 2-5-operation captions after 1,000 steps). A caption that two
    families share (`five`) is read right by either's expert.
    """

    def __init__(self, hidden: int = 64, width: int = 64, experts: dict[str, str] | None = None, **_):
        super().__init__()
        experts = experts or PAPER_EXPERTS
        known = list(PAPER_EXPERTS)  # in this order whatever the config's: config.json sorts its keys
        self.families = sorted(experts, key=lambda f: (known.index(f) if f in known else len(known), f))
        self.experts = nn.ModuleList(build(experts[f], hidden=hidden, width=width) for f in self.families)
        self.votes = nn.Embedding(VOCAB_SIZE, len(self.families))
        self.out_dim = hidden

    def routes(self, families: list[str]) -> torch.Tensor:
        unknown = sorted(set(families) - set(self.families))
        if unknown:
            raise ConfigError(
                f"no expert for caption family '{unknown[0]}'; experts cover: {', '.join(self.families)}"
            )
        return torch.tensor([self.families.index(f) for f in families])

    def router_logits(self, tokens):
        return self.votes(tokens).masked_fill(~_words(tokens).unsqueeze(-1), -1e4).amax(1)

    def forward(self, tokens, lengths, routes=None):
        routes = self.router_logits(tokens).argmax(1) if routes is None else routes.to(tokens.device)
        # fp32 whatever the experts return: under autocast on CUDA one expert's output is bf16 and
        # another's fp32 (softmax runs in fp32 there), and one tensor cannot hold both
        out = torch.zeros(len(tokens), self.out_dim, device=tokens.device)
        for i, expert in enumerate(self.experts):
            rows = (routes == i).nonzero()[:, 0]
            if len(rows):
                longest = int(lengths[rows].max())
                h = expert(tokens[rows, :longest], lengths[rows])
                out = out.index_copy(0, rows, h.float())
        return out


ENCODERS = {
    "binary-gru": BinaryGRU,
    "gru": GRU,
    "attention": Attention,
    "attention-mean": AttentionMean,
    "word-sum": WordSum,
    "gated-sum": GatedSum,
    "scaled-sum": ScaledSum,
    "routed": Routed,
}


@dataclass
class CaptionConfig:
    """The caption side of a model that learns it along with the rest: the fields its Config shares."""

    caption_encoder: str = one_of("routed", ENCODERS)
    caption_hidden: int = whole(64, 1)
    caption_width: int = whole(64, 1)
    experts: dict | None = names()  # `routed`: the expert of each caption family
    router_steps: int = whole(300, 0)  # `routed`: full-batch steps fitting the router beforehand


class Condition(nn.Module):
    """A caption encoder and a linear map to the vector a model is conditioned on, learned with the
    rest of the model (the peers of models/textbook_cvae.py and models/flow.py)."""

    def __init__(self, config: CaptionConfig, out: int):
        super().__init__()
        c = config
        self.encoder = build(
            c.caption_encoder, hidden=c.caption_hidden, width=c.caption_width, experts=c.experts
        )
        self.to_condition = nn.Linear(self.encoder.out_dim, out)

    def forward(self, tokens, lengths):
        return self.to_condition(self.encoder(tokens, lengths))


def fit_router(encoder: nn.Module, tokens, families: list[str], steps: int, lr: float = 1e-2) -> None:
    """A `routed` encoder's router learns each training caption's family from its words (full-batch
    Adam steps, every family weighing the same), so that a model which trains its experts along with
    everything else (the peers) routes as ved's model does. Nothing to do for other encoders."""
    if not isinstance(encoder, Routed) or not steps:
        return
    routes = encoder.routes(families).to(tokens.device)
    weight = 1 / torch.bincount(routes, minlength=len(encoder.families)).clamp_min(1).float()
    optimizer = torch.optim.Adam(encoder.votes.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(encoder.router_logits(tokens), routes, weight=weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def build(name: str, **kwargs) -> nn.Module:
    if name not in ENCODERS:
        raise ConfigError(
            f"unknown caption_encoder '{shown(name, 40)}'; choose one of: {', '.join(ENCODERS)}"
        )
    return ENCODERS[name](**kwargs)
