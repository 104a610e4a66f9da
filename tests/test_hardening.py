"""Bad input, tampered files and faults: each gets one clean line, nothing written, and no code run.

The cases are the ones a review found giving tracebacks, wrong output or code execution; each is
rerun here through the real command line (a subprocess, or `ved.cli.main` in this process where
many cases share one set-up) or the real Python API.
"""

import json
import os
import shutil
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import HANG_GUARD_S, assert_one_line, run_ved, ved_main
from safetensors.torch import load_file, save_file

import ved
from ved import checkpoint
from ved.errors import VedError
from ved.pipeline import WEIGHTS_DIR

TINY = str(Path(__file__).parent / "configs" / "tiny-label.toml")
FAST = str(Path(__file__).parent / "configs" / "tiny-fast.toml")  # 10 steps an epoch


# ---------------------------------------------------------------- captions with no value


@pytest.mark.parametrize(
    "caption,fragment",
    [
        ("three plus", "ends with the operator 'plus'"),
        ("nine plus nine", "evaluates to 18"),
        ("min three", "min takes two or more digit words"),
        ("plus plus plus", "ends with the operator"),
    ],
)
def test_captions_with_no_value_are_refused_and_nothing_is_written(tmp_path, caption, fragment):
    out = tmp_path / "x.npy"
    code, stdout, err = ved_main("sample", "-n", "1", "--out", str(out), caption)
    assert_one_line(code, err, fragment)
    assert f"caption '{caption}'" in err and "--no-strict draws it anyway" in err
    assert stdout == "" and list(tmp_path.iterdir()) == []


def test_a_caption_of_another_family_is_refused_unless_asked(tmp_path):
    out = tmp_path / "x.npy"
    code, _, err = ved_main(
        "sample", "--model", "paper-label", "-n", "1", "--out", str(out), "three plus two"
    )
    assert_one_line(code, err, "is an arithmetic caption; this model was trained on label captions only")
    assert not out.exists()
    code, stdout, err = ved_main(
        "sample",
        "--model",
        "paper-label",
        "-n",
        "2",
        "--no-strict",
        "--out",
        str(out),
        "three plus two",
        "three plus",
    )
    assert code == 0 and "warning: drawing 2 caption(s) outside the model's grammar" in err
    assert np.load(out).shape == (2, 2, 28, 28)
    # every family reads a bare digit word; the mixed model reads every family
    assert ved_main("sample", "--model", "paper-logic", "-n", "1", "--out", str(out), "five")[0] == 2
    assert ved_main("sample", "--model", "paper-sentence", "-n", "1", "--out", str(out), "five")[0] == 0
    assert ved_main("sample", "-n", "1", "--out", str(out), "min nine five seven", "three plus two")[0] == 0


def test_unknown_words_are_refused_even_without_strict(tmp_path):
    code, _, err = ved_main("sample", "--no-strict", "--out", str(tmp_path / "x.npy"), "thre plus two")
    assert_one_line(code, err, "did you mean 'three'")
    assert "--no-strict" not in err


def test_errors_repeat_at_most_100_characters_of_input(tmp_path):
    word = "x" * 100_000
    code, _, err = ved_main("sample", "--out", str(tmp_path / "x.npy"), word)
    assert_one_line(code, err, "at most 1024 are allowed")
    assert len(err) < 400


# ---------------------------------------------------------------- paths and options


def test_output_paths_are_checked_before_any_work(tmp_path):
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "file").write_text("x")
    cases = [
        (tmp_path / "folder.png", "is a folder; give a file name"),
        (tmp_path / "file" / "x.png", "is a file, not a folder"),
        (Path("/sys/ved-test.png"), "cannot write in '/sys' (Permission denied)"),
    ]
    for out, fragment in cases:
        code, _, err = ved_main("sample", "-n", "1", "--out", str(out), "five")
        assert_one_line(code, err, fragment)
    code, _, err = ved_main("train", "--config", TINY, "--out", str(tmp_path / "file"))
    assert_one_line(code, err, "--out '" + str(tmp_path / "file") + "' is a file; give a folder")
    code, _, err = ved_main("evaluate", "--json", str(tmp_path / "folder.png"))
    assert_one_line(code, err, "--json")
    code, _, err = ved_main("captions", "list", "--out", str(tmp_path / "folder.png"))
    assert_one_line(code, err, "--out '" + str(tmp_path / "folder.png") + "' is a folder; give a file name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.png"]  # nothing written


