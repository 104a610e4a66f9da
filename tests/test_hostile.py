"""Hostile files, huge inputs and writes where they should not go: every case an attacker's or an
unlucky user's review found giving a traceback, a blank image or a write elsewhere. Each hostile
folder or file is built here, never committed; each case must end in one line (CLI, Python) or a
4xx (HTTP), with nothing written."""

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from conftest import assert_one_line, serving, ved_main
from safetensors.torch import load_file, save_file

import ved
from ved import checkpoint
from ved.errors import VedError
from ved.pipeline import WEIGHTS_DIR

FAST = str(Path(__file__).parent / "configs" / "tiny-fast.toml")


def copy_of(tmp_path: Path, name: str = "paper-label") -> Path:
    folder = tmp_path / name
    shutil.copytree(WEIGHTS_DIR / name, folder)
    return folder


def edit_config(folder: Path, change) -> Path:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def refused_everywhere(folder: Path, fragment: str, tmp_path: Path) -> None:
    """ved.load, `ved sample --model` and `ved models --model` refuse the folder in one line."""
    with pytest.raises(VedError) as e:
        ved.load(str(folder))
    assert fragment in str(e.value) and "\n" not in str(e.value), str(e.value)
    out = tmp_path / "x.npy"
    code, _, err = ved_main("sample", "--model", str(folder), "--out", str(out), "five")
    assert_one_line(code, err, fragment)
    assert not out.exists()
    code, _, err = ved_main("models", "--model", str(folder))
    assert_one_line(code, err, fragment)


# ---------------------------------------------------------------- folders that load but cannot draw


