import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ved import captions, vocab
from ved import config as configs
from ved.captions import CaptionError, parse


@pytest.mark.parametrize("family", captions.FAMILIES)
@pytest.mark.parametrize("split", captions.SPLITS)
def test_every_pool_caption_parses_to_its_digit(family, split, test_split):
    pool = captions.caption_pool(family, split)
    for digit, pool_captions in pool.items():
        assert pool_captions, (family, split, digit)
        for c in pool_captions:
            assert parse(c) == digit, c
            assert len(vocab.tokenize(c)) <= captions.MAX_TOKENS + 2


@pytest.mark.parametrize(
    "caption,digit",
    [
        ("five", 5),
        ("this is a black five on a white background", 5),
        ("that 's a seven", 7),
        ("min nine five seven", 5),
        ("max one four", 4),
        ("three plus two", 5),
        ("one plus two plus one plus one", 5),
        ("nine minus five minus four", 0),
        ("one minus two plus one", 0),
        ("  THREE   plus TWO ", 5),
    ],
)
def test_paper_examples(caption, digit):
    assert parse(caption) == digit


@pytest.mark.parametrize(
    "caption,fragment",
    [
        ("fiv", "did you mean 'five'"),
        ("three plus", "ends with the operator"),
        ("nine plus nine", "evaluates to 18"),
        ("one minus two", "evaluates to -1"),
        ("min five", "two or more"),
        ("plus one two", "starts with the operator"),
        ("the five", "not a caption form"),
        # each message whole, as a user reads it: what is wrong, where, and what is allowed (a mutation
        # run over the grammar's functions found messages, both operators and the length limits that
        # no test pinned)
        ("", "caption '': empty caption: write e.g. 'five', 'three plus two' or 'min nine five seven'"),
        (
            "three minus",
            "caption 'three minus': ends with the operator 'minus'; an operator needs a digit after it",
        ),
        (
            "minus three",
            "caption 'minus three': starts with the operator 'minus'; write 'd plus|minus d ...'",
        ),
        ("plus three", "caption 'plus three': starts with the operator 'plus'; write 'd plus|minus d ...'"),
        ("one plus plus two", "caption 'one plus plus two': expected a digit word at word 3, got 'plus'"),
        ("one plus two two", "caption 'one plus two two': expected 'plus' or 'minus' at word 4, got 'two'"),
        (
            "one or two",
            "caption 'one or two': 'or' is in the paper's vocabulary but no caption family uses it",
        ),
        ("qqqq", "caption 'qqqq': unknown word 'qqqq': allowed words: zero one two three four five six"),
        ("x" * 1025, "1,025 characters; at most 1024 are allowed"),
        ("q" * 40, f"unknown word '{'q' * 27}...': allowed words"),  # a long word, shortened to 30
        (" ".join(["one"] * 65), "65 words; at most 64 are allowed"),
    ],
)
def test_errors_are_one_line_and_name_the_problem(caption, fragment):
    with pytest.raises(CaptionError) as e:
        parse(caption)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_the_length_limits_are_inclusive_and_other_families_are_refused_by_name():
    assert parse("one" + " " * (captions.MAX_CHARS - 3)) == 1  # exactly MAX_CHARS characters
    assert parse(" ".join(["one"] + ["plus zero"] * ((captions.MAX_TOKENS - 1) // 2))) == 1  # 63 words
    assert len(captions.words(" ".join(["one"] * captions.MAX_TOKENS))) == captions.MAX_TOKENS
    assert captions.check_caption("min three five", "mixed") == 3  # a mixed model reads every family
    assert captions.check_caption("min three five", None) == 3
    with pytest.raises(
        CaptionError, match=r"^caption 'min three five' is a logic caption; this model was trai"
    ):
        captions.check_caption("min three five", "arithmetic")


VOCAB_WORDS = st.sampled_from(captions.CAPTION_WORDS + ["fiv", "", "<start>", "PLUS", "nine9", "é"])


@settings(max_examples=400, deadline=None)
@given(st.lists(VOCAB_WORDS, max_size=12).map(" ".join))
def test_random_word_strings_parse_or_raise_caption_error(text):
    try:
        assert 0 <= parse(text) <= 9
    except CaptionError as e:
        assert str(e) and "\n" not in str(e)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_random_text_parses_or_raises_caption_error(text):
    """Any text: a digit 0-9, or a CaptionError of one line; nothing else (no other exception)."""
    try:
        value = parse(text)
    except CaptionError as e:
        assert str(e) and "\n" not in str(e) and len(str(e)) < 400
    else:
        assert value in range(10)


def test_arithmetic_pools_are_the_papers():
    pool = captions.arithmetic_train_pool()
    assert [len(pool[d]) for d in range(10)] == [12, 12, 13, 13, 13, 13, 13, 13, 13, 13]
    assert "one plus one plus one plus one plus one" in pool[5]
    assert "nine minus four" in pool[5] and "zero plus five" in pool[5]


def test_arithmetic_test_split_is_unseen_long_and_balanced(test_split):
    train = {c for p in captions.caption_pool("arithmetic", "train").values() for c in p}
    test = captions.caption_pool("arithmetic", "test")
    flat = [c for p in test.values() for c in p]
    assert len(flat) >= 500 and len(set(flat)) == len(flat)
    assert not train & set(flat)
    counts = {}
    for d, pool in test.items():
        for c in pool:
            counts[(d, captions.operation_count(c))] = counts.get((d, captions.operation_count(c)), 0) + 1
    assert set(k[1] for k in counts) == {2, 3, 4, 5}
    assert len(set(counts.values())) == 1  # the same number in every (digit, operations) cell


@pytest.mark.parametrize("options", [{"train_max_ops": 2}, {"train_max_ops": 3}, {"hold_out_pairs": 30}])
def test_scan_style_arithmetic_splits(options, test_split):
    """Length: training has 1..k operations and the test only more. Operand pairs: the held-out
    one-operation captions are the whole test split, three per digit, and no training caption."""
    train, test = (captions.caption_pool("arithmetic", s, **options) for s in ("train", "test"))
    train_ops = {
        captions.operation_count(c) for p in train.values() for c in p if not c.startswith("one plus one")
    }
    test_ops = {captions.operation_count(c) for p in test.values() for c in p}
    assert not {c for p in train.values() for c in p} & {c for p in test.values() for c in p}
    assert all(parse(c) == d for split in (train, test) for d, p in split.items() for c in p)
    if "train_max_ops" in options:
        k = options["train_max_ops"]
        assert train_ops == set(range(k + 1)) and test_ops == set(range(k + 1, 6))
    else:
        assert test_ops == {1} and [len(test[d]) for d in range(10)] == [3] * 10
        assert len(train_ops) == 2 and all(len(p) >= 9 for p in train.values())


def test_the_study_reports_each_systematic_split_for_two_choices_none_a_development_one():
    from ved.reproduce import BEYOND_RUNS, SPLIT_VARIANTS

    development = [{"add_primitive": "six"}, {"hold_out_result": 2}]
    development.append({"hold_out_pairs": 30, "caption_seed": 1})
    held_out = {}
    for run in BEYOND_RUNS:
        name = run.name
        data = {**configs.load(run.config)["data"], **run.data}
        train = {c for p in captions.pool_for(data, "train").values() for c in p}
        held_out[name] = {c for p in captions.arithmetic_train_pool().values() for c in p} - train
        assert all(not held_out[name] or held_out[name] != dev_held(o) for o in development), name
    for split in SPLIT_VARIANTS[2:] + SPLIT_VARIANTS[:1]:  # the systematic ones: two choices each
        for model in ("cvae", "paper"):
            second = next(r.name for r in BEYOND_RUNS if r.data and r.name.startswith(f"{model}-{split}-"))
            assert held_out[f"{model}-{split}"] and held_out[second]
            assert held_out[f"{model}-{split}"] != held_out[second]
            assert held_out[f"{model}-{split}"] == held_out[f"cvae-{split}"]  # both models, one split


def dev_held(option: dict) -> set[str]:
    train = captions.pool_for({"family": "arithmetic", **option}, "train")
    return {c for p in captions.arithmetic_train_pool().values() for c in p} - {
        c for p in train.values() for c in p
    }


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"train_max_ops": 5}, "train_max_ops = 5; allowed: 1 to 4"),
        ({"hold_out_pairs": 99}, "hold_out_pairs = 99; allowed: 0 to 50"),
        ({"hold_out_pairs": 5, "train_max_ops": 2}, "set one of them"),
    ],
)
def test_bad_split_options_are_clear_errors(options, fragment):
    with pytest.raises(CaptionError, match=fragment):
        captions.caption_pool("arithmetic", "train", **options)