def test_captions_files_that_are_not_text(tmp_path):
    binary = tmp_path / "captions.bin"
    binary.write_bytes(bytes(range(256)))
    cases = [(tmp_path, "is a folder"), (binary, "is not UTF-8 text"), (tmp_path / "nope.txt", "not found")]
    for path, fragment in cases:
        code, _, err = ved_main("sample", "--captions-file", str(path), "--out", str(tmp_path / "x.npy"))
        assert_one_line(code, err, f"--captions-file '{path}' {fragment}")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (
            ("sample", "--seed", "18446744073709551616", "five"),
            "argument --seed: 18446744073709551616 is out of range",
        ),
        (("sample", "-n", "2.5", "five"), "argument -n: '2.5' is not a whole number"),
        (("serve", "--port", "99999"), "argument --port: 99999 is out of range; allowed: 1 to 65535"),
        (("train", "--config", TINY, "--epochs", "0"), "argument --epochs: 0 is out of range"),
        (
            ("serve", "--allow-host", "a.example,b.example"),
            "--allow-host: 'a.example,b.example' is not a host name",
        ),
        (("serve", "--allow-host", ""), "--allow-host: '' is not a host name"),
        (("serve", "--queue", "0"), "argument --queue: 0 is out of range"),
    ],
)
def test_options_out_of_range_name_the_option(args, fragment):
    code, _, err = ved_main(*args)
    assert_one_line(code, err, fragment)


@pytest.mark.parametrize(
    "text,fragment",
    [
        (
            "[train]\nbatch_size = 'big'\n",
            "[train] batch_size = 'big'; allowed: a whole number from 1 to 50,000",
        ),
        ("[train]\nbatch_size = 0\n", "[train] batch_size = 0; allowed"),
        ("[train]\nlr = nan\n", "[train] lr = nan; allowed: a number"),
        ("[data]\nfamily = 'poetry'\n", "[data] family = 'poetry'; allowed: label, sentence"),
        ("[data]\nlogic_k = [3, 1]\n", "[data] logic_k = [3, 1]; allowed: [lowest, highest]"),
        ("[data]\nadd_primitive = 'eleven'\n", "[data] add_primitive = 'eleven'; allowed: zero, one"),
        (
            "[data]\nhold_out_result = 12\n",
            "[data] hold_out_result = 12; allowed: a whole number from 0 to 9",
        ),
        (
            "[data]\nhold_out_captions = 'five'\n",
            "[data] hold_out_captions = 'five'; allowed: a list of captions",
        ),
        ("[model]\nlatent = -5\n", "[model] latent = -5; allowed: a whole number from 1"),
        ("[model]\nlatent = 1000000000000\n", "[model] latent = 1000000000000; allowed"),
        ("[model]\nkind = 'cvae'\nstyle = 'big'\n", "[model] style = 'big'; allowed: a whole number"),
        ("[model]\nkind = 'cvae'\ncaption_encoder = 'attention'\ncaption_width = 6\n", "divisible"),
        ("[model]\nkind = 'cvae'\ncaption_encoder = 7\n", "caption_encoder = 7; allowed: binary-gru, gru"),
        ("[train]\ncheck_collapse = 'yes'\n", "[train] check_collapse = 'yes'; allowed: true or false"),
        ("[train]\nschedule = 'step'\n", "[train] schedule = 'step'; allowed: constant, linear, cosine"),
        ("[train]\ncompile = 1\n", "[train] compile = 1; allowed: true or false"),
        ("[train]\nwarmup_steps = -1\n", "[train] warmup_steps = -1; allowed: a whole number from 0"),
        ("train = 3\n", "[train] must be a table"),
        ("[train\n", "is not valid TOML"),
    ],
)
def test_config_values_are_checked_when_read_before_mnist(tmp_path, text, fragment):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    code, _, err = ved_main(
        "train",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "run"),
        env={"VED_CACHE": str(tmp_path / "no-mnist-here")},
    )  # MNIST is never reached
    assert_one_line(code, err, fragment)
    assert (
        str(config) in err and not (tmp_path / "run").exists() and not (tmp_path / "no-mnist-here").exists()
    )