def test_float64_weights_that_overflow_float32_are_refused(tmp_path):
    folder = copy_of(tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    save_file({k: v.double() * 1e300 for k, v in tensors.items()}, str(folder / "model.safetensors"))
    refused_everywhere(folder, "is float64; this model holds it as float32", tmp_path)


@pytest.mark.parametrize(
    "damage,fragment",
    [
        (lambda name, t: t * 1e30 if "decoder" in name else t, "non-finite pixels"),  # finite, overflows
        (lambda name, t: torch.zeros_like(t) if "decoder" in name else t, "blank images"),
    ],
)
def test_weights_that_draw_nothing_fail_the_canary_draw_at_load(tmp_path, damage, fragment):
    folder = copy_of(tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    assert any("decoder" in k for k in tensors)
    save_file({k: damage(k, v) for k, v in tensors.items()}, str(folder / "model.safetensors"))
    refused_everywhere(folder, fragment, tmp_path)


@pytest.mark.parametrize("value", [1e308, -1.0, 6.0, float("inf"), "1", True])
def test_sampling_settings_have_bounds_in_a_call_and_in_a_folder(tmp_path, value):
    pipe = ved.load("paper-label")
    with pytest.raises(ved.ArgumentError, match=r"^temperature = .*; allowed: a number from 0 to 5$"):
        pipe(["five"], n=1, generator=0, temperature=value)
    if isinstance(value, float) and not np.isfinite(value):
        return  # JSON has no inf
    folder = edit_config(copy_of(tmp_path), lambda c: c["sample"].update(temperature=value))
    refused_everywhere(folder, "[sample] temperature", tmp_path)


def test_settings_are_bounded_on_the_command_line(tmp_path):
    out = tmp_path / "x.png"
    code, _, err = ved_main("sample", "nine", "--temperature", "1e308", "--out", str(out))
    assert_one_line(code, err, "temperature = 1e+308; allowed: a number from 0 to 5")
    code, _, err = ved_main("sample", "nine", "--tempo", "0.5", "--out", str(out))
    assert_one_line(code, err, "unknown sampling setting 'tempo' for ConditionalVAE; allowed: temperature")
    code, _, err = ved_main("sample", "--same-style", "--sharpness", "x", "--out", str(out))
    assert_one_line(code, err, "--sharpness 'x' is not a number")
    assert not out.exists()
    code, _, err = ved_main("sample", "nine", "--temperature", "0.5", "--accept=0.95", "--out", str(out))
    assert code == 0 and out.exists(), err


def test_the_cvae_settings_are_bounded_too():
    pipe = ved.load()
    for key, value, fragment in [
        ("sharpness", 0.0, "sharpness = 0.0; allowed: a number from 0.1 to 10"),
        ("accept", 1.0, "accept = 1.0; allowed: a number from 0 to 0.999"),
        ("temperature", 1e308, "allowed: a number from 0 to 5"),
    ]:
        with pytest.raises(ved.ArgumentError, match=fragment):
            pipe(["five"], n=1, generator=0, **{key: value})


# ---------------------------------------------------------------- files that are tracebacks to read


def test_deeply_nested_config_json_is_one_line(tmp_path):
    folder = copy_of(tmp_path)
    (folder / "config.json").write_text("[" * 200_000)
    refused_everywhere(folder, "nested too deep", tmp_path)
    code, _, err = ved_main("serve", "--model", str(folder), "--port", "1")  # refused before it binds
    assert_one_line(code, err, "nested too deep")


def test_deeply_nested_provenance_is_one_line(tmp_path):
    deep = {}
    for _ in range(900):
        deep = {"x": deep}
    folder = edit_config(copy_of(tmp_path), lambda c: c.update(provenance=deep))
    (folder / "config.json").write_text(json.dumps(json.loads((folder / "config.json").read_text())))
    refused_everywhere(folder, "nested too deep", tmp_path)


@pytest.mark.parametrize(
    "metrics,fragment",
    [
        ([1], "[provenance] metrics must be a table"),
        ({"families": [1, 2]}, "[provenance] metrics families = [1, 2]"),
        ({"test_accuracy": "high"}, "test_accuracy = 'high'; allowed: a number from 0 to 1"),
        ({"test_fjd": float("nan")}, "test_fjd = nan"),
        ({"secret": 1}, "unknown key 'secret' in [provenance] metrics"),
    ],
)
def test_provenance_is_checked_field_by_field(tmp_path, metrics, fragment):
    folder = edit_config(copy_of(tmp_path), lambda c: c["provenance"].update(metrics=metrics))
    refused_everywhere(folder, fragment, tmp_path)
    assert "config.json" in ved_main("models", "--model", str(folder))[2]  # it names the file


def test_text_from_a_folder_reaches_the_terminal_escaped_and_short(tmp_path):
    folder = edit_config(copy_of(tmp_path), lambda c: c["provenance"].update(ved="\x1b[2J\x07x"))
    code, out, err = ved_main("models", "--model", str(folder))
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J\\x07x" in out
    huge = edit_config(
        copy_of(tmp_path, "paper-logic"), lambda c: c["provenance"].update(commit="a" * 900_000)
    )
    refused_everywhere(huge, "[provenance] commit", tmp_path)


def test_captions_with_control_characters_are_echoed_escaped(tmp_path):
    code, _, err = ved_main("sample", "--out", str(tmp_path / "x.npy"), "fi\x1b[2Jve\x07")
    assert_one_line(code, err, "\\x1b[2J")


def test_a_deeply_nested_toml_config_is_one_line(tmp_path):
    config = tmp_path / "deep.toml"
    config.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    code, _, err = ved_main("train", "--config", str(config), "--out", str(tmp_path / "run"))
    assert_one_line(code, err, "nested too deep")
    assert not (tmp_path / "run").exists()


def test_devices_and_pipes_are_read_only_up_to_the_cap(tmp_path):
    code, _, err = ved_main("train", "--config", "/dev/zero", "--out", str(tmp_path / "run"))
    assert_one_line(code, err, "config '/dev/zero' is over 1 MB")
    code, _, err = ved_main("sample", "--captions-file", "/dev/zero", "--out", str(tmp_path / "x.npy"))
    assert_one_line(code, err, "--captions-file '/dev/zero' is over 10 MB")
    # a pipe: `ved sample --captions-file <(yes five)` reads at most the cap, then refuses
    done = subprocess.run(
        ["bash", "-c", f"ved sample --captions-file <(yes five) --out {tmp_path / 'y.npy'}"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert_one_line(done.returncode, done.stderr, "is over 10 MB")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- damaged training state on resume


def damaged_state(run: Path, change) -> None:
    """The JSON inside last/train_state.safetensors, changed; its tensors kept."""
    path = run / "last" / checkpoint.TRAIN_STATE
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["state"] = change(meta["state"])
    save_file(tensors, str(path), meta)


def _loop(field, value):
    def change(text):
        skeleton = json.loads(text)
        skeleton["dict"]["state"]["dict"][field] = value
        return json.dumps(skeleton)

    return change


def _nest(text):
    deep = "1"
    for _ in range(5000):
        deep = '{"list": [' + deep + "]}"
    return deep


@pytest.mark.parametrize(
    "change,fragment",
    [
        (_loop("epoch", "3"), "epoch = '3'; allowed: count"),
        (_loop("epoch", -3), "epoch = -3; allowed: count"),
        (_loop("seconds", "x"), "seconds = 'x'; allowed: seconds"),
        (_loop("best_valid", None), "best_valid = None; allowed: loss"),
        (_loop("sneaky", 1), "an unknown key 'sneaky'"),
        (lambda text: json.dumps({"dict": []}), "malformed training state"),
        (_nest, "nested too deep"),
        (lambda text: "{", "is not valid JSON"),
    ],
)
def test_a_damaged_training_state_is_refused_in_one_line(tmp_path, one_epoch_run, change, fragment):
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    damaged_state(run, change)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, _, err = ved_main(
        "train", "--config", FAST, "--out", str(run), "--epochs", "2", "--resume", "--quiet"
    )
    assert_one_line(code, err, fragment)
    assert "train_state.safetensors" in err and "afresh" in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing written


@pytest.mark.parametrize(
    "text,fragment",
    [
        ('{"epoch": "1"}\n', "row 1 is not epoch 1's table"),
        ("[1]\n", "row 1 is not epoch 1's table"),
        ("", "0 epochs logged, the checkpoint has 1"),
        ("[" * 100_000 + "\n", "nested too deep"),
    ],
)
def test_a_damaged_metrics_log_is_refused_in_one_line(tmp_path, one_epoch_run, text, fragment):
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    (run / "metrics.jsonl").write_text(text)
    code, _, err = ved_main(
        "train", "--config", FAST, "--out", str(run), "--epochs", "2", "--resume", "--quiet"
    )
    assert_one_line(code, err, fragment)
    assert "metrics.jsonl" in err


# ---------------------------------------------------------------- size and memory


def test_too_many_images_a_call_is_refused_before_any_work(tmp_path):
    captions = tmp_path / "c.txt"
    captions.write_text("five\n" * 100_000)
    out = tmp_path / "x.npy"
    code, _, err = ved_main("sample", "--captions-file", str(captions), "-n", "10000", "--out", str(out))
    assert_one_line(code, err, "is 1,000,000,000 images; at most 1,000,000 a call")
    code, _, err = ved_main("sample", "-n", "200", "--out", str(tmp_path / "x.png"), "five")
    assert_one_line(code, err, "a .png grid holds at most 500 rows of 100 images")
    assert not out.exists() and not (tmp_path / "x.png").exists()
    with pytest.raises(ved.ArgumentError, match="at most 1,000,000 a call"):
        ved.load("paper-label")(["five"] * 1000, n=10_000)


def test_an_npy_header_is_checked_before_anything_is_allocated(tmp_path):
    (tmp_path / "c.txt").write_text("five\n")
    lying = tmp_path / "lying.npy"
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 2, 28, 28), np.uint8))
    header["shape"] = (1, 800_000_000, 28, 28)  # 584 GiB
    with open(lying, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 100)
    assert lying.stat().st_size < 300
    code, _, err = ved_main("evaluate", "--samples", str(lying), "--captions-file", str(tmp_path / "c.txt"))
    assert_one_line(code, err, "holds 800,000,000 images; at most 1,000,000")
    header["shape"] = (1, 3, 28, 28)
    with open(lying, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 100)
    code, _, err = ved_main("evaluate", "--samples", str(lying), "--captions-file", str(tmp_path / "c.txt"))
    assert_one_line(code, err, "claims 3 images but holds 100 bytes")


def test_many_images_of_one_caption_are_scored_on_bounded_samples(tmp_path, mnist_data):
    """The pairwise measures take at most 1,000 images a caption and 2,000 a digit: 2,500 images of
    one caption have the diversity of their first 1,000 (memory measured in benchmarks/memory.py)."""
    from ved import bench

    images, labels = mnist_data.split("valid")
    fives = np.resize(images[labels == 5], (2500, 28, 28))[None]
    np.save(tmp_path / "fives.npy", fives)
    (tmp_path / "c.txt").write_text("five\n")
    code, out, err = ved_main(
        "evaluate", "--samples", str(tmp_path / "fives.npy"), "--captions-file", str(tmp_path / "c.txt"),
        "--split", "valid", "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["images"] == 2500 and result["accuracy"] > 0.98
    first = bench.score(fives[:, :1000], ["five"], split="valid", data=mnist_data)
    assert result["diversity"] == pytest.approx(first["diversity"], rel=1e-9)
    assert 0.8 < result["diversity"] < 1.1  # real digits (a few repeated): about as varied as real ones


# ---------------------------------------------------------------- writes only where asked


@pytest.mark.parametrize("name", ["/tmp", "../../x", "a/b", ".hidden", "", "x" * 101])
def test_a_config_name_is_a_plain_name_never_a_path(tmp_path, name):
    config = tmp_path / "named.toml"
    config.write_text(f"name = {json.dumps(name)}\n" + Path(FAST).read_text())
    code, _, err = ved_main("train", "--config", str(config), "--quiet")
    assert_one_line(code, err, "allowed: a plain name")


def test_a_run_folder_that_exists_is_refused_without_resume_or_overwrite(tmp_path, one_epoch_run):
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    (run / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, _, err = ved_main("train", "--config", FAST, "--out", str(run), "--quiet")
    assert_one_line(code, err, "exists and is not empty; --resume continues the run in it, --overwrite")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    code, _, err = ved_main("train", "--config", FAST, "--out", str(run), "--resume", "--overwrite")
    assert_one_line(code, err, "give one")
    code, _, err = ved_main(
        "train", "--config", FAST, "--out", str(run), "--overwrite", "--epochs", "1", "--quiet"
    )
    assert code == 0, err
    assert (run / "notes.txt").read_text() == "mine"  # only ved's run files were replaced
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_full_disk_names_the_file_and_leaves_no_partial_checkpoint(tmp_path, one_epoch_run):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("this machine does not let the test mount a small file system")
    try:
        run = disk / "run"
        code, _, err = ved_main("train", "--config", FAST, "--out", str(run), "--epochs", "1", "--quiet")
        assert_one_line(code, err, "No space left on device", expected_code=1)
        assert str(run) in err
        assert not [p for p in run.glob(".*") if p.name.startswith((".last.new-", ".model", ".config"))]
    finally:
        subprocess.run(["umount", str(disk)])


# ---------------------------------------------------------------- devices


def test_devices_are_read_as_torch_reads_them():
    assert ved.load("paper-label", device=torch.device("cpu")).device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ved.ModelError, match="no CUDA device"):
            ved.load("paper-label", device=0)
    for bad in ("gpu", "cpu ", 1.5, "cuda:x"):
        with pytest.raises(ved.ModelError, match="device"):
            ved.load("paper-label", device=bad)


# ---------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def server_with_a_short_queue():
    with serving("--workers", "1", "--queue", "2") as url:
        yield url


def raw_request(url: str, request: bytes) -> bytes:
    import socket

    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:
        s.sendall(request)
        s.settimeout(60)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "body,fragment",
    [
        (b'{"caption": ' + b"[" * 100 + b"]" * 100 + b"}", b"nested too deep"),
        (b'{"caption": "five", "n": ' + b"1" * 5000 + b"}", b"not valid JSON"),
        (b'{"caption": "fi\xffve"}', b"not valid JSON"),
    ],
)
def test_bodies_json_cannot_parse_are_422(server_with_a_short_queue, body, fragment):
    head = b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    answer = raw_request(
        server_with_a_short_queue,
        head + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
    )
    assert answer.startswith(b"HTTP/1.1 422") and fragment in answer, answer[-300:]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"FOO / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n",
        b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
    ],
)
def test_uvicorns_own_400s_carry_the_security_headers(server_with_a_short_queue, request_bytes):
    answer = raw_request(server_with_a_short_queue, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    for header in (b"content-security-policy:", b"x-content-type-options: nosniff", b"x-frame-options: DENY"):
        assert header in answer.lower() or header in answer, answer[:600]


@pytest.mark.parametrize(
    "hosts",
    [
        [b"127.0.0.1:80@evil.com"],
        [b"[localhost]:1"],
        [b"evil.com", b"localhost"],
        [b"localhost", b"localhost"],
        [b"localhost:80:80"],
        [b"[::1"],
    ],
)
def test_the_host_check_is_strict(server_with_a_short_queue, hosts):
    head = b"".join(b"Host: " + h + b"\r\n" for h in hosts)
    answer = raw_request(
        server_with_a_short_queue, b"GET /api/models HTTP/1.1\r\n" + head + b"Connection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400") and b"unexpected Host header" in answer, answer[:300]


@pytest.mark.parametrize(
    "settings,fragment",
    [
        ({"temperature": 1e308}, "settings: temperature = 1e+308; allowed: a number from 0 to 5"),
        ({"sharpness": 0}, "settings: sharpness = 0; allowed: a number from 0.1 to 10"),
        ({"tempo": 1}, "unknown sampling setting 'tempo'"),
        ({"temperature": "1"}, "settings.temperature"),
    ],
)
def test_settings_over_http_are_bounded(server_with_a_short_queue, settings, fragment):
    for path, body in (("/api/generate", {"caption": "five"}), ("/api/same-style", {})):
        r = httpx.post(server_with_a_short_queue + path, json={**body, "settings": settings})
        assert r.status_code == 422 and fragment in r.json()["detail"], r.text
    r = httpx.post(
        server_with_a_short_queue + "/api/generate", json={"caption": "five", "settings": {"temperature": 0}}
    )
    assert r.status_code == 200


def test_head_and_ipv6_loopback_are_answered(server_with_a_short_queue):
    answer = raw_request(
        server_with_a_short_queue, b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200")
    answer = raw_request(
        server_with_a_short_queue,
        b"GET /api/models HTTP/1.1\r\nHost: [::1]:8000\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200")


def test_same_style_shares_the_generate_queue_and_its_503(server_with_a_short_queue):
    url = server_with_a_short_queue

    def style(seed):
        return httpx.post(url + "/api/same-style", json={"n": 8, "seed": seed}, timeout=300)

    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(style, range(24)))
    statuses = {r.status_code for r in answers}
    assert statuses == {200, 503}, statuses
    assert all(r.headers["retry-after"] == "1" for r in answers if r.status_code == 503)
    ok = next(r for r in answers if r.status_code == 200).json()
    assert len(ok["images"]) == 8 and len(ok["images"][0]) == 10


def test_idx_files_are_read_up_to_a_cap_even_as_a_device_or_a_gzip_bomb(tmp_path):
    import gzip

    from ved import mnist

    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(mnist.DataError, match="is over 64 MB"):
        mnist.read_idx(tmp_path / "zero")
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(b"\0\0\x08\x01" + b"\0" * (65 << 20), compresslevel=1))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(mnist.DataError, match="unpacks to over 64 MB"):
        mnist.read_idx(bomb)
