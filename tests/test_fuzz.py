"""Property-based fuzzing (hypothesis) of every way in: the parser, `generate`, the CLI and the HTTP API.

Arbitrary text (lone surrogates, control and look-alike characters included), bytes, huge inputs
and wrong types must each end in a clean refusal (a `ved` error or a 4xx with one short line,
nothing written) or valid output; never an unhandled exception, never a 5xx. The counts of inputs
tried and refused land in test-artifacts/fuzz.json.
"""

import collections
import json
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import ved_main
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ved
from ved import captions
from ved.errors import VedError

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MALFORMED_BODIES = Path(__file__).parent / "data" / "malformed-bodies.txt"  # requests a client got wrong
COUNTS = collections.defaultdict(lambda: {"tried": 0, "refused": 0, "drawn": 0})

# Vocabulary words, some with one letter swapped for a look-alike (Cyrillic 'о', the Kelvin sign
# that lower-cases to 'k', a full-width 'e', a soft hyphen) or a control character.
LOOKALIKES = {"o": "\u043e", "k": "\u212a", "e": "\uff45", "i": "\u0456"}


def disguise(word: str, how: int) -> str:
    if how == 0:
        return word
    if how == 1:
        for plain, fake in LOOKALIKES.items():
            if plain in word:
                return word.replace(plain, fake, 1)
    return (
        word[: len(word) // 2]
        + ["\u00ad", "\x00", "\u200b", "\x1b", "\ud800"][how % 5]
        + word[len(word) // 2 :]
    )


WORDISH = st.builds(disguise, st.sampled_from(captions.CAPTION_WORDS + captions.SPECIALS), st.integers(0, 6))
ANY_CHAR = st.characters(blacklist_categories=())  # surrogates and controls included
VALID = [
    "five",
    "Five",
    "  seven ",
    "this is a black five on a white background",
    "min nine five seven",
    "max one four",
    "three plus two",
    "one plus two plus one plus one",
    "nine minus five minus four",
]
CAPTION_TEXT = st.one_of(
    st.sampled_from(VALID),  # valid captions too, so that the drawing paths are fuzzed as well
    st.lists(WORDISH, max_size=12).map(" ".join),
    st.text(ANY_CHAR, max_size=80),
    st.lists(st.sampled_from(captions.CAPTION_WORDS), min_size=1, max_size=70).map(" ".join),
)
NOT_TEXT = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=20),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)
HUGE = ["x" * 100_000, "five " * 20_000, "\ud800" * 5_000, "one plus " * 3_000 + "one"]


@pytest.fixture(scope="module", autouse=True)
def write_counts():
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz.json").write_text(json.dumps(COUNTS, indent=2, sort_keys=True))


def assert_clean(message: str) -> None:
    assert message and "\n" not in message and len(message) <= 600, message
    message.encode("utf-8")  # printable: no lone surrogate got through


@settings(max_examples=600, deadline=None)
@given(st.one_of(CAPTION_TEXT, NOT_TEXT))
@example(HUGE[0])
@example(HUGE[1])
@example(HUGE[2])
def test_parser_gives_a_digit_or_a_one_line_caption_error(text):
    COUNTS["parser"]["tried"] += 1
    try:
        digit = captions.parse(text)
    except captions.CaptionError as e:
        COUNTS["parser"]["refused"] += 1
        assert_clean(str(e))
        return
    assert isinstance(digit, int) and 0 <= digit <= 9
    assert captions.check_caption(text, None) == digit and captions.families_of(text)


@pytest.fixture(scope="module")
def label_pipe():
    return ved.load("paper-label")


