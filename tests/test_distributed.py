"""torchrun with 2 gloo processes on the CPU against one process with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import HANG_GUARD_S, run_ved

import ved

TINY = Path(__file__).parent / "configs" / "tiny-label.toml"
# Ranks draw their own z noise, so runs agree statistically, not bit for bit.
RECON_TOLERANCE = 0.03  # relative difference of the final validation reconstruction


def smaller(tmp_path) -> str:
    """tiny-label on its first 10,000 images in batches of 100: as many steps at a fifth of the cost."""
    config = tmp_path / "tiny-label-10k.toml"
    text = TINY.read_text().replace('family = "label"', 'family = "label"\ntrain_images = 10000')
    # at a constant rate: the tests below stop after 2 epochs and resume for 4, which a falling
    # schedule, laid out over max_epochs, refuses
    text = text.replace("lr = 6e-3", "lr = 3e-3").replace('schedule = "cosine"', 'schedule = "constant"')
    config.write_text(text.replace("batch_size = 500", "batch_size = 100"))
    return str(config)


def torchrun(config, *args):
    # A rank that dies of a signal prints its threads' Python stacks (faulthandler) and any C++ one.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1", "TORCH_SHOW_CPP_STACKTRACES": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "ved",
        "train",
        "--config",
        config,
        "--quiet",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=HANG_GUARD_S)


def ranks_output(done) -> str:
    """What the ranks printed, without torchrun's own report of the failure after it."""
    return done.stderr.split("failed (exitcode")[0][-4000:]


def metrics(folder):
    return [json.loads(line) for line in (Path(folder) / "metrics.jsonl").read_text().splitlines()]


def test_two_gloo_ranks_match_one_process(tmp_path):
    single, multi, config = tmp_path / "single", tmp_path / "multi", smaller(tmp_path)
    code, _, err = run_ved("train", "--config", config, "--out", str(single), "--quiet")
    assert code == 0, err
    done = torchrun(config, "--out", str(multi), "--epochs", "2")
    assert done.returncode == 0, ranks_output(done)
    done = torchrun(config, "--out", str(multi), "--resume")  # continues to the config's 4 epochs
    assert done.returncode == 0, ranks_output(done)
    a, b = metrics(single), metrics(multi)
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]  # 4 epochs x 100 global batches of 100 = 400 steps
    assert abs(a[-1]["valid_recon"] - b[-1]["valid_recon"]) / a[-1]["valid_recon"] < RECON_TOLERANCE
    assert b[-1]["valid_accuracy"] >= 0.35 and abs(a[-1]["valid_accuracy"] - b[-1]["valid_accuracy"]) <= 0.15
    images = ved.load(str(multi)).generate(["seven"], n=4, seed=0)  # rank 0's checkpoint loads
    assert images.shape == (1, 4, 28, 28) and images.dtype == np.uint8
    assert not list(multi.rglob(".*"))  # atomic writes leave no temp files behind


def test_the_conditional_vae_trains_under_torchrun(tmp_path):
    """Its caption side is fitted before the image steps and frozen for them: a parameter without a
    gradient would stop DDP at the second step."""
    out = tmp_path / "cvae"
    config = str(Path(__file__).parent / "configs" / "tiny-cvae.toml")
    done = torchrun(config, "--out", str(out), "--epochs", "2")
    assert done.returncode == 0, ranks_output(done)
    assert [r["epoch"] for r in metrics(out)] == [1, 2]
    images = ved.load(str(out)).generate(["seven"], n=2, seed=0)
    assert images.shape == (1, 2, 28, 28)
