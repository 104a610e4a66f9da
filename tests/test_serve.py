"""The web demo and API against a real uvicorn server on loopback, and a real browser."""
import base64
import io
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import run_ved

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
WAIT_MS = 120_000  # a hang guard for a busy machine, not a speed target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ved", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/api/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("ved serve did not start: " + proc.stdout.read())
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def decode(png_b64):
    return np.array(Image.open(io.BytesIO(base64.b64decode(png_b64))))


def test_generate_returns_digit_and_images(server):
    r = httpx.post(server + "/api/generate", json={"caption": "three plus two", "seed": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["digit"] == 5 and body["n"] == 16 and len(body["images"]) == 16
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


@pytest.mark.parametrize("body", [{"caption": "one " * 65}, {"caption": "five", "n": 0},
                                  {"caption": "five", "n": 65}, {"n": 3}])
def test_out_of_range_requests_are_422(server, body):
    assert httpx.post(server + "/api/generate", json=body).status_code == 422


def test_models_are_looked_up_by_name_only(server, tmp_path):
    for name in ("../weights/judge", "/etc", str(tmp_path)):
        r = httpx.post(server + "/api/generate", json={"caption": "five", "model": name})
        assert r.status_code == 400 and "unknown model" in r.json()["detail"]
    r = httpx.post(server + "/api/generate", json={"caption": "five", "model": "paper-label", "n": 2})
    assert r.status_code == 200 and r.json()["model"] == "paper-label"


def test_concurrent_requests_are_safe(server):
    def call(seed):
        return httpx.post(server + "/api/generate", json={"caption": "nine minus five minus four", "seed": seed,
                                                          "n": 8}, timeout=30).json()["images"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, [1, 2] * 16))
    assert all(r == results[0] for r in results[0::2]) and all(r == results[1] for r in results[1::2])
    assert results[0] != results[1]


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
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Debian's chromium could not be installed with apt-get on this machine")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        console = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.goto(server + "/")
        page.fill("#caption", "one plus two plus one plus one")
        page.click("#generate")
        page.locator("#grid img").nth(15).wait_for(timeout=WAIT_MS)
        page.locator("#status", has_text="means 5").wait_for(timeout=WAIT_MS)
        assert page.locator("#grid img").count() == 16
        assert page.eval_on_selector_all("#grid img", "imgs => imgs.every(i => i.complete && i.naturalWidth === 28)")
        page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
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
        assert page.locator("#grid img").count() == 16
        page.click("text=min nine five seven")
        page.locator("#status", has_text="means 5").wait_for(timeout=WAIT_MS)
        assert not [m for m in console if "Content Security Policy" in m], console  # the page obeys its CSP
        browser.close()


def test_serve_refuses_bad_arguments_in_one_line():
    code, _, err = run_ved("serve", "--model", "nope", "--port", str(free_port()), )
    assert code == 2 and "unknown model 'nope'" in err and "Traceback" not in err
    code, _, err = run_ved("serve", "--workers", "0", )
    assert code == 2 and "--workers: 0 is out of range; allowed: 1 to 64" in err and err.count("\n") == 1
    code, _, err = run_ved("serve", "--port", "99999")
    assert code == 2 and "--port: 99999 is out of range; allowed: 1 to 65535" in err and err.count("\n") == 1
