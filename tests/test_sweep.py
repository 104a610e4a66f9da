"""The study's runs on a distributed engine: submitit's local executor (the Slurm one's stand-in,
with the same pickled jobs) trains a tiny seeded sweep to the same weights and metrics as the local
path, one after another in this process."""

import json

import submitit  # a dev dependency (ved[cluster]): installed by `make test`
import torch
from safetensors.torch import load_file

from ved import checkpoint, reproduce
from ved.pipeline import WEIGHTS_DIR, load_judge

TINY = reproduce.Run("tiny", "tests/configs/tiny-fast.toml", "beyond", "label")


def sweep(out, executor, monkeypatch):
    monkeypatch.setitem(reproduce.RUNS, "tiny", TINY)
    study = reproduce.Study(out, quick=False, device="cpu", beyond=["tiny"], paper=[], seeds=[0, 1])
    study.judge_dir = WEIGHTS_DIR / "judge"
    reproduce.train_stage(study, study.units(["tiny"]), load_judge(), executor)
    return study


def rows(folder):
    keep = lambda row: {k: v for k, v in row.items() if k != "seconds"}  # noqa: E731
    return [keep(json.loads(line)) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_seeded_sweep_on_submitit_trains_what_the_local_path_trains(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    here = sweep(tmp_path / "here", None, monkeypatch)
    assert torch.get_num_threads() == threads  # tiny-fast's `threads = 1` held for its runs only
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs" / "%j", cluster="local")
    executor.update_parameters(timeout_min=10)
    there = sweep(tmp_path / "there", executor, monkeypatch)
    assert here.epochs == there.epochs == {"tiny": (0, 2), "tiny-seed1": (0, 2)}
    for unit in ("tiny", "tiny-seed1"):
        mine, theirs = here.runs[unit], there.runs[unit]
        assert rows(mine) == rows(theirs)
        a, b = load_file(mine / checkpoint.WEIGHTS), load_file(theirs / checkpoint.WEIGHTS)
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    seed0, seed1 = (load_file(here.runs[u] / checkpoint.WEIGHTS) for u in ("tiny", "tiny-seed1"))
    assert any((seed0[k] != seed1[k]).any() for k in seed0)  # two seeds: two models