def test_logic_splits_are_disjoint_and_follow_the_rules(test_split):
    pools = {s: {c for p in captions.caption_pool("logic", s).values() for c in p} for s in captions.SPLITS}
    assert not pools["train"] & pools["valid"] and not pools["train"] & pools["test"]
    assert not pools["valid"] & pools["test"]
    for digit, pool in captions.caption_pool("logic", "train").items():
        for c in pool:
            op, *words = c.split()
            values = [captions.DIGIT_VALUE[w] for w in words]
            others = list(values)
            others.remove(digit)
            assert all(v > digit for v in others) if op == "min" else all(v < digit for v in others)
            assert 1 <= len(others) <= 3


def test_logic_distractor_counts_are_configurable(test_split):
    pool = captions.caption_pool("logic", "test", logic_k=(1, 2), logic_test_k=(4, 5))
    assert {captions.operation_count(c) for p in pool.values() for c in p} == {4, 5}


def test_pools_are_deterministic_from_the_seed(test_split):
    assert captions.caption_pool("mixed", "test", seed=3) == captions.caption_pool("mixed", "test", seed=3)
    assert captions.caption_pool("logic", "train", seed=3) != captions.caption_pool("logic", "train", seed=4)


def test_vocabulary_and_binary_embedding():
    assert len(captions.WORDS) == 31
    emb = vocab.binary_embedding()
    assert emb.shape == (31, 5)
    as_int = (emb * torch_powers()).sum(1).long().tolist()
    assert [as_int[vocab.WORD_ID[w]] for w in captions.DIGIT_WORDS] == list(range(10))
    assert sorted(as_int) == list(range(31))  # every word its own code
    ids, lengths = vocab.encode(["five", "three plus two"])
    assert lengths.tolist() == [3, 5] and ids[0, 0] == vocab.START and ids[0, 2] == vocab.END


