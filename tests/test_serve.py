"""The web demo and API against a real uvicorn server on loopback, and a real browser."""

import base64
import io
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import free_port, run_ved, serving
from PIL import Image

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
WAIT_MS = 120_000  # a hang guard for a busy machine, not a speed target


def decode(png_b64):
    return np.array(Image.open(io.BytesIO(base64.b64decode(png_b64))))


def test_generate_returns_digit_and_images(server):
    r = httpx.post(server + "/api/generate", json={"caption": "three plus two", "seed": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["digit"] == 5 and body["n"] == 8 and len(body["images"]) == 8  # one default n everywhere
    first = decode(body["images"][0])
    assert first.shape == (28, 28) and first.dtype == np.uint8
    again = httpx.post(server + "/api/generate", json={"caption": "three plus two", "seed": 5}).json()
    assert again["images"] == body["images"]


def test_generate_png_grid(server):
    r = httpx.post(server + "/api/generate?format=png", json={"caption": "seven", "n": 10})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert np.array(Image.open(io.BytesIO(r.content))).shape == (56, 224)


def test_parse_and_models(server):
    assert httpx.get(server + "/api/parse", params={"caption": "min nine five seven"}).json()["digit"] == 5
    models = httpx.get(server + "/api/models").json()
    assert "paper-arithmetic" in models["models"] and models["default"] in models["models"]


def test_errors_are_json_with_the_cli_message(server):
    r = httpx.get(server + "/api/parse", params={"caption": "thre plus two"})
    code, _, err = run_ved("captions", "parse", "thre plus two")
    assert r.status_code == 400 and r.json()["detail"] in err
    r = httpx.post(server + "/api/generate", json={"caption": "nine plus nien"})
    assert r.status_code == 400 and "did you mean 'nine'" in r.json()["detail"]


@pytest.mark.parametrize(
    "body", [{"caption": "one " * 65}, {"caption": "five", "n": 0}, {"caption": "five", "n": 65}, {"n": 3}]
)
def test_out_of_range_requests_are_422(server, body):
    assert httpx.post(server + "/api/generate", json=body).status_code == 422


def test_models_are_looked_up_by_name_only(server, tmp_path):
    for name in ("../weights/judge", "/etc", str(tmp_path)):
        r = httpx.post(server + "/api/generate", json={"caption": "five", "model": name})
        assert r.status_code == 400 and "unknown model" in r.json()["detail"]
    r = httpx.post(server + "/api/generate", json={"caption": "five", "model": "paper-label", "n": 2})
    assert r.status_code == 200 and r.json()["model"] == "paper-label"


def test_requests_that_arrive_together_share_a_forward_pass(server):
    """32 requests at once, for 8 captions and 32 seeds: some share a forward pass (X-Ved-Batched),
    and each gets the images it gets alone: each request has its own seed, so what it shares its
    pass with does not matter, up to float rounding (measured: at most one grey level, in 1 row of
    36 at n=16)."""
    texts = ["nine minus five minus four", "three plus two", "seven", "min nine five seven"] * 2

    def call(seed):
        body = {"caption": texts[seed % len(texts)], "seed": seed, "n": 8}
        r = httpx.post(server + "/api/generate", json=body, timeout=300)
        assert r.status_code == 200, r.text
        return int(r.headers["x-ved-batched"]), [decode(im).astype(int) for im in r.json()["images"]]

    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(call, range(32)))
    alone = [call(seed) for seed in range(32)]  # one at a time: each drawn on its own
    assert max(batched for batched, _ in together) > 1 and all(batched == 1 for batched, _ in alone)
    for (_, shared), (_, own) in zip(together, alone):
        assert max(np.abs(a - b).max() for a, b in zip(shared, own)) <= 1
    assert alone[0][1][0].tolist() != alone[8][1][0].tolist()  # same caption, another seed


def test_a_full_queue_answers_503_with_retry_after():
    """With room for one waiting request per worker, 48 requests at once: the ones that find the
    queue full get a clean 503 with Retry-After, the rest their images; nothing else."""
    with serving("--queue", "1") as url:

        def call(seed):
            body = {"caption": "three plus two", "seed": seed, "n": 64}
            return httpx.post(url + "/api/generate", json=body, timeout=300)

        with ThreadPoolExecutor(48) as pool:
            answers = list(pool.map(call, range(48)))
    statuses = [r.status_code for r in answers]
    assert set(statuses) == {200, 503}, statuses
    busy = [r for r in answers if r.status_code == 503]
    assert all(r.headers["retry-after"] == "1" and "busy" in r.json()["detail"] for r in busy)


def chromium_path():
    """Debian's Chromium, installed with apt where possible; None where it cannot be."""
    if shutil.which("chromium"):
        return shutil.which("chromium")
    if shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=600)
        if not shutil.which("chromium"):
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=300)
            subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=600)
    return shutil.which("chromium")


