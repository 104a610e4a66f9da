"""Numbers past nine: the grammar's 9/10 boundary, the numbers' caption splits, strips of real
digits read by the judge, a caption side that places numbers it never saw, and a model that draws
`seven plus eight` as a strip."""

import pytest
import torch
from conftest import assert_one_line, ved_main

from ved import captions, strips, vocab
from ved.models.caption_prior import CaptionFit, CaptionPrior

HELD = (10, 21, 32, 43, 14, 25, 36, 17, 28, 39)


def test_digits_stop_at_nine_and_numbers_at_their_largest():
    assert captions.parse("nine plus zero") == 9
    with pytest.raises(
        captions.CaptionError, match=r"evaluates to 10; the result must be a digit 0..9 \(models"
    ):
        captions.parse("nine plus one")
    assert captions.number("nine plus one") == 10
    assert captions.number("seven plus eight") == 15
    assert captions.number("nine plus nine plus nine") == 27
    assert captions.number("nine plus nine plus nine plus nine plus nine") == captions.MAX_NUMBER
    with pytest.raises(captions.CaptionError, match=f"the result must be a number 0..{captions.MAX_NUMBER}$"):
        captions.number("nine plus nine plus nine plus nine plus nine plus one")
    with pytest.raises(captions.CaptionError, match=r"evaluates to -1; the result must be a number 0..45$"):
        captions.number("one minus two")
    with pytest.raises(captions.CaptionError, match=r"evaluates to -1; the result must be a digit 0..9$"):
        captions.parse("one minus two")
    assert (
        captions.digits_of(7) == [7] and captions.digits_of(15) == [1, 5] and captions.digits_of(40) == [4, 0]
    )


def test_number_captions_split_by_hash_and_held_out_numbers_never_train_or_validate(test_split):
    pools = {split: captions.number_pool(split) for split in captions.SPLITS}
    assert set(pools["train"]) == set(range(10, captions.MAX_NUMBER + 1))
    for split, pool in pools.items():
        for number, texts in pool.items():
            assert all(captions.number(c) == number for c in texts), split
    seen = [{c for texts in pool.values() for c in texts} for pool in pools.values()]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert (
        min(len(t) for t in pools["train"].values()) >= 25
        and min(len(t) for t in pools["test"].values()) >= 1
    )

    held = {split: captions.number_pool(split, hold_out_numbers=HELD) for split in captions.SPLITS}
    for split in ("train", "valid"):
        made = {captions.number(c) for texts in held[split].values() for c in texts}
        assert not made & set(HELD) and made  # every other number still trains and validates
    # the one-digit pools of a numbers config are the paper's, which reach 9 at most
    assert all(captions.parse(c) < 10 for texts in captions.arithmetic_train_pool().values() for c in texts)
    assert {n for n, texts in held["test"].items() if texts} == set(HELD)
    everything = captions.number_pool("train")  # no hold-out: the hash's training captions of each number
    for n in HELD:
        assert set(everything[n]) <= set(held["test"][n])
    with pytest.raises(captions.CaptionError, match="is in no training number"):
        captions.number_pool("train", hold_out_numbers=tuple(range(40, 46)))
    with pytest.raises(captions.CaptionError, match="allowed: whole numbers 10 to 45"):
        captions.number_pool("train", hold_out_numbers=(9,))


def test_strips_are_right_aligned_and_read_by_the_judge_cell_by_cell(mnist_data):
    from ved.pipeline import load_judge

    numbers = torch.tensor([7, 15, 40, 45, 0, 33])
    assert strips.place_digits(numbers, 2).tolist() == [[-1, 7], [1, 5], [4, 0], [4, 5], [-1, 0], [3, 3]]
    images, labels = mnist_data.split("valid")
    images, labels = torch.as_tensor(images), torch.as_tensor(labels).long()
    many = torch.arange(10, captions.MAX_NUMBER + 1).repeat(20)
    composed = strips.compose(images, labels, many, torch.Generator().manual_seed(0), 2)
    assert composed.shape == (len(many), 28, 56) and composed.dtype == torch.uint8
    judge = load_judge()
    right = strips.read(judge, composed, many)
    assert right.float().mean() > 0.97  # real digit pairs: the judge's own error, twice
    # a strip read against another number, or with ink where a blank cell should be, is wrong
    assert strips.read(judge, composed, many + 1).float().mean() < 0.1
    one_digit = strips.compose(images, labels, torch.full((50,), 7), torch.Generator().manual_seed(1), 2)
    assert strips.read(judge, one_digit, torch.full((50,), 7)).float().mean() > 0.95
    inked = one_digit.clone()
    inked[:, :, :28] = composed[:50, :, :28]
    assert not strips.read(judge, inked, torch.full((50,), 7)).any()