def torch_powers():
    import torch

    return torch.tensor([16, 8, 4, 2, 1])


@pytest.mark.parametrize("word", ["three", "zero"])
def test_add_primitive_split_sees_the_word_only_bare(word, test_split):
    options = {"add_primitive": word}
    train, valid, test = (captions.caption_pool("arithmetic", s, **options) for s in captions.SPLITS)
    for seen in (train, valid):
        with_word = [c for p in seen.values() for c in p if word in c.split()]
        assert with_word == [word]  # the bare label, and nothing else
    flat = [c for p in test.values() for c in p]
    assert all(word in c.split() and captions.operation_count(c) >= 1 for c in flat)
    assert {captions.operation_count(c) for c in flat} == {1, 2, 3, 4, 5}
    assert all(parse(c) == d for d, p in test.items() for c in p) and all(test[d] for d in range(10))
    # every one-operation caption of the paper's pool with the word is in the test
    paper = {
        c for p in captions.arithmetic_train_pool().values() for c in p if captions.operation_count(c) == 1
    }
    assert {c for c in paper if word in c.split()} == {c for c in flat if captions.operation_count(c) == 1}


@pytest.mark.parametrize("result", [7, 0])
def test_held_out_result_split_never_makes_the_digit_by_arithmetic(result, test_split):
    options = {"hold_out_result": result}
    train, valid, test = (captions.caption_pool("arithmetic", s, **options) for s in captions.SPLITS)
    for seen in (train, valid):
        assert seen[result] == [captions.DIGIT_WORDS[result]]
        assert all(parse(c) != result for d, p in seen.items() if d != result for c in p)
    assert all(not test[d] for d in range(10) if d != result)
    assert all(parse(c) == result and captions.operation_count(c) >= 1 for c in test[result])
    assert {captions.operation_count(c) for c in test[result]} == {1, 2, 3, 4, 5}


def test_named_held_out_captions_are_the_test_split_and_nothing_else(test_split):
    held = ["zero minus zero", "zero plus nine", "four plus four"]
    options = {"hold_out_captions": held}
    train, valid, test = (captions.caption_pool("arithmetic", s, **options) for s in captions.SPLITS)
    assert sorted(c for p in test.values() for c in p) == sorted(held)
    assert not set(held) & {c for seen in (train, valid) for p in seen.values() for c in p}
    paper = {c for p in captions.arithmetic_train_pool().values() for c in p}
    assert {c for p in train.values() for c in p} == paper - set(held)
    mixed = captions.caption_pool("mixed", "train", **options)  # the other families are untouched
    assert not set(held) & {c for p in mixed.values() for c in p}


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"add_primitive": "eleven"}, "allowed: a digit word"),
        ({"hold_out_result": 10}, "allowed: a digit, 0 to 9"),
        ({"hold_out_captions": ["five"]}, "no one-operation training caption"),
        ({"hold_out_captions": ["one plus two plus three"]}, "no one-operation training caption"),
        ({"add_primitive": "one", "hold_out_result": 3}, "set one of them"),
        ({"hold_out_pairs": 5, "hold_out_result": 3}, "set one of them"),
    ],
)
def test_bad_systematic_split_options_are_clear_errors(options, fragment):
    with pytest.raises(CaptionError, match=fragment):
        captions.caption_pool("arithmetic", "train", **options)