@pytest.mark.filterwarnings("ignore:drawing")  # strict=False says so by design
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    captions_=st.one_of(CAPTION_TEXT, st.lists(st.one_of(CAPTION_TEXT, NOT_TEXT), max_size=3), NOT_TEXT),
    n=st.one_of(
        st.integers(1, 3), st.integers(-2, 3), st.floats(allow_nan=True), st.booleans(), st.text(max_size=3)
    ),
    strict=st.one_of(st.booleans(), st.none()),
)
@example(HUGE[3], 1, True)
def test_generate_draws_or_refuses_with_a_ved_error(label_pipe, captions_, n, strict):
    COUNTS["generate"]["tried"] += 1
    try:
        images = label_pipe.generate(captions_, n=n, seed=0, strict=strict)
    except VedError as e:
        COUNTS["generate"]["refused"] += 1
        assert_clean(str(e))
        return
    except UserWarning:
        pytest.fail("warnings are not errors here")
    COUNTS["generate"]["drawn"] += 1
    rows = 1 if isinstance(captions_, str) else len(list(captions_))
    assert images.shape == (rows, n, 28, 28) and images.dtype == np.uint8


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    caption=CAPTION_TEXT.filter(lambda t: "\x00" not in t and "\ud800" not in t),  # argv holds neither
    n=st.sampled_from(["1", "2", "0", "-1", "x", "2.5", "99999"]),
    strict=st.booleans(),
)
def test_cli_writes_samples_or_refuses_in_one_line_writing_nothing(tmp_path_factory, caption, n, strict):
    folder = tmp_path_factory.mktemp("cli")
    out = folder / "x.npy"
    args = [
        "sample",
        "--model",
        "paper-label",
        "-n",
        n,
        "--out",
        str(out),
        *([] if strict else ["--no-strict"]),
        "--",
        caption,
    ]  # "--": a caption may start with "-"
    COUNTS["cli"]["tried"] += 1
    code, stdout, err = ved_main(*args)
    if code == 0:
        COUNTS["cli"]["drawn"] += 1
        assert np.load(out).shape == (1, int(n), 28, 28)
        return
    COUNTS["cli"]["refused"] += 1
    assert code == 2 and "Traceback" not in err, err
    assert_clean(err.strip().splitlines()[-1])
    assert err.count("\n") == 1 and list(folder.iterdir()) == []


JSON_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(ANY_CHAR, max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
GOODISH = st.fixed_dictionaries(
    {"caption": st.sampled_from(VALID)},
    optional={
        "n": st.integers(-1, 66),
        "seed": st.one_of(st.none(), st.integers(-1, 2**64)),
        "strict": st.booleans(),
        "model": st.sampled_from(["paper-label", "cvae-mixed", "paper-logic"]),
    },
)
BODY = st.fixed_dictionaries(
    {},
    optional={
        "caption": st.one_of(CAPTION_TEXT, JSON_VALUE),
        "n": JSON_VALUE,
        "seed": JSON_VALUE,
        "model": st.one_of(st.sampled_from(["paper-label", "cvae-mixed", "../judge", "nope"]), JSON_VALUE),
        "strict": JSON_VALUE,
        "extra": JSON_VALUE,
    },
)


def encode(body) -> bytes:
    # Python's json writes NaN, Infinity and lone surrogates (as \ud800), as a careless client would
    return json.dumps(body).encode()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        GOODISH.map(encode),
        BODY.map(encode),
        st.binary(max_size=200),
        st.text(ANY_CHAR, max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
)
def test_http_api_answers_4xx_or_200_never_5xx(server, body, content_type):
    COUNTS["http"]["tried"] += 1
    headers = {"Content-Type": content_type} if content_type else {}
    r = httpx.post(server + "/api/generate", content=body, headers=headers, timeout=300)
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code == 200:
        COUNTS["http"]["drawn"] += 1
        data = r.json()
        assert len(data["images"]) == data["n"] and (data["digit"] is None) == ("warning" in data)
        return
    COUNTS["http"]["refused"] += 1
    assert 400 <= r.status_code < 500 and len(r.content) < 700
    assert_clean(r.json()["detail"])


def test_bad_requests_do_not_drop_a_good_one_on_the_same_connection(server):
    """Keep-alive survives each kind of bad request: a good one on the same socket is answered."""
    host, port = server.removeprefix("http://").split(":")
    bad_bodies = MALFORMED_BODIES.read_bytes().splitlines()  # shared with benchmarks/serve_load.py
    good = b'{"caption": "five", "n": 2, "seed": 1}'
    with socket.create_connection((host, int(port))) as sock:
        reader = sock.makefile("rb")
        for body in bad_bodies + [good]:
            sock.sendall(
                b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            status = int(reader.readline().split()[1])
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            payload = json.loads(reader.read(length))
            assert (status == 200) == (body == good) and status < 500, (body, status, payload)
            COUNTS["http keep-alive"]["tried"] += 1
            COUNTS["http keep-alive"]["refused" if status >= 400 else "drawn"] += 1
