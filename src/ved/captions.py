"""Caption families, the grammar that gives a caption's digit, and the splits.

The parser exists to build datasets and to score generated images; models
never call it (they see token ids only, see vocab.py).

Each family is one `Family` entry of REGISTRY (at the end of this file): its pools, the value its
grammar gives a caption, the caption expert a routed model reads it with, and the paper's config for
it. `caption_pool`, `mixed`, `pool_families`, `families_of`, the routed models' default experts and
the study's paper rows all read the registry; a new family is one `register(Family(...))` call
(tests/test_captions.py defines one). Its captions must use the vocabulary's words (vocab.py says
what a new word costs).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from . import holdout
from .errors import VedError, shown

SPECIALS = ["<pad>", "<start>", "<end>", "<unk>"]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SENTENCE_WORDS = [
    "this",
    "is",
    "the",
    "a",
    "that",
    "'s",
    "number",
    "black",
    "on",
    "white",
    "background",
    "with",
]
LOGIC_WORDS = ["min", "max", "or", "plus", "minus"]
WORDS = SPECIALS + DIGIT_WORDS + SENTENCE_WORDS + LOGIC_WORDS  # the paper's 31 tokens
CAPTION_WORDS = DIGIT_WORDS + SENTENCE_WORDS + LOGIC_WORDS
DIGIT_VALUE = {w: i for i, w in enumerate(DIGIT_WORDS)}

TEMPLATES = [
    "<label>",
    "that 's <label>",
    "that 's a <label>",
    "this is a <label>",
    "this number is <label>",
    "this number is a <label>",
    "this is the number <label>",
    "black <label> on white",
    "black <label> on white background",
    "that 's a <label> on a white background",
    "that is a black <label> with a white background",
    "this is a black <label> on a white background",
]
# The largest arithmetic result a numbers model draws, as a strip of one digit cell per place: five
# nines added up. Its caption side places every caption up to 45; fitted up to 99 (captions of up to
# 14 operands), it placed 89% of its own (docs/numbers.md).
MAX_NUMBER = 45
MAX_TOKENS = 64
MAX_CHARS = 1024  # 64 words of at most 10 letters fit with room to spare; longer text is refused unread
SPLITS = ("train", "valid", "test")


class CaptionError(VedError):
    """A caption that no family produces; the message is one line for the user."""


def words(caption: str) -> list[str]:
    """Lower-case whitespace split, checked against the vocabulary; CaptionError names the caption."""
    return _named(caption, _words, caption)


def parse(caption: str) -> int:
    """The digit a caption means, or CaptionError in one line naming the caption and what is wrong."""
    return _named(caption, lambda c: _within(_value(_words(c)), 9), caption)


def number(caption: str) -> int:
    """The number 0..MAX_NUMBER a caption means: `parse` for the numbers past nine that arithmetic
    captions reach (`seven plus eight` is 15), which a model trained with `[data] numbers` draws."""
    return _named(caption, lambda c: _within(_value(_words(c)), MAX_NUMBER), caption)


def _within(value: int, most: int) -> int:
    if not 0 <= value <= most:
        allowed = f"a number 0..{most}" if most > 9 else "a digit 0..9"
        if most == 9 and value > 9:
            allowed += f" (models trained with [data] numbers draw up to {MAX_NUMBER})"
        raise CaptionError(f"evaluates to {value}; the result must be {allowed}")
    return value


def digits_of(value: int) -> list[int]:
    """The digits a number is written with, most significant first: the cells of its strip."""
    return [int(c) for c in str(value)]


def _named(caption, step, *args):
    # The reasons below leave the caption out; it is named once, here, shortened and printable.
    if not isinstance(caption, str):
        raise CaptionError(f"a caption must be text (str), got {type(caption).__name__}")
    try:
        return step(*args)
    except CaptionError as e:
        raise CaptionError(f"caption '{shown(caption)}': {e}") from None


def _words(caption: str) -> list[str]:
    if len(caption) > MAX_CHARS:
        raise CaptionError(f"{len(caption):,} characters; at most {MAX_CHARS} are allowed")
    tokens = caption.lower().split()
    if not tokens:
        raise CaptionError("empty caption: write e.g. 'five', 'three plus two' or 'min nine five seven'")
    if len(tokens) > MAX_TOKENS:
        raise CaptionError(f"{len(tokens)} words; at most {MAX_TOKENS} are allowed")
    for w in tokens:
        if w not in CAPTION_WORDS:
            close = difflib.get_close_matches(w, CAPTION_WORDS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "allowed words: " + " ".join(CAPTION_WORDS)
            raise CaptionError(f"unknown word '{shown(w, 30)}': {hint}")
    return tokens


def _value(tokens: list[str]) -> int:
    for family in REGISTRY.values():  # a family's grammar either gives a value, refuses, or passes
        value = family.value(tokens)
        if value is not None:
            return value
    if "or" in tokens:
        raise CaptionError("'or' is in the paper's vocabulary but no caption family uses it")
    forms = [f.form for f in REGISTRY.values() if f.form]
    raise CaptionError(f"not a caption form ved knows: {', '.join(forms[:-1])} or {forms[-1]}")


def _label_value(tokens: list[str]) -> int | None:
    return DIGIT_VALUE[tokens[0]] if len(tokens) == 1 and tokens[0] in DIGIT_VALUE else None


def _sentence_value(tokens: list[str]) -> int | None:
    digits = [i for i, w in enumerate(tokens) if w in DIGIT_VALUE]
    if len(digits) != 1:
        return None
    i = digits[0]
    template = " ".join(tokens[:i] + ["<label>"] + tokens[i + 1 :])
    return DIGIT_VALUE[tokens[i]] if template in TEMPLATES else None


def _logic_value(tokens: list[str]) -> int | None:
    head = tokens[0]
    if head not in ("min", "max"):
        return None
    operands = tokens[1:]
    if len(operands) < 2 or any(w not in DIGIT_VALUE for w in operands):
        raise CaptionError(f"{head} takes two or more digit words, e.g. '{head} three seven'")
    values = [DIGIT_VALUE[w] for w in operands]
    return min(values) if head == "min" else max(values)


def _arithmetic_value(tokens: list[str]) -> int | None:
    if "plus" in tokens or "minus" in tokens:
        return _evaluate_chain(tokens)
    return _label_value(tokens)  # the arithmetic pool has each digit bare too


def _evaluate_chain(tokens: list[str]) -> int:
    # Left to right, no precedence: the paper's arithmetic has only + and -.
    if tokens[-1] in ("plus", "minus"):
        raise CaptionError(f"ends with the operator '{tokens[-1]}'; an operator needs a digit after it")
    if tokens[0] in ("plus", "minus"):
        raise CaptionError(f"starts with the operator '{tokens[0]}'; write 'd plus|minus d ...'")
    value = None
    for i, w in enumerate(tokens):
        expect_digit = i % 2 == 0
        if expect_digit and w not in DIGIT_VALUE:
            raise CaptionError(f"expected a digit word at word {i + 1}, got '{w}'")
        if not expect_digit and w not in ("plus", "minus"):
            raise CaptionError(f"expected 'plus' or 'minus' at word {i + 1}, got '{w}'")
        if expect_digit:
            v = DIGIT_VALUE[w]
            value = v if value is None else (value + v if tokens[i - 1] == "plus" else value - v)
    return value  # parse and number say which values they take


def families_of(caption: str, numbers: bool = False) -> list[str]:
    """The caption families whose grammar gives this caption a value, in FAMILIES order (a bare
    digit word is a label, the first sentence template and the arithmetic pool's own digit); or
    CaptionError when none does. It judges captions; models never call it."""
    number(caption) if numbers else parse(caption)
    tokens = caption.lower().split()
    return [name for name, family in REGISTRY.items() if _gives_value(family, tokens)]


def _gives_value(family: Family, tokens: list[str]) -> bool:
    try:
        return family.value(tokens) is not None
    except CaptionError:  # its form, wrongly written: another family's caption is none of its
        return False


def first_per_digit(pool: dict[int, list[str]]) -> dict[int, str]:
    """The first caption of each digit a pool has, digit by digit: one caption that names each."""
    return {d: pool[d][0] for d in range(10) if pool.get(d)}


def check_caption(caption: str, trained_on: str | None, numbers: bool = False) -> int:
    """The caption's digit if a model trained on the family `trained_on` (None or mixed: any) reads
    it by its grammar (`numbers`: a model that draws numbers past nine, up to MAX_NUMBER); else
    CaptionError in one line naming the caption and why."""
    digit = number(caption) if numbers else parse(caption)
    families = families_of(caption, numbers)
    if trained_on not in (None, "mixed") and trained_on not in families:
        kinds = ", ".join(families[:-1]) + " or " + families[-1] if len(families) > 1 else families[0]
        article = "an" if kinds[0] in "aeiou" else "a"
        raise CaptionError(
            f"caption '{shown(caption)}' is {article} {kinds} caption; this model was trained on "
            f"{trained_on} captions only"
        )
    return digit


def operation_count(caption: str) -> int:
    """Number of plus/minus/min/max operations (0 for label and sentence captions)."""
    tokens = caption.split()
    if tokens and tokens[0] in ("min", "max"):
        return len(tokens) - 2
    return sum(w in ("plus", "minus") for w in tokens)


# ---------------------------------------------------------------- families


def _split_of(caption: str, seed: int) -> str:
    # A stable hash gives disjoint caption sets per split, independent of draw order.
    h = int.from_bytes(hashlib.sha256(f"{seed}:{caption}".encode()).digest()[:4], "big") % 10
    return "train" if h < 8 else ("valid" if h == 8 else "test")


def label_pool() -> dict[int, list[str]]:
    return {d: [DIGIT_WORDS[d]] for d in range(10)}


def sentence_pool() -> dict[int, list[str]]:
    return {d: [t.replace("<label>", DIGIT_WORDS[d]) for t in TEMPLATES] for d in range(10)}


def logic_pool(
    split: str, seed: int = 0, k_range: tuple[int, int] = (1, 3), per_digit: int | None = None
) -> dict[int, list[str]]:
    """min/max over the label and k distractors (larger for min, smaller for max).

    Caption sets of the three splits are disjoint by a seeded hash; `k_range`
    sets the distractor counts this split uses (longer ones for a length test).
    """
    if split == "test":
        holdout.require("test captions")
    per_digit = per_digit or (300 if split == "train" else 60)
    rng = random.Random(f"logic:{seed}:{split}:{k_range}")
    pools: dict[int, list[str]] = {}
    for d in range(10):
        found: set[str] = set()
        ops = [op for op in ("min", "max") if (op == "min" and d < 9) or (op == "max" and d > 0)]
        for _ in range(per_digit * 200):
            if len(found) >= per_digit:
                break
            op = rng.choice(ops)
            k = rng.randint(*k_range)
            others = range(d + 1, 10) if op == "min" else range(0, d)
            operands = [rng.choice(others) for _ in range(k)]
            operands.insert(rng.randint(0, k), d)
            caption = " ".join([op] + [DIGIT_WORDS[v] for v in operands])
            if _split_of(caption, seed) == split:
                found.add(caption)
        pools[d] = sorted(found)
    return pools


def arithmetic_train_pool() -> dict[int, list[str]]:
    """The paper's per-digit pools: the digit, every single a+b / a-b, and one plus one ..."""
    pools = {d: [DIGIT_WORDS[d]] for d in range(10)}
    for a in range(10):
        for b in range(10):
            if a + b <= 9:
                pools[a + b].append(f"{DIGIT_WORDS[a]} plus {DIGIT_WORDS[b]}")
            if a - b >= 0:
                pools[a - b].append(f"{DIGIT_WORDS[a]} minus {DIGIT_WORDS[b]}")
    for d in range(2, 10):
        pools[d].append(" plus ".join(["one"] * d))
    return pools


def arithmetic_test_pool(
    seed: int = 0,
    ops: tuple[int, ...] = (2, 3, 4, 5),
    per_cell: int = 15,
    must_use: str | None = None,
    digits: tuple[int, ...] = tuple(range(10)),
) -> dict[int, list[str]]:
    """Unseen captions with several operations, balanced over digits and operation counts; with
    `must_use`, each has that digit word as an operand; `digits`: the results to draw for."""
    rng = random.Random(f"arithmetic-test:{seed}:{ops}" + (f":{must_use}" if must_use else ""))
    seen = {c for pool in arithmetic_train_pool().values() for c in pool}
    pools: dict[int, list[str]] = {d: [] for d in range(10)}
    for m in ops:
        for d in digits:
            cell: set[str] = set()
            while len(cell) < per_cell:
                values = [rng.randint(0, 9) for _ in range(m + 1)]
                signs = [rng.choice(("plus", "minus")) for _ in range(m)]
                total = values[0] + sum(v if s == "plus" else -v for s, v in zip(signs, values[1:]))
                if total != d or (must_use and DIGIT_VALUE[must_use] not in values):
                    continue
                caption = DIGIT_WORDS[values[0]] + "".join(
                    f" {s} {DIGIT_WORDS[v]}" for s, v in zip(signs, values[1:])
                )
                if caption not in seen:
                    cell.add(caption)
            pools[d].extend(sorted(cell))
    return pools


def arithmetic_pool(
    split: str,
    seed: int = 0,
    train_max_ops: int = 1,
    hold_out_pairs: int = 0,
    hold_out_captions: list[str] | None = None,
    add_primitive: str | None = None,
    hold_out_result: int | None = None,
) -> dict[int, list[str]]:
    """The arithmetic family's splits (validation images get the training captions). The paper's
    protocol trains on one operation at most and tests on 2-5. SCAN-style variants, one at a time:

    - `train_max_ops = k` (length): training also gets captions of 2..k operations (as many per
      digit and count as the test has); the test keeps the counts above k, up to 5;
    - `hold_out_pairs = n` (operand pairs): n seeded one-operation captions (`a plus b`,
      `a minus b`), spread over the digits, leave training, and they are the test split;
    - `hold_out_captions = [...]`: these one-operation training captions leave training, and they
      are the test split (the pairs split, with the pairs named);
    - `add_primitive = "w"` (SCAN's add-primitive): no training caption has the digit word w next
      to an operator, only the bare word; the test is every one-operation caption with w as an
      operand, and unseen 2-5-operation ones with w (15 per digit and count);
    - `hold_out_result = r`: no training caption but the bare word evaluates to r; the test is the
      one-operation captions that do, and unseen 2-5-operation ones (15 per count), digit r only.
    """
    _check_arithmetic_split(train_max_ops, hold_out_pairs, hold_out_captions, add_primitive, hold_out_result)
    paper = arithmetic_train_pool()
    held = _held_out(paper, seed, hold_out_pairs, hold_out_captions, add_primitive, hold_out_result)
    if split == "test":
        one_op_held = {
            d: [c for c in pool if c in held and operation_count(c) == 1] for d, pool in paper.items()
        }
        if hold_out_pairs or hold_out_captions:
            return one_op_held
        if add_primitive is not None:
            longer = arithmetic_test_pool(seed, must_use=add_primitive)
            return {d: one_op_held[d] + longer[d] for d in range(10)}
        if hold_out_result is not None:
            longer = arithmetic_test_pool(seed, digits=(hold_out_result,))
            return {d: one_op_held[d] + longer[d] if d == hold_out_result else [] for d in range(10)}
        return arithmetic_test_pool(seed, ops=tuple(range(train_max_ops + 1, 6)))
    pools = {d: [c for c in pool if c not in held] for d, pool in paper.items()}
    if train_max_ops > 1:  # another seed than the test's: the counts differ anyway, so no overlap
        for d, extra in arithmetic_test_pool(seed + 1, ops=tuple(range(2, train_max_ops + 1))).items():
            pools[d].extend(extra)
    return pools


def number_pool(
    split: str,
    seed: int = 0,
    hold_out_numbers: tuple[int, ...] = (),
    per_number: int = 50,
    most: int = MAX_NUMBER,
) -> dict[int, list[str]]:
    """Arithmetic captions of the numbers 10..MAX_NUMBER: {number: [caption, ...]}, for `[data] numbers`.

    Each number gets `per_number` distinct captions of `d plus|minus d ...`, with as many operands as
    reach it and up to three more (a quarter of the operators `minus`), and a seeded hash splits them
    8:1:1 into the three splits, as the logic captions are. The paper's one-operation training
    captions reach 18 at most, so numbers past that need longer captions in training too.

    `hold_out_numbers`: no training or validation caption evaluates to these, while each of their
    tens and ones digits is written in another training number; the test split is every caption of
    theirs, and theirs only (the numbers' held-out-results split).
    """
    held = check_held_out_numbers(hold_out_numbers, most)
    if split == "test":
        holdout.require("test captions")
    rng = random.Random(f"numbers:{seed}")
    pools: dict[int, list[str]] = {}
    for number in range(10, most + 1):  # `most`: another largest number, for experiments
        found: set[str] = set()
        least = max(1, -(-number // 9) - 1)  # operators needed to reach it with plus alone
        for _ in range(per_number * 400):
            if len(found) >= per_number:
                break
            found.update(_caption_reaching(number, rng.randint(least, least + 3), rng))
        if number in held:  # every caption of a held-out number is a test caption
            pools[number] = sorted(found) if split == "test" else []
        elif held and split == "test":  # and the held-out numbers are the whole test
            pools[number] = []
        else:
            pools[number] = sorted(c for c in found if _split_of(c, seed) == split)
    return pools


def _caption_reaching(number: int, operators: int, rng: random.Random) -> list[str]:
    """One caption of `operators` operators that evaluates to `number`, or none if this draw misses:
    each operand near the mean that the rest still needs, the last one whatever is left."""
    signs = ["minus" if rng.random() < 0.25 else "plus" for _ in range(operators)]
    operands, total = [], 0
    for i in range(operators):  # all operands but the last
        sign = +1 if i == 0 or signs[i - 1] == "plus" else -1
        pluses_left = 1 + sum(s == "plus" for s in signs[i:])
        wanted = (number - total) / pluses_left if sign > 0 else rng.randint(0, 3)
        v = min(9, max(0, round(rng.gauss(wanted, 2.0))))
        operands.append(v)
        total += sign * v
    last = number - total if signs[-1] == "plus" else total - number
    if not 0 <= last <= 9:
        return []
    operands.append(last)
    return [DIGIT_WORDS[operands[0]] + "".join(f" {s} {DIGIT_WORDS[v]}" for s, v in zip(signs, operands[1:]))]


def check_held_out_numbers(numbers, most: int = MAX_NUMBER) -> set[int]:
    """The held-out numbers as a set, or CaptionError in one line for one that is out of range or
    written with a tens or ones digit that no other number writes in that place."""
    numbers = list(numbers or ())
    for n in numbers:
        if not (isinstance(n, int) and not isinstance(n, bool) and 10 <= n <= most):
            raise CaptionError(f"hold_out_numbers: {n!r}; allowed: whole numbers 10 to {most}")
    held = set(numbers)
    kept = [n for n in range(10, most + 1) if n not in held]
    for n in sorted(held):
        tens, ones = divmod(n, 10)
        if not any(k // 10 == tens for k in kept) or not any(k % 10 == ones for k in kept):
            raise CaptionError(
                f"hold_out_numbers: {n}'s tens digit {tens} or ones digit {ones} is in no training "
                "number; a held-out number must be written with digits seen in those places"
            )
    return held


def _check_arithmetic_split(train_max_ops, hold_out_pairs, hold_out_captions, add_primitive, hold_out_result):
    if not 1 <= train_max_ops <= 4:
        raise CaptionError(f"train_max_ops = {train_max_ops}; allowed: 1 to 4 (tests go up to 5 operations)")
    if not 0 <= hold_out_pairs <= 50:
        raise CaptionError(
            f"hold_out_pairs = {hold_out_pairs}; allowed: 0 to 50 (training keeps 5+ per digit)"
        )
    chosen = [
        train_max_ops > 1,
        hold_out_pairs > 0,
        bool(hold_out_captions),
        add_primitive is not None,
        hold_out_result is not None,
    ]
    if sum(chosen) > 1:
        raise CaptionError(
            "train_max_ops > 1, hold_out_pairs, hold_out_captions, add_primitive and hold_out_result "
            "are different splits; set one of them"
        )


def _held_out(paper, seed, hold_out_pairs, hold_out_captions, add_primitive, hold_out_result) -> set[str]:
    """The one-operation and longer training captions that a split keeps out of training."""
    rng = random.Random(f"pairs:{seed}")
    by_digit = [
        rng.sample(p, len(p))
        for p in ([c for c in pool if operation_count(c) == 1] for pool in paper.values())
    ]
    held = {by_digit[i % 10][i // 10] for i in range(hold_out_pairs)}  # round the digits, so each has some
    if hold_out_captions:
        one_op = {c for pool in paper.values() for c in pool if operation_count(c) == 1}
        for c in hold_out_captions:
            if c not in one_op:
                raise CaptionError(
                    f"hold_out_captions: '{shown(c, 60)}' is no one-operation training caption; allowed: "
                    "'a plus b' or 'a minus b' with a digit word each (ved captions list --family arithmetic)"
                )
        held = set(hold_out_captions)
    if add_primitive is not None:
        if add_primitive not in DIGIT_WORDS:
            raise CaptionError(
                f"add_primitive = '{shown(add_primitive, 20)}'; allowed: a digit word, zero to nine"
            )
        held = {
            c for pool in paper.values() for c in pool if operation_count(c) and add_primitive in c.split()
        }
    if hold_out_result is not None:
        if not (isinstance(hold_out_result, int) and 0 <= hold_out_result <= 9):
            raise CaptionError(f"hold_out_result = {hold_out_result!r}; allowed: a digit, 0 to 9")
        held = {c for c in paper[hold_out_result] if operation_count(c)}
    return held


def caption_pool(
    family: str,
    split: str,
    seed: int = 0,
    logic_k: tuple[int, int] = (1, 3),
    logic_test_k: tuple[int, int] | None = None,
    train_max_ops: int = 1,
    hold_out_pairs: int = 0,
    **arithmetic_split,
) -> dict[int, list[str]]:
    """Captions a split may give an image of each digit: {digit: [caption, ...]}.
    `arithmetic_split`: hold_out_captions, add_primitive or hold_out_result (arithmetic_pool)."""
    if family not in FAMILIES:
        raise CaptionError(f"unknown family '{shown(family, 40)}'; choose one of: {', '.join(FAMILIES)}")
    if split not in SPLITS:
        raise CaptionError(f"unknown split '{shown(split, 40)}'; choose one of: {', '.join(SPLITS)}")
    if split == "test":
        holdout.require("test captions")
    options = dict(
        seed=seed,
        logic_k=logic_k,
        logic_test_k=logic_test_k,
        train_max_ops=train_max_ops,
        hold_out_pairs=hold_out_pairs,
        **arithmetic_split,
    )
    if family != "mixed":
        return REGISTRY[family].pool(split, **options)
    merged: dict[int, list[str]] = {d: [] for d in range(10)}
    for fam in MIXED:
        for d, pool in REGISTRY[fam].pool(split, **options).items():
            merged[d].extend(pool)
    return merged


ARITHMETIC_SPLITS = ("hold_out_captions", "add_primitive", "hold_out_result")  # [data] keys, None if unset


def pool_for(data: dict, split: str) -> dict[int, list[str]]:
    """The caption pool that a config's [data] table gives a split."""
    logic_test = data.get("logic_test_k")
    return caption_pool(
        data["family"],
        split,
        data.get("caption_seed", 0),
        tuple(data.get("logic_k", (1, 3))),
        tuple(logic_test) if logic_test else None,
        data.get("train_max_ops", 1),
        data.get("hold_out_pairs", 0),
        **{k: data[k] for k in ARITHMETIC_SPLITS if data.get(k) is not None},
    )


def number_pool_for(data: dict, split: str) -> dict[int, list[str]]:
    """The captions of numbers past nine that a config's [data] table gives a split ({} without
    `numbers`; config.resolve checked the rest)."""
    if not data.get("numbers"):
        return {}
    return number_pool(split, data.get("caption_seed", 0), tuple(data.get("hold_out_numbers") or ()))


def pool_families(data: dict, split: str) -> list[str]:
    """The family each caption of pool_for(data, split) comes from, in CaptionPool's order (digit by
    digit): what a `routed` caption encoder's router learns from."""
    family = data["family"]
    if family != "mixed":
        return [family] * sum(map(len, pool_for(data, split).values()))
    parts = [(f, pool_for({**data, "family": f}, split)) for f in MIXED]
    return [f for d in range(10) for f, pool in parts for _ in pool[d]]


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Family:
    """A caption family: everything ved needs to build its data, read its captions and study it."""

    name: str
    # (split, seed=..., and every [data] option as a keyword) -> {digit: [caption, ...]}; a family
    # takes the options it has and ignores the rest (`**_`)
    pool: Callable[..., dict[int, list[str]]]
    # a caption's words -> its digit if they are this family's form, None if they are not, or
    # CaptionError if they are its form written wrongly (`min three`)
    value: Callable[[list[str]], int | None]
    form: str = ""  # the form as the parser's refusal names it, e.g. "'min|max d d ...'"
    expert: str = "word-sum"  # the caption encoder a `routed` model reads it with, by default
    paper_config: str | None = None  # the shipped config of the paper's VED on it, if the study has one
    # in `mixed`: changes what every mixed config trains on, the default model's included, so a
    # new family joins it only on purpose
    mixed: bool = False


REGISTRY: dict[str, Family] = {}
FAMILIES: tuple[str, ...] = ()  # the registry's names and "mixed"
MIXED: tuple[str, ...] = ()  # the families a `mixed` config trains on, in registry order


def register(family: Family) -> None:
    """Add a caption family (or replace one of the same name)."""
    REGISTRY[family.name] = family
    _refresh()


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)
    _refresh()


def _refresh() -> None:
    global FAMILIES, MIXED
    FAMILIES = (*REGISTRY, "mixed")
    MIXED = tuple(name for name, f in REGISTRY.items() if f.mixed)


def _logic(split, seed=0, logic_k=(1, 3), logic_test_k=None, **_):
    return logic_pool(split, seed, logic_test_k if (split == "test" and logic_test_k) else logic_k)


def _arithmetic(split, seed=0, train_max_ops=1, hold_out_pairs=0, **options):
    chosen = {k: options[k] for k in ARITHMETIC_SPLITS if options.get(k) is not None}
    return arithmetic_pool(split, seed, train_max_ops, hold_out_pairs, **chosen)


# The paper's four, in the paper's order: the order numbers FAMILIES, the mixed pool and its rows.
for _family in (
    Family("label", lambda split, **_: label_pool(), _label_value, "a digit word", "word-sum", "paper-label"),
    Family(
        "sentence",
        lambda split, **_: sentence_pool(),
        _sentence_value,
        f"one of the {len(TEMPLATES)} sentence templates",
        "word-sum",
        "paper-sentence",
    ),
    Family("logic", _logic, _logic_value, "'min|max d d ...'", "attention-mean", "paper-logic"),
    Family(
        "arithmetic", _arithmetic, _arithmetic_value, "'d plus|minus d ...'", "word-sum", "paper-arithmetic"
    ),
):
    register(dataclasses.replace(_family, mixed=True))