@pytest.mark.parametrize(
    "caption,value",
    [("nine plus zero", 9), ("five plus four", 9), ("one minus one", 0), ("nine minus nine", 0),
     ("nine plus one", None), ("five plus five", None), ("zero minus one", None),
     ("nine plus one minus one", 9), ("zero minus one plus one", 0)],
)  # fmt: skip
def test_the_result_must_be_a_digit_at_both_edges(caption, value):
    """9 and 0 are digits, 10 and -1 are not; a value outside may pass on the way (left to right)."""
    if value is None:
        with pytest.raises(captions.CaptionError, match="the result must be a digit 0..9"):
            captions.parse(caption)
    else:
        assert captions.parse(caption) == value


def _echo_value(tokens):
    """A toy family's grammar: one digit word said two or more times."""
    if len(tokens) < 2 or len(set(tokens)) != 1:
        return None
    if tokens[0] not in captions.DIGIT_VALUE:
        raise CaptionError("an echo repeats one digit word, e.g. 'five five'")
    return captions.DIGIT_VALUE[tokens[0]]


def _echo_pool(split, **_):
    times = {"train": 2, "valid": 3, "test": 4}[split]  # a length split: longer echoes to test
    return {d: [" ".join([w] * times)] for d, w in enumerate(captions.DIGIT_WORDS)}


@pytest.fixture
def echo_family():
    captions.register(captions.Family("echo", _echo_pool, _echo_value, "'d d ...'", expert="gated-sum"))
    yield "echo"
    captions.unregister("echo")


def test_a_new_caption_family_is_one_registry_entry(echo_family, test_split):
    assert echo_family in captions.FAMILIES and echo_family not in captions.MIXED
    pools = {s: captions.caption_pool(echo_family, s) for s in captions.SPLITS}
    for pool in pools.values():  # the parser's contract: every pool caption parses to its digit
        assert sorted(pool) == list(range(10))
        for digit, texts in pool.items():
            assert [captions.parse(c) for c in texts] == [digit] * len(texts)
            assert all(captions.families_of(c) == [echo_family] for c in texts)
    assert not set(pools["train"][5]) & set(pools["test"][5])  # the splits hold different captions
    assert captions.check_caption("seven seven", echo_family) == 7
    with pytest.raises(CaptionError, match="is an echo caption; this model was trained on logic"):
        captions.check_caption("seven seven", "logic")
    with pytest.raises(CaptionError, match="is a label, sentence or arithmetic caption; this model was tr"):
        captions.check_caption("seven", echo_family)
    with pytest.raises(
        CaptionError, match=r"'min\|max d d \.\.\.', 'd plus\|minus d \.\.\.' or 'd d \.\.\.'"
    ):
        captions.parse("seven six seven")
    # a config trains on it, its routed models get its expert, and `mixed` is what it was
    config = configs.resolve(
        {"model": {"kind": "cvae", "caption_encoder": "routed"}, "data": {"family": "echo"}}
    )
    assert captions.pool_for(config["data"], "train") == pools["train"]
    assert captions.pool_families(config["data"], "train") == [echo_family] * 10
    assert config["model"]["experts"][echo_family] == "gated-sum"
    assert configs.default_experts()[echo_family] == "gated-sum"
    mixed = captions.caption_pool("mixed", "train")
    assert not any(captions.families_of(c) == [echo_family] for cs in mixed.values() for c in cs)


def test_the_paper_families_are_the_registry_and_mixed_is_frozen():
    """What older model folders were trained with: the paper's four, in this order, all in mixed."""
    assert captions.FAMILIES == ("label", "sentence", "logic", "arithmetic", "mixed")
    assert captions.MIXED == ("label", "sentence", "logic", "arithmetic")
    assert [f.paper_config for f in captions.REGISTRY.values()] == [
        "paper-label", "paper-sentence", "paper-logic", "paper-arithmetic"
    ]  # fmt: skip
    assert len(captions.WORDS) == 31 == len(vocab.WORD_ID)  # vocab.py: why it cannot grow for free
    from ved.models.caption_encoders import PAPER_EXPERTS

    assert configs.default_experts() == PAPER_EXPERTS  # what a routed encoder built bare reads with