def test_two_cell_caption_prior_places_numbers_no_training_caption_makes():
    """The prototypes of a number are sums of a first-cell and a last-cell vector, so a held-out
    number's captions land on its pair of cells, learned from the others; the digits stay one cell.
    Numbers up to 29 keep it quick (cvae-numbers fits up to 45, with ten held out, the same way)."""
    held, most = (13, 21, 28), 29
    few = captions.number_pool("train", hold_out_numbers=held, per_number=25)
    everything = captions.number_pool("train", per_number=25)
    one = captions.arithmetic_train_pool()

    def content(n):  # classes in digit order: what content.discover finds, up to their names
        return (n // 10 + 1) * 10 + n % 10 if n >= 10 else n

    def encoded(pool):
        pairs = [(c, content(n)) for n, texts in pool.items() if n <= most for c in texts]
        tokens, lengths = vocab.encode([c for c, _ in pairs])
        return tokens, lengths, torch.tensor([k for _, k in pairs])

    torch.manual_seed(0)
    prior = CaptionPrior(CaptionFit("scaled-sum", 64, 64, None, 10, 8, 10.0, 1500, True, 0.01, 1e-2, cells=2))
    prior.fit(*encoded({**one, **few}))
    assert prior.placed(*encoded({**one, **few})) > 0.99
    assert prior.placed(*encoded({n: everything[n] for n in held})) > 0.95
    first, last = prior.cells_of(torch.tensor([7, 25, 55]))  # 7, 15 and 45
    assert first.tolist() == [-1, 1, 4] and last.tolist() == [7, 5, 5]
    drawable = prior.drawable.view(11, 10)
    assert not drawable[1].any() and not drawable[4:].any()  # no number starts with 0, none here with 3+
    assert drawable[0].all() and drawable[2:4].all()  # the held-out numbers' pairs are drawable


def test_a_digits_model_refuses_numbers_in_one_line(tmp_path):
    code, _, err = ved_main("sample", "seven plus eight", "--out", str(tmp_path / "x.png"))
    assert_one_line(
        code, err, "evaluates to 15; the result must be a digit 0..9 (models trained with [data] numbers"
    )
    assert not (tmp_path / "x.png").exists()


def test_evaluate_samples_scores_strips_of_real_digits_cell_by_cell(tmp_path, mnist_data):
    """Real digit pairs as any generator's strips, through `ved evaluate --samples`: nearly every
    strip reads right, and its cells look like the real digits they are."""
    import json

    import numpy as np

    pool = captions.number_pool("valid")
    texts = [pool[n][0] for n in sorted(pool)]
    numbers = torch.tensor([captions.number(c) for c in texts]).repeat_interleave(4)
    images, labels = mnist_data.split("valid")
    strip_images = strips.compose(
        torch.as_tensor(images), torch.as_tensor(labels).long(), numbers, torch.Generator().manual_seed(0), 2
    )
    samples, listed, out = tmp_path / "strips.npy", tmp_path / "captions.txt", tmp_path / "scores.json"
    np.save(samples, strip_images.view(len(texts), 4, 28, 56).numpy())
    listed.write_text("\n".join(texts) + "\n")
    args = ["evaluate", "--samples", str(samples), "--captions-file", str(listed), "--split", "valid"]
    code, printed, err = ved_main(*args, "--json", str(out))
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["accuracy"] > 0.95 and result["cell_accuracy"] > 0.97
    assert 0.9 < result["diversity"] < 1.1
    assert [r["number"] for r in result["by_caption"]] == sorted(pool)
    np.save(samples, np.zeros((2, 2, 28, 84), np.uint8))
    code, _, err = ved_main(*args)
    assert_one_line(code, err, "(captions, n, 28, 56) for strips of numbers past nine")


@pytest.fixture(scope="module")
def numbers_run(tmp_path_factory):
    from pathlib import Path

    out = tmp_path_factory.mktemp("numbers") / "run"
    config = Path(__file__).parent / "configs" / "tiny-numbers.toml"
    code, _, err = ved_main("train", "--config", str(config), "--out", str(out), "--quiet")
    assert code == 0, err
    return out


def test_a_numbers_model_draws_strips_in_one_hand_and_digits_in_one_cell(numbers_run, tmp_path):
    import numpy as np

    import ved

    pipe = ved.load(numbers_run)
    strip = pipe.generate(["seven plus eight", "nine plus nine plus nine", "seven"], 3, seed=0)
    assert strip.shape == (3, 3, 28, 56) and strip.dtype == np.uint8
    assert strip[2, :, :, :28].max() == 0  # a one-digit number's first cell is blank
    assert pipe.generate(["seven", "two plus two"], 2, seed=0).shape == (
        2,
        2,
        28,
        28,
    )  # digits alone: one cell
    out = pipe(["seven plus eight"], 2, generator=0)
    assert out.digits == [15] and out.images[0].size == (56, 28)  # PIL: width, height
    rows = pipe.same_style(2, generator=0, prompt=["seven plus eight", "three"])
    assert rows.shape == (2, 2, 28, 56)
    assert np.array_equal(rows[:, 1, :, 28:], pipe.same_style(2, generator=0, prompt=["three"])[:, 0])
    code, printed, err = ved_main(
        "sample", "seven plus eight", "nine plus nine plus nine", "--model", str(numbers_run), "-n", "2",
        "--seed", "0", "--out", str(tmp_path / "x.npy"),
    )  # fmt: skip
    assert code == 0, err
    assert np.load(tmp_path / "x.npy").shape == (2, 2, 28, 56)
    code, _, err = ved_main(
        "sample", "nine plus nine plus nine plus nine plus nine plus one", "--model", str(numbers_run)
    )
    assert_one_line(code, err, "evaluates to 46; the result must be a number 0..45")


@pytest.mark.parametrize(
    "change, fragment",
    [
        (
            ("numbers = true", "numbers = false"),
            "[model] cells = 2 draws numbers past nine and needs [data] numbers = true",
        ),
        (
            ("cells = 2", "cells = 1"),
            "[model] cells = 2 draws numbers past nine and needs [data] numbers = true",
        ),
        (
            ("numbers = true", "numbers = true\nhold_out_numbers = [5]"),
            "allowed: a list of whole numbers from 10 to 45",
        ),
        (
            ("numbers = true", "numbers = true\nhold_out_numbers = [40, 41, 42, 43, 44, 45]"),
            "is in no training number",
        ),
        (
            ("numbers = true", "numbers = false\nhold_out_numbers = [15]", "cells = 2", "cells = 1"),
            "hold_out_numbers holds numbers past nine out",
        ),
        (
            ('family = "arithmetic"', 'family = "logic"'),
            "numbers = true needs arithmetic captions; got family = 'logic'",
        ),
    ],
)
def test_numbers_configs_are_refused_in_one_line_before_anything_is_written(tmp_path, change, fragment):
    from pathlib import Path

    config = (Path(__file__).parent / "configs" / "tiny-numbers.toml").read_text()
    for old, new in zip(change[::2], change[1::2]):  # pairs of (text, its replacement)
        assert old in config
        config = config.replace(old, new)
    broken = tmp_path / "broken.toml"
    broken.write_text(config)
    code, _, err = ved_main("train", "--config", str(broken), "--out", str(tmp_path / "run"), "--quiet")
    assert_one_line(code, err, fragment)
    assert not (tmp_path / "run").exists()


def test_the_http_api_and_the_page_draw_strips(numbers_run):
    """`ved serve --model RUN` of a numbers model: /api/generate answers 15 with 28 x 56 strips,
    a one-digit caption batched beside it still gets one cell, same-style writes given captions, and
    the page lays the strips out in a wider grid (Chromium)."""
    import base64
    import io
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from conftest import serving
    from PIL import Image
    from test_serve import ARTIFACTS, WAIT_MS, chromium_path

    def size(png):
        return Image.open(io.BytesIO(base64.b64decode(png))).size

    with serving("--model", str(numbers_run)) as url:
        answer = httpx.post(
            url + "/api/generate", json={"caption": "seven plus eight", "n": 2, "seed": 0}
        ).json()
        assert answer["digit"] == 15 and [size(p) for p in answer["images"]] == [(56, 28)] * 2
        both = [{"caption": c, "n": 2, "seed": 0} for c in ("seven", "nine plus nine plus nine")] * 4
        with ThreadPoolExecutor(8) as pool:  # together, so that they may share a forward pass
            answers = list(
                pool.map(lambda b: httpx.post(url + "/api/generate", json=b, timeout=300).json(), both)
            )
        assert {a["digit"]: size(a["images"][0]) for a in answers} == {7: (28, 28), 27: (56, 28)}
        parsed = httpx.get(url + "/api/parse", params={"caption": "seven plus eight"}).json()
        assert parsed["digit"] == 15
        styled = httpx.post(
            url + "/api/same-style", json={"n": 2, "seed": 1, "captions": ["seven plus eight", "four"]}
        )
        assert styled.status_code == 200 and [size(p) for p in styled.json()["images"][0]] == [
            (56, 28),
            (28, 28),
        ]
        refused = httpx.post(
            url + "/api/same-style",
            json={"captions": ["nine plus nine plus nine plus nine plus nine plus nine"]},
        )
        assert refused.status_code == 400 and "evaluates to 54" in refused.json()["detail"]
        for body in (
            {"captions": ["four"] * 11},
            {"captions": []},
            {"captions": [4]},
            {"captions": ["x" * 300]},
        ):
            assert httpx.post(url + "/api/same-style", json=body).status_code == 422, body
        unknown = httpx.get(url + "/api/parse", params={"caption": "two", "model": "nope"})
        assert unknown.status_code == 400 and "nope" in unknown.json()["detail"]
        png = httpx.post(
            url + "/api/generate?format=png", json={"caption": "seven plus eight", "n": 3, "seed": 0}
        )
        assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (3 * 56, 28)

        sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
        executable = chromium_path()
        if executable is None:
            pytest.skip("Debian's chromium could not be installed with apt-get on this machine")
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(url + "/")
            page.fill("#caption", "seven plus eight")
            page.click("#generate")
            page.locator("#status", has_text="means 15").wait_for(timeout=WAIT_MS)
            assert "strips" in page.get_attribute("#grid", "class")
            assert page.eval_on_selector_all("#grid img", "imgs => imgs.every(i => i.naturalWidth === 56)")
            box = page.locator("#grid img").first.bounding_box()
            assert box["width"] == pytest.approx(2 * box["height"], rel=0.02)  # not squeezed into a square
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "demo-numbers.png"), full_page=True)
            page.fill("#caption", "seven")
            page.click("#generate")
            page.locator("#status", has_text="means 7").wait_for(timeout=WAIT_MS)
            assert "strips" not in (page.get_attribute("#grid", "class") or "")
            browser.close()


def test_captions_list_and_parse_read_numbers_when_asked(tmp_path):
    code, printed, err = ved_main("captions", "parse", "--numbers", "seven plus eight", "two")
    assert code == 0 and printed.split() == ["15", "2"], err
    code, _, err = ved_main("captions", "parse", "seven plus eight")
    assert_one_line(code, err, "evaluates to 15; the result must be a digit 0..9")
    out = tmp_path / "captions.txt"
    code, printed, err = ved_main("captions", "list", "--numbers", "--split", "valid", "--out", str(out))
    assert code == 0, err
    listed = out.read_text().splitlines()
    assert {captions.number(c) for c in listed} == set(range(captions.MAX_NUMBER + 1))
    assert listed == [
        c
        for n, texts in sorted({**captions.arithmetic_pool("valid"), **captions.number_pool("valid")}.items())
        for c in texts
    ]
    code, _, err = ved_main("captions", "list", "--numbers", "--family", "logic")
    assert_one_line(code, err, "--numbers lists arithmetic captions")