def test_page_in_a_real_browser(server):
    """The page in Chromium: drawing, errors inline, the busy state, the model picker, the seed link,
    the style row and a 360 px wide screen, each with a screenshot in test-artifacts/."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Debian's chromium could not be installed with apt-get on this machine")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        console = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.goto(server + "/")
        # the picker lists every shipped model with its family, the default chosen
        page.wait_for_function("document.querySelectorAll('#model option').length === 6", timeout=WAIT_MS)
        assert page.input_value("#model") == "cvae-mixed"
        assert "cvae-mixed (mixed)" in page.text_content("#model")
        assert page.locator("label[for=caption]").is_visible()  # a visible label, not only aria-label
        page.fill("#caption", "one plus two plus one plus one")
        # busy: the request is held until the screenshot is taken
        held = []
        page.route("**/api/generate", lambda route: held.append(route))
        page.click("#generate")
        page.wait_for_function("document.getElementById('grid').getAttribute('aria-busy') === 'true'")
        assert page.is_disabled("#generate") and "busy" in page.get_attribute("#status", "class")
        while not held:
            page.wait_for_timeout(20)
        page.screenshot(path=str(ARTIFACTS / "demo-busy.png"), full_page=True)
        held[0].continue_()
        page.unroute("**/api/generate")
        page.locator("#status", has_text="means 5").wait_for(timeout=WAIT_MS)
        assert page.get_attribute("#grid", "aria-busy") == "false" and page.is_enabled("#generate")
        assert page.locator("#grid img").count() == 8
        assert page.eval_on_selector_all(
            "#grid img", "imgs => imgs.every(i => i.complete && i.naturalWidth === 28)"
        )
        page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
        # the seed is shown, and its link draws the same grid again
        seed = page.text_content("#seed")
        link = page.get_attribute("#permalink", "href")
        assert f"seed={seed}" in link and "model=cvae-mixed" in link and "n=8" in link
        first = page.eval_on_selector_all("#grid img", "imgs => imgs.map(i => i.src)")
        again = browser.new_page()
        again.goto(server + link)
        again.locator("#status", has_text="means 5").wait_for(timeout=WAIT_MS)
        assert again.input_value("#caption") == "one plus two plus one plus one"
        assert again.eval_on_selector_all("#grid img", "imgs => imgs.map(i => i.src)") == first
        again.screenshot(path=str(ARTIFACTS / "demo-seed-link.png"), full_page=True)
        again.close()
        # errors inline
        page.fill("#caption", "one plus tow")
        page.click("#generate")
        page.wait_for_selector("#status.error", timeout=WAIT_MS)
        assert "did you mean 'two'" in page.text_content("#status")
        assert page.locator("#grid img").count() == 0
        assert page.locator("#anyway").count() == 0  # unknown words cannot be drawn at all
        # a caption of known words with no value: refused inline, with the opt-in offered
        page.fill("#caption", "three plus")
        page.click("#generate")
        page.wait_for_selector("#status.error #anyway", timeout=WAIT_MS)
        assert "ends with the operator 'plus'" in page.text_content("#status")
        page.screenshot(path=str(ARTIFACTS / "demo-refused.png"), full_page=True)
        page.click("#anyway")
        page.wait_for_selector("#status.warning", timeout=WAIT_MS)
        assert "outside the model's grammar" in page.text_content("#status")
        assert page.locator("#grid img").count() == 8
        page.click("text=min nine five seven")
        page.locator("#status", has_text="means 5").wait_for(timeout=WAIT_MS)
        # another model from the picker: the paper's label model refuses what it was not trained on
        page.select_option("#model", "paper-label")
        page.click("text=min nine five seven")
        page.wait_for_selector("#status.error #anyway", timeout=WAIT_MS)
        page.fill("#caption", "seven")
        page.click("#generate")
        page.locator("#status", has_text="means 7").wait_for(timeout=WAIT_MS)
        assert "model=paper-label" in page.get_attribute("#permalink", "href")
        page.screenshot(path=str(ARTIFACTS / "demo-picker.png"), full_page=True)
        # same handwriting, every digit
        page.select_option("#model", "cvae-mixed")
        page.click("#style-button")
        page.locator("#style-status", has_text="one handwriting").wait_for(timeout=WAIT_MS)
        assert page.locator("#style-grid img").count() == 10
        assert page.locator("#style-grid figcaption").all_text_contents() == [str(d) for d in range(10)]
        page.screenshot(path=str(ARTIFACTS / "demo-style.png"), full_page=True)
        # keyboard: Enter in the caption box submits
        page.fill("#caption", "two")
        page.press("#caption", "Enter")
        page.locator("#status", has_text="means 2").wait_for(timeout=WAIT_MS)
        assert not [m for m in console if "Content Security Policy" in m], console  # the page obeys its CSP
        # a phone: 360 px wide, nothing wider than the screen, the grid wrapped onto rows
        narrow = browser.new_page(viewport={"width": 360, "height": 740})
        narrow.goto(server + link)
        narrow.locator("#status", has_text="means 5").wait_for(timeout=WAIT_MS)
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 360
        tops = narrow.eval_on_selector_all(
            "#grid img", "imgs => imgs.map(i => i.getBoundingClientRect().top)"
        )
        rights = narrow.eval_on_selector_all(
            "#grid img", "imgs => imgs.map(i => i.getBoundingClientRect().right)"
        )
        assert len(set(tops)) >= 2 and max(rights) <= 360
        narrow.screenshot(path=str(ARTIFACTS / "demo-360px.png"), full_page=True)
        browser.close()


def test_serve_refuses_bad_arguments_in_one_line():
    code, _, err = run_ved(
        "serve",
        "--model",
        "nope",
        "--port",
        str(free_port()),
    )
    assert code == 2 and "unknown model 'nope'" in err and "Traceback" not in err
    code, _, err = run_ved(
        "serve",
        "--workers",
        "0",
    )
    assert code == 2 and "--workers: 0 is out of range; allowed: 1 to 64" in err and err.count("\n") == 1
    code, _, err = run_ved("serve", "--port", "99999")
    assert code == 2 and "--port: 99999 is out of range; allowed: 1 to 65535" in err and err.count("\n") == 1
    code, _, err = run_ved("serve", "--precision", "fp16")
    assert "invalid choice: 'fp16' (choose from 'fp32', 'bf16', 'auto')" in err
    assert code == 2 and err.count("\n") == 1


# ---------------------------------------------------------------- hardening


@pytest.mark.parametrize(
    "body,status,fragment",
    [
        ('{"caption": "\\ud800"}', 422, "caption: Input should be a valid string"),
        ('{"caption": "five", "n": NaN}', 422, "n: "),
        ('{"caption": "five", "n": Infinity}', 422, "n: "),
        ('{"caption": "five", "seed": NaN}', 422, "seed: "),
        ('{"caption": "five", "model": "\\ud800"}', 422, "model: "),
        ('{"caption": "five", "n": "3"}', 422, "n: Input should be a valid integer"),
        ('{"caption": "five", "n": true}', 422, "n: Input should be a valid integer"),
        ('{"caption": "five", "strict": "no"}', 422, "strict: "),
        ('{"caption": "five", "surprise": 1}', 422, "surprise: Extra inputs are not permitted"),
        ('{"n": 3}', 422, "caption: Field required"),
        ("{", 422, "JSON"),
        ("[]", 422, ""),
        ('{"caption": "' + "one " * 80 + '"}', 422, "caption: String should have at most 256 characters"),
        ('{"caption": "two plus"}', 400, "ends with the operator 'plus'"),
    ],
)
def test_client_mistakes_get_a_4xx_and_one_short_line(server, body, status, fragment):
    r = httpx.post(
        server + "/api/generate", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert fragment in detail and "\n" not in detail and len(r.content) < 500


def test_wrong_content_type_is_a_4xx(server):
    r = httpx.post(
        server + "/api/generate", content=b'{"caption": "five"}', headers={"Content-Type": "text/plain"}
    )
    assert 400 <= r.status_code < 500 and "\n" not in r.json()["detail"]


def test_the_caption_contract_over_http(server):
    r = httpx.post(server + "/api/generate", json={"caption": "two plus"})
    assert r.status_code == 400 and r.json()["strict_refusal"] is True
    assert 'send "strict": false to draw it anyway' in r.json()["detail"]
    r = httpx.post(server + "/api/generate", json={"caption": "two plus", "n": 2, "strict": False})
    body = r.json()
    assert (
        r.status_code == 200
        and body["digit"] is None
        and body["strict"] is False
        and len(body["images"]) == 2
    )
    assert "outside the model's grammar" in body["warning"]
    r = httpx.post(server + "/api/generate", json={"caption": "three plus two", "model": "paper-label"})
    assert r.status_code == 400 and "trained on label captions only" in r.json()["detail"]
    r = httpx.post(server + "/api/generate", json={"caption": "thre plus", "strict": False})
    assert r.status_code == 400 and "did you mean 'three'" in r.json()["detail"]  # unknown words: never
    r = httpx.post(server + "/api/generate?format=png", json={"caption": "nine plus nine", "strict": False})
    assert r.status_code == 200 and "evaluates to 18" in r.headers["x-ved-warning"]


def test_bodies_over_64_kib_are_413_before_being_read(server):
    big = json.dumps({"caption": "five", "extra": "x" * 10_000_000}).encode()
    r = httpx.post(server + "/api/generate", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "64 KiB" in r.json()["detail"] and len(r.content) < 200

    def chunks():  # no Content-Length: the limit holds for a streamed body too
        for _ in range(100):
            yield b"x" * 10_000

    r = httpx.post(server + "/api/generate", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    r = httpx.post(server + "/api/generate", json={"caption": "x" * 10_000_000})
    assert r.status_code == 413 and len(r.content) < 200


def test_only_the_bound_host_names_are_answered(server):
    port = server.rsplit(":", 1)[1]
    for host in ("evil.example", "127.0.0.1.nip.io", ""):
        r = httpx.get(server + "/api/models", headers={"Host": host})
        assert r.status_code == 400 and "unexpected Host header" in r.json()["detail"], host
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert httpx.get(server + "/api/models", headers={"Host": host}).status_code == 200, host


def test_security_headers_and_no_external_docs(server):
    for path in ("/", "/api/models", "/app.js"):
        r = httpx.get(server + path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "http" not in csp
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert httpx.get(server + "/docs").status_code == 404  # Swagger UI would load from a CDN
    assert httpx.get(server + "/openapi.json").status_code == 200
    assert 'src="/app.js"' in httpx.get(server + "/").text and "<script>" not in httpx.get(server + "/").text


def test_serving_loads_no_matplotlib():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, ved.serve; print('matplotlib' in sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "False", done.stderr


def test_same_style_api_draws_rows_and_refuses_bad_input(server):
    r = httpx.post(server + "/api/same-style", json={"n": 2, "seed": 3})
    assert r.status_code == 200 and r.json()["seed"] == 3
    assert len(r.json()["images"]) == 2 and all(len(row) == 10 for row in r.json()["images"])
    for body in ({"n": 9}, {"n": "2"}, {"extra": 1}, {"model": "../x"}):
        bad = httpx.post(server + "/api/same-style", json=body)
        assert 400 <= bad.status_code < 500 and "\n" not in bad.json()["detail"], body


def test_one_seed_draws_the_same_pixels_from_the_cli_python_and_http(server, tmp_path):
    """One default everywhere (a fresh seed, told back) and one precision (fp32): a seed taken from
    any entry point draws the same picture in every other."""
    import ved

    r = httpx.post(server + "/api/generate", json={"caption": "three plus two", "n": 4})
    seed = r.json()["seed"]
    over_http = np.stack([decode(im) for im in r.json()["images"]])
    in_python = ved.load()(
        prompt="three plus two", num_images_per_prompt=4, generator=seed, output_type="mnist"
    )
    code, out, err = run_ved(
        "sample", "three plus two", "-n", "4", "--seed", str(seed), "--out", str(tmp_path / "x.npy")
    )
    assert code == 0 and f"(seed {seed})" in out, err
    assert np.array_equal(over_http, in_python.images[0]) and np.array_equal(
        np.load(tmp_path / "x.npy")[0], over_http
    )
    code, out, _ = run_ved(
        "sample", "five", "-n", "1", "--out", str(tmp_path / "y.npy")
    )  # no seed: a fresh one
    fresh = int(out.rsplit("(seed ", 1)[1].rstrip(")\n"))
    assert np.array_equal(np.load(tmp_path / "y.npy"), ved.load().generate(["five"], 1, seed=fresh))


def launch_chromium(sync_api, p):
    executable = chromium_path()
    if executable is None:
        pytest.skip("Debian's chromium could not be installed with apt-get on this machine")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    return p.chromium.launch(executable_path=executable, args=args)


def test_the_page_is_a_demo_worth_sharing(server):
    """The page as a good Space demo is, in Chromium at 1440 and 360 px: a first grid on load, digits
    large enough to read, a seed box with random, sliders at the model's defaults, a download, a
    copied link and a share link that keeps every choice (strict and settings too), an unknown model
    named and replaced by the default, alt texts that say what each image is, the model card and the
    paper's citation. Screenshots go to test-artifacts/."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(sync_api, p)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
        page = context.new_page()
        console = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.goto(server + "/")
        page.wait_for_selector("#grid img", timeout=WAIT_MS)  # a first grid, with no click
        assert page.text_content("#status") == '"three plus two" means 5'
        widths = page.eval_on_selector_all(
            "#grid img", "imgs => imgs.map(i => i.getBoundingClientRect().width)"
        )
        assert len(widths) == 8 and min(widths) >= 84, widths
        alts = page.eval_on_selector_all("#grid img", "imgs => imgs.map(i => i.alt)")
        assert alts[2] == '"three plus two" (5), sample 3 of 8'
        assert "primary" in page.get_attribute("#generate", "class")
        assert page.get_attribute("#seed", "placeholder") == "random" and page.input_value("#seed") == ""
        # sliders: the model's settings at their defaults
        assert (
            page.input_value("#setting-temperature") == "1" and page.input_value("#setting-accept") == "0.9"
        )
        assert "temperature (default 1)" in page.text_content("#sliders")
        page.screenshot(path=str(ARTIFACTS / "demo-1440px.png"), full_page=True)
        # a seed, a setting and a refused caption drawn anyway: the share link keeps all of it
        page.fill("#seed", "1234")
        page.eval_on_selector(
            "#setting-temperature", "e => { e.value = '0.5'; e.dispatchEvent(new Event('input')); }"
        )
        page.fill("#caption", "three plus")
        page.click("#generate")
        page.wait_for_selector("#status.error #anyway", timeout=WAIT_MS)
        page.click("#anyway")
        page.wait_for_selector("#status.warning", timeout=WAIT_MS)
        link = page.get_attribute("#permalink", "href")
        for part in ("seed=1234", "temperature=0.5", "strict=0", "model=cvae-mixed", "precision=fp32"):
            assert part in link, link
        assert "drawn outside the grammar" in page.get_attribute("#grid img", "alt")
        drawn = page.eval_on_selector_all("#grid img", "imgs => imgs.map(i => i.src)")
        page.click("#copy")
        page.locator("#copy", has_text="Copied").wait_for(timeout=WAIT_MS)
        assert page.evaluate("navigator.clipboard.readText()") == server + link
        with page.expect_download() as download:
            page.click("#download")
        png = Path(download.value.path()).read_bytes()
        assert (
            png[:8] == b"\x89PNG\r\n\x1a\n" and np.array(Image.open(io.BytesIO(png))).shape[1] == 8 * 30 + 2
        )
        shared = context.new_page()
        shared.goto(server + link)
        shared.wait_for_selector("#status.warning", timeout=WAIT_MS)  # drawn anyway again, no refusal
        assert shared.eval_on_selector_all("#grid img", "imgs => imgs.map(i => i.src)") == drawn
        assert shared.input_value("#setting-temperature") == "0.5" and shared.input_value("#seed") == "1234"
        shared.close()
        # random: the seed box emptied, a fresh seed each draw
        page.click("#random")
        assert page.input_value("#seed") == ""
        # an unknown model in a link: said so, and the default draws
        page.goto(server + "/?caption=five&model=nope")
        page.wait_for_selector("#grid img", timeout=WAIT_MS)
        assert 'No model "nope" here; drawing with cvae-mixed, the default.' in page.text_content("#notice")
        assert page.input_value("#model") == "cvae-mixed" and page.is_visible("#notice")
        # the model card and the paper's citation
        assert page.get_attribute("#card", "href") == "/models/cvae-mixed/card"
        card = httpx.get(server + "/models/cvae-mixed/card")
        assert card.status_code == 200 and card.text.startswith("---\nlibrary_name: ved")
        assert "Angelard-Gontier" in page.text_content("footer")
        # no CSP violation and no missing file (the refused caption's 400 is the page's own doing)
        assert not [m for m in console if "Content Security Policy" in m or "404" in m], console
        narrow = browser.new_page(viewport={"width": 360, "height": 740})
        narrow.goto(server + "/")
        narrow.wait_for_selector("#grid img", timeout=WAIT_MS)
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 360
        widths = narrow.eval_on_selector_all(
            "#grid img", "imgs => imgs.map(i => i.getBoundingClientRect().width)"
        )
        assert (
            min(widths) >= 64
            and max(
                narrow.eval_on_selector_all(
                    "#grid img", "imgs => imgs.map(i => i.getBoundingClientRect().right)"
                )
            )
            <= 360
        )
        narrow.screenshot(path=str(ARTIFACTS / "demo-360px-first-grid.png"), full_page=True)
        browser.close()


def test_the_page_may_be_framed_only_where_asked():
    """Off by default (frame-ancestors 'none' and X-Frame-Options DENY); `--frame-ancestors` lets a
    Hugging Face Space show it, and a malformed origin is one line."""
    with serving("--workers", "1", "--frame-ancestors", "https://huggingface.co",
                 "--frame-ancestors", "https://*.hf.space") as url:  # fmt: skip
        headers = httpx.get(url + "/").headers
    assert "frame-ancestors https://huggingface.co https://*.hf.space" in headers["content-security-policy"]
    assert "x-frame-options" not in headers
    code, _, err = run_ved("serve", "--frame-ancestors", "https://x.org; script-src *")
    assert code == 2 and "is not an origin" in err
