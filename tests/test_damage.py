"""A grammar of damage: hypothesis builds broken model folders and training states from a real model
and a real run, one damage at a time, and every one must either load and draw proper digits or be
refused in one line. The hand-picked cases are in test_hostile.py; this finds the ones nobody
picked."""

import json
import shutil
import tempfile
from pathlib import Path

import torch
from conftest import ved_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ved
from ved import checkpoint
from ved.errors import VedError
from ved.pipeline import WEIGHTS_DIR

FAST = str(Path(__file__).parent / "configs" / "tiny-fast.toml")
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)

# values that stand in for a part of a JSON file: every JSON type, the edges of numbers, big and odd text
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.sampled_from([0, -1, 2**63, 1e308, -1e308, 1e-320, 0.5, float("nan")]),
        st.text(max_size=20),
        st.sampled_from(["\x1b[2J", "a" * 5000, "../../etc", "cvae", "mixed", "paper_ved"]),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def paths(value, prefix=()):
    """Every place in a JSON value, as a tuple of keys and indices."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, (*prefix, i))


def replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


@st.composite
def config_damage(draw, config):
    """One place of a config.json replaced by any JSON value, or dropped."""
    where = draw(st.sampled_from(list(paths(config))[1:]))
    if draw(st.booleans()):
        return replaced(config, where, draw(json_values))
    container = config
    for key in where[:-1]:
        container = container[key]
    container = dict(container) if isinstance(container, dict) else list(container)
    del container[where[-1]]
    return replaced(config, where[:-1], container)


TENSOR_DAMAGE = ["float64", "float16", "int32", "scale", "nan", "inf", "zero", "reshape", "drop", "extra"]


def damaged(tensors: dict, name: str, kind: str, factor: float, index: int) -> dict:
    """One tensor of a weights file damaged in one of the ways a bad save or a tamperer would."""
    out, t = dict(tensors), tensors[name]
    if kind == "float64":
        out[name] = t.double() * factor
    elif kind == "float16":
        out[name] = t.half()
    elif kind == "int32":
        out[name] = t.int()
    elif kind == "scale":
        out[name] = t * factor
    elif kind in ("nan", "inf"):
        flat = t.clone().flatten()
        flat[index % len(flat)] = float(kind)
        out[name] = flat.view_as(t)
    elif kind == "zero":
        out[name] = torch.zeros_like(t)
    elif kind == "reshape":
        out[name] = t.flatten()[: max(1, t.numel() - 1)].clone()
    elif kind == "drop":
        del out[name]
    else:
        out["extra." + name] = t.clone()
    return out


def loads_and_draws_or_refuses(folder: Path) -> None:
    try:
        pipe = ved.load(str(folder))
    except VedError as e:
        message = str(e)
        assert "\n" not in message and "\x1b" not in message and len(message) < 1000, message
        return
    images = pipe(["five", "nine"], n=2, generator=0, output_type="pt", strict=False).images
    assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    assert (images.amax((-2, -1)) - images.amin((-2, -1)) > 0).all()  # no blank image


GOOD = WEIGHTS_DIR / "paper-label"
GOOD_CONFIG = json.loads((GOOD / "config.json").read_text())
GOOD_TENSORS = load_file(str(GOOD / "model.safetensors"))


@SETTINGS
@given(config=config_damage(GOOD_CONFIG))
def test_a_damaged_config_loads_and_draws_or_is_refused(config):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        shutil.copytree(GOOD, folder)
        (folder / "config.json").write_text(json.dumps(config))
        loads_and_draws_or_refuses(folder)


@SETTINGS
@given(
    name=st.sampled_from(sorted(GOOD_TENSORS)),
    kind=st.sampled_from(TENSOR_DAMAGE),
    factor=st.sampled_from([0.0, -1.0, 1e-30, 1e10, 1e30, 3e38, 1e39, 1e300]),
    index=st.integers(0, 10**6),
)
def test_damaged_weights_load_and_draw_or_are_refused(name, kind, factor, index):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        shutil.copytree(GOOD, folder)
        save_file(damaged(GOOD_TENSORS, name, kind, factor, index), str(folder / "model.safetensors"))
        loads_and_draws_or_refuses(folder)


# ---------------------------------------------------------------- training states


@settings(max_examples=15, deadline=None, derandomize=True)
@given(data=st.data())
def test_a_damaged_training_state_resumes_or_is_refused(one_epoch_run, data):
    run = one_epoch_run
    with safe_open(str(run / "last" / checkpoint.TRAIN_STATE), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    skeleton = json.loads(meta["state"])
    where = data.draw(st.sampled_from(list(paths(skeleton))[1:]))
    meta["state"] = json.dumps(replaced(skeleton, where, data.draw(json_values)))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run"
        shutil.copytree(run, copy)
        save_file(tensors, str(copy / "last" / checkpoint.TRAIN_STATE), meta)
        code, _, err = ved_main(
            "train", "--config", FAST, "--out", str(copy), "--epochs", "2", "--resume", "--quiet"
        )
    assert code in (0, 2), err
    assert "Traceback" not in err and (code == 0 or err.count("\n") == 1), err
