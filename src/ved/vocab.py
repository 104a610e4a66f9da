"""Tokenizer, vocabulary and the paper's fixed binary word embeddings.

The vocabulary is the paper's 31 tokens (captions.WORDS: 4 specials and 27 words), and it is full in
two ways. The paper's `binary-gru` gives each word a fixed 5-bit code: digits their value (0-9), the
21 other tokens the codes 10-30, so one code (31) is spare, and a 33rd token would need 6 bits, a
wider GRU input and so weights of another shape. And every learned encoder holds an embedding table
of VOCAB_SIZE (31) rows, so every shipped weight file has that number in its shapes: a new word makes
all of them refuse to load. A caption family that needs new words therefore costs retraining and
re-shipping every model (or a second vocabulary beside this one); one that reuses these words costs
nothing here (captions.py).
"""

from __future__ import annotations

import torch

from .captions import DIGIT_VALUE, WORDS, words

PAD, START, END = WORDS.index("<pad>"), WORDS.index("<start>"), WORDS.index("<end>")
WORD_ID = {w: i for i, w in enumerate(WORDS)}
EMBED_WIDTH = 5


def tokenize(caption: str) -> list[int]:
    """`<start> words <end>` as ids; unknown words raise CaptionError."""
    return [START] + [WORD_ID[w] for w in words(caption)] + [END]


def encode(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids (N, L) and lengths (N,), for a whole caption pool at once."""
    ids = [tokenize(c) for c in captions]
    length = max(map(len, ids), default=2)
    out = torch.full((len(ids), length), PAD, dtype=torch.long)
    for row, seq in zip(out, ids):
        row[: len(seq)] = torch.tensor(seq)
    return out, torch.tensor([len(s) for s in ids], dtype=torch.long)


def binary_embedding() -> torch.Tensor:
    """(31, 5): digit words get the binary code of their value, the rest the next free codes."""
    codes, free = {}, iter(range(len(DIGIT_VALUE), 2**EMBED_WIDTH))
    for w in WORDS:
        codes[w] = DIGIT_VALUE[w] if w in DIGIT_VALUE else next(free)
    bits = [[(codes[w] >> (EMBED_WIDTH - 1 - b)) & 1 for b in range(EMBED_WIDTH)] for w in WORDS]
    return torch.tensor(bits, dtype=torch.float32)