def test_config_that_is_a_folder_or_missing(tmp_path):
    code, _, err = ved_main("train", "--config", str(tmp_path))
    assert_one_line(code, err, "is a folder; give a TOML file")
    code, _, err = ved_main("train", "--config", str(tmp_path / "nope.toml"))
    assert_one_line(code, err, "not found")


def test_an_unwritable_cache_costs_only_time(tmp_path, mnist_data):
    """VED_CACHE a file, not a folder: MNIST still loads (here from local IDX files), verified, with
    one line saying it was not cached."""
    idx = tmp_path / "idx"
    for key, name in ved.mnist.IDX_NAMES.items():
        ved.mnist.write_idx(idx / name, getattr(mnist_data, key))
    blocker = tmp_path / "cache-file"
    blocker.write_text("not a folder")
    code, out, err = run_ved("data", "--quiet", env={"VED_CACHE": str(blocker), "VED_DATA_DIR": str(idx)})
    assert code == 0 and "MNIST verified" in out and "not cached" in out + err, err
    assert "Traceback" not in err


# ---------------------------------------------------------------- broken model folders


def broken_folders(root: Path) -> dict[str, tuple[Path, str]]:
    good = WEIGHTS_DIR / "paper-label"
    config = json.loads((good / "config.json").read_text())

    def folder(name, weights: bytes | None = None, cfg=None):
        path = root / name
        path.mkdir()
        (path / "model.safetensors").write_bytes(
            (good / "model.safetensors").read_bytes() if weights is None else weights
        )
        (path / "config.json").write_text(json.dumps(config if cfg is None else cfg))
        return path

    raw = (good / "model.safetensors").read_bytes()
    tensors = load_file(str(good / "model.safetensors"))
    nan = {k: torch.full_like(v, float("nan")) for k, v in tensors.items()}
    save_file(nan, str(root / "nan.safetensors"))
    (root / "empty").mkdir()
    return {
        "empty": (root / "empty", "unknown model"),
        "truncated": (folder("truncated", raw[: len(raw) // 2]), "is not a readable safetensors file"),
        "random": (folder("random", os.urandom(4096)), "is not a readable safetensors file"),
        "huge header": (
            folder("huge", (2**40).to_bytes(8, "little") + b"{}"),
            "is not a readable safetensors",
        ),
        "no model key": (folder("nomodel", cfg={"data": config["data"]}), "has no [model] table"),
        "a JSON list": (folder("list", cfg=[1, 2]), "holds a JSON list"),
        "bad JSON": (folder("badjson", cfg=None), None),
        "latent as text": (
            folder("latent-text", cfg={**config, "model": {**config["model"], "latent": "100"}}),
            "[model] latent = '100'; allowed: a whole number",
        ),
        "wrong shapes": (
            folder("shapes", cfg={**config, "model": {**config["model"], "latent": 50}}),
            "does not fit its config.json",
        ),
        "huge latent": (
            folder("huge-latent", cfg={**config, "model": {**config["model"], "latent": 10**12}}),
            "[model] latent = 1000000000000; allowed",
        ),
        "NaN weights": (folder("nan", (root / "nan.safetensors").read_bytes()), "non-finite values"),
    }


def test_broken_model_folders_are_one_line_errors_everywhere(tmp_path):
    cases = broken_folders(tmp_path)
    (cases["bad JSON"][0] / "config.json").write_text("{not json")
    cases["bad JSON"] = (cases["bad JSON"][0], "config.json is not valid JSON")
    for name, (folder, fragment) in cases.items():
        with pytest.raises(VedError, match=None) as e:
            ved.load(str(folder))
        assert fragment in str(e.value) and "\n" not in str(e.value), (name, str(e.value))
        code, _, err = ved_main("sample", "--model", str(folder), "--out", str(tmp_path / "x.npy"), "five")
        assert_one_line(code, err, fragment)
    assert not (tmp_path / "x.npy").exists()


def test_serve_with_a_broken_model_stops_before_any_worker(tmp_path):
    folder, fragment = broken_folders(tmp_path)["truncated"]
    code, out, err = run_ved("serve", "--model", str(folder), "--port", "8765")
    assert_one_line(code, err, fragment)


# ---------------------------------------------------------------- the Python API


def test_generate_takes_any_iterable_of_text_read_once():
    pipe = ved.load("paper-label")
    images = pipe.generate((c for c in ["five", "seven"]), n=2, seed=0)
    assert images.shape == (2, 2, 28, 28)
    assert np.array_equal(images, pipe.generate(["five", "seven"], n=2, seed=0))


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"n": 2.5}, "n must be a whole number from 1 to 10000, got 2.5"),
        ({"n": True}, "got True"),
        ({"n": 0}, "got 0"),
        ({"n": "3"}, "got str"),
        ({"seed": -1}, "seed must be None or a whole number"),
        ({"seed": 2.0}, "got 2.0"),
        ({"strict": "no"}, "strict must be True or False"),
    ],
)
def test_generate_refuses_bad_arguments_with_a_ved_error(kwargs, fragment):
    with pytest.raises(VedError, match=None) as e:
        ved.load("paper-label").generate(["five"], **kwargs)
    assert fragment in str(e.value)


