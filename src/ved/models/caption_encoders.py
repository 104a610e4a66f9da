"""Caption encoders: token ids (N, L) and lengths -> one vector per caption.

Chosen by name in a model config (`caption_encoder = "..."`):

- `binary-gru`: the paper's GRU over fixed binary word codes, last state;
- `gru`: a GRU over learned embeddings, last state;
- `attention`: each word with the word before it, one layer of self-attention
  over the words, then sum and max pooling (the paper's future work);
- `word-sum`: each word read with the word before it, then summed.

Length generalisation comes from the last one. Summed word-in-context
vectors mapped linearly to a target that is one point per digit can only
fit `a`, `a plus b` and `a minus b` if each `plus b` adds the same vector to
whatever came before; a caption with five operations then lands where its
value does. Pooling by max or mixing words by attention or recurrence breaks
that, as `experiments/length_generalisation.py` measures.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import vocab

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
        pooled = torch.cat([h.masked_fill(~words, 0).sum(1), h.masked_fill(~words, -1e4).amax(1)], -1)
        return self.out(pooled)


ENCODERS = {"binary-gru": BinaryGRU, "gru": GRU, "attention": Attention, "word-sum": WordSum}


def build(name: str, **kwargs) -> nn.Module:
    if name not in ENCODERS:
        raise ValueError(f"unknown caption_encoder '{name}'; choose one of: {', '.join(ENCODERS)}")
    return ENCODERS[name](**kwargs)