@pytest.mark.parametrize(
    "captions,fragment",
    [
        (b"five", "got bytes"),
        ([b"five"], "caption 1 must be text (str), got bytes"),
        (5, "got int"),
        (["five", None], "caption 2 must be text"),
        (["three plus"], "ends with the operator"),
        (["three plus two"], "trained on label captions only"),
    ],
)
def test_generate_refuses_bad_captions_with_a_ved_error(captions, fragment):
    with pytest.raises(VedError) as e:
        ved.load("paper-label").generate(captions, n=1)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_strict_false_draws_and_warns():
    with pytest.warns(UserWarning, match="outside the model's grammar"):
        images = ved.load("paper-label").generate(["three plus two", "three plus"], n=1, strict=False)
    assert images.shape == (2, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # captions in the grammar draw silently
        ved.load("paper-label").generate(["five"], n=1, strict=False)


# ---------------------------------------------------------------- tampered run folders

PAYLOAD = """
import os, pickle
class Payload:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
"""


def pickle_payload(marker: Path) -> bytes:
    namespace = {}
    exec(PAYLOAD.format(marker=marker), namespace)
    import pickle

    return pickle.dumps(namespace["Payload"]())


def test_a_planted_pickle_in_any_file_of_a_run_runs_nothing(tmp_path, one_epoch_run):
    """Each file of a run folder in turn holds a pickle whose loading would run a command; resuming
    must run none. Files that resume reads are refused in one line; the rest are never opened.
    (In this process: had anything unpickled the payload, the marker file would be there.)"""
    marker = tmp_path / "code-ran"
    payload = pickle_payload(marker)
    files = sorted(p.relative_to(one_epoch_run) for p in one_epoch_run.rglob("*") if p.is_file())
    assert {"last/train_state.safetensors", "last/model.safetensors", "metrics.jsonl"} <= {
        str(f) for f in files
    }
    refused = 0
    for name in [*files, Path("last/train_state.pt")]:
        run = tmp_path / "tampered"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(one_epoch_run, run)
        if name.name == "train_state.pt":  # an older ved's pickled state, on its own
            (run / "last" / checkpoint.TRAIN_STATE).unlink()
        (run / name).write_bytes(payload)
        code, _, err = ved_main(
            "train", "--config", FAST, "--out", str(run), "--epochs", "1", "--resume", "--quiet"
        )
        assert not marker.exists(), f"code ran from {name}"
        assert code in (0, 2) and "Traceback" not in err, (name, err)
        if code == 2:
            refused += 1
            assert err.count("\n") == 1 and "train" in err, (name, err)
    assert refused >= 4  # the state, the weights resume reads, metrics, and the legacy pickle


# ---------------------------------------------------------------- faults inside a save

# One process imports torch and ved once, then forks a child for each run: a child killed with
# os._exit at a chosen os.replace dies as abruptly as under SIGKILL (no cleanup, no finally), and
# the next child resumes it. The parent runs no torch op, so each child starts clean. Each killed
# run starts from a copy of one run's epoch-1 checkpoint, so that it trains only epoch 2.
FORKING_RUNNER = """
import json, os, shutil, sys
import torch
from ved import cli
torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch loads its compiler here, once
config, root, points = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
real = os.replace

def child(out, epochs, resume, kill_at=0, when="", log=False):
    pid = os.fork()
    if pid:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    calls = [0]
    def replace(src, dst, *a, **k):
        calls[0] += 1
        if calls[0] == kill_at and when == "before":
            os._exit(137)
        real(src, dst, *a, **k)
        if calls[0] == kill_at and when == "after":
            os._exit(137)
        if log:
            print("REPLACE", calls[0], os.path.relpath(dst, out), flush=True)
    os.replace = replace
    args = ["train", "--config", config, "--out", out, "--epochs", str(epochs), "--quiet"]
    args += ["--resume"] * resume
    try:
        code = cli.main(args)
    finally:
        sys.stdout.flush(); sys.stderr.flush()
    os._exit(code)

path = lambda name: os.path.join(root, name)
if not points:  # the straight run, the epoch-1 snapshot, and the renames of epoch 2's save
    assert child(path("straight"), 2, False) == 0 and child(path("snapshot"), 1, False) == 0
    shutil.copytree(path("snapshot"), path("count"))
    sys.exit(child(path("count"), 2, True, log=True))
for kill_at, when in points:
    out = path(f"killed-{kill_at}-{when}")
    shutil.copytree(path("snapshot"), out)
    killed = child(out, 2, True, kill_at, when)
    resumed = child(out, 2, True)
    print("POINT", kill_at, when, killed, resumed, flush=True)
"""


def forking_runner(root: Path, points) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", FORKING_RUNNER, FAST, str(root), json.dumps(points)],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )


def test_a_kill_at_any_step_of_a_save_resumes_to_the_same_weights(tmp_path):
    """Epoch 2's save is logged rename by rename (os.replace). Then, for each of its renames, a run
    is killed just before it and another just after it; each resumes and must end with weights
    bit-identical to a straight two-epoch run's, its metrics whole and no temp file or
    half-written checkpoint left."""
    done = forking_runner(tmp_path, [])
    assert done.returncode == 0, done.stderr
    renames = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("REPLACE")]
    assert {target for _, target in renames} >= {"metrics.jsonl", "model.safetensors", "last"}, renames
    points = [(int(i), when) for i, _ in renames for when in ("before", "after")]
    halves = [points[::2], points[1::2]]
    with ThreadPoolExecutor(2) as pool:  # two forking runners, one per core
        runs = list(pool.map(lambda half: forking_runner(tmp_path, half), halves))
    results = [
        line.split()[1:] for run in runs for line in run.stdout.splitlines() if line.startswith("POINT")
    ]
    assert len(results) == len(points) >= 8, [run.stderr[-2000:] for run in runs]
    straight = tmp_path / "straight"
    reference = {
        name: load_file(str(straight / name)) for name in ("model.safetensors", "last/model.safetensors")
    }
    for kill_at, when, killed, resumed in results:
        assert (killed, resumed) == ("137", "0"), (kill_at, when, [run.stderr[-2000:] for run in runs])
        run = tmp_path / f"killed-{kill_at}-{when}"
        for name, tensors in reference.items():
            again = load_file(str(run / name))
            assert all(torch.equal(tensors[k], again[k]) for k in tensors), (kill_at, when, name)
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [1, 2], (kill_at, when)
        leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]
        assert leftovers == [], (kill_at, when, leftovers)
