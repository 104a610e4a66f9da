"""Checkpoints: a folder with model.safetensors + config.json (+ the training state), written atomically.

Nothing here unpickles: weights and every tensor of the training state are safetensors, the rest
JSON, so a run or model folder from anywhere can be opened without running its code. A training
checkpoint (`save_checkpoint`) is one unit: it is written whole into a new folder that then takes
the old one's place by rename, so a kill at any moment leaves the old checkpoint or the new one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from .errors import VedError, is_number, is_whole, one_line, shown, shown_value
from .files import (  # noqa: F401 (checkpoint.atomic_write_* for callers)
    MAX_CONFIG_BYTES,
    UMASK,
    atomic_write_bytes,
    atomic_write_text,
    parse_json,
    read_bytes,
    read_text,
)

WEIGHTS, CONFIG, TRAIN_STATE = "model.safetensors", "config.json", "train_state.safetensors"
PICKLED_TRAIN_STATE = "train_state.pt"  # older ved's; never opened
MAX_WEIGHTS_BYTES = 256 << 20  # the largest shipped model is 9 MB; its training state about three times that


class ModelError(VedError):
    """A model name or folder that cannot be loaded; the message is one line."""


def remove_temp_files(folder: Path) -> None:
    """Temp files that killed atomic writes left behind (`.NAME.xxxxxxxx`)."""
    for path in Path(folder).glob(".*.*"):
        if path.is_file() and any(
            path.name.startswith(f".{name}.") for name in (WEIGHTS, CONFIG, "metrics.jsonl")
        ):
            path.unlink(missing_ok=True)


def _weights_bytes(model_or_tensors, metadata: dict | None = None) -> bytes:
    items = (
        model_or_tensors.state_dict() if isinstance(model_or_tensors, torch.nn.Module) else model_or_tensors
    )
    return save({k: v.detach().cpu().contiguous() for k, v in items.items()}, metadata)


def save_model(folder: Path, model, config: dict) -> None:
    """Weights and config of a model to sample from, each written atomically."""
    folder = Path(folder)
    text = json.dumps(config, indent=2, sort_keys=True)
    # the weights carry their config too, so that the file alone says what it is
    atomic_write_bytes(folder / WEIGHTS, _weights_bytes(model, {"ved_config": text}))
    atomic_write_text(folder / CONFIG, text)


# ---------------------------------------------------------------- training checkpoints


def save_checkpoint(folder: Path, model, config: dict, train_state: dict) -> None:
    """Weights, config and training state as one unit: written into a fresh sibling folder, then
    swapped in by two renames (old -> .NAME.old, new -> NAME). `recover` finishes or undoes a swap
    that a kill interrupted."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover(folder)
    new = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.new-"))
    tensors, skeleton = _flatten(train_state)
    try:
        for name, data in (
            (WEIGHTS, _weights_bytes(model)),
            (CONFIG, json.dumps(config, indent=2, sort_keys=True).encode()),
            (TRAIN_STATE, save(tensors, {"state": json.dumps(skeleton)})),
        ):
            with open(new / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.chmod(new, 0o777 & ~UMASK)
    except OSError as e:  # a full disk: no partial folder stays, and the message names the checkpoint
        shutil.rmtree(new, ignore_errors=True)
        raise OSError(e.errno, e.strerror, str(folder)) from None
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    old = _old(folder)
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def _old(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.old"


def recover(folder: Path) -> None:
    """After a kill inside save_checkpoint: keep the whole checkpoint there is, drop partial ones."""
    folder, old = Path(folder), _old(Path(folder))
    if old.exists():
        if folder.exists():  # the swap finished; only its clean-up was missed
            shutil.rmtree(old)
        else:  # killed between the two renames: the previous checkpoint is whole
            os.replace(old, folder)
    for partial in folder.parent.glob(f".{folder.name}.new-*"):
        shutil.rmtree(partial, ignore_errors=True)


def load_train_state(folder: Path) -> dict | None:
    """The training state saved in `folder`, or None if there is none; ModelError for a damaged one."""
    folder = Path(folder)
    path = folder / TRAIN_STATE
    if not path.exists():
        if (folder / PICKLED_TRAIN_STATE).exists():
            raise ModelError(
                f"{folder / PICKLED_TRAIN_STATE} is a pickle from an older ved, which is never "
                f"opened (it could run code); delete {folder} to train this run afresh"
            )
        return None
    raw = read_bytes(path, 3 * MAX_WEIGHTS_BYTES, str(path), ModelError)  # the weights and Adam's two moments
    try:
        skeleton = parse_json(_metadata(raw)["state"], "its state", ModelError)
        state = _unflatten(skeleton, load(raw))
    except (OSError, SafetensorError, KeyError, ValueError, TypeError) as e:
        raise ModelError(
            f"{path} is damaged ({one_line(e)}); delete {folder} to train this run afresh"
        ) from None
    if not isinstance(state, dict) or not {"optimizer", "rng", "state"} <= state.keys():
        raise ModelError(f"{path} is not a ved training state; delete {folder} to train this run afresh")
    check_loop_state(state["state"], path)
    return state


# What the loop keeps between epochs, by type: a resumed run reads these back from a file that may
# have been damaged or edited, so each is checked before the loop trusts it.
LOOP_STATE = {
    "epoch": "count",
    "best_epoch": "epoch or -1",
    "bad_epochs": "count",
    "best_valid": "loss",
    "seconds": "seconds",
    "stopped": "flag",
    "finished": "flag",
    "ema_steps": "count",
}
REQUIRED_LOOP_STATE = ("epoch", "best_epoch", "bad_epochs", "best_valid", "seconds")


def check_optimizer_state(saved, optimizer: torch.optim.Optimizer) -> None:
    """A saved optimiser state against the optimiser about to take it: the same groups with the same
    settings, and per parameter only finite tensors, each moment shaped like its parameter; torch
    checks none of this, and a None or a string there fails only at the next step. ValueError."""
    fresh = optimizer.state_dict()
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        raise ValueError("the optimiser's state is not a table of state and param_groups")
    groups = saved["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(fresh["param_groups"]):
        raise ValueError("the optimiser's parameter groups differ from this model's")
    for group, want in zip(groups, fresh["param_groups"]):
        # a setting a newer torch added may be missing from an older run's state; none may differ
        known = isinstance(group, dict) and "params" in group and set(group) <= set(want)
        # the rate is the schedule's at the last step (train.learning_rate), which sets every step's
        if not known or any(_plain(group[k]) != _plain(want[k]) for k in group if k != "lr"):
            raise ValueError("the optimiser's settings differ from this config's")
        if not is_number(group.get("lr", 0), 0, 10):
            raise ValueError("the optimiser's learning rate is not a number from 0 to 10")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = saved["state"]
    if not isinstance(state, dict) or not all(is_whole(k, 0, len(params) - 1) for k in state):
        raise ValueError("the optimiser's state names parameters this model does not have")
    for index, moments in state.items():
        if not isinstance(moments, dict):
            raise ValueError(f"the optimiser's state of parameter {index} is not a table")
        for name, value in moments.items():
            like = None if name == "step" else params[index]
            shape, dtype = (like.shape, like.dtype) if like is not None else ((), torch.float32)
            tensor = isinstance(value, torch.Tensor) and value.shape == shape and value.dtype == dtype
            if not tensor or not torch.isfinite(value).all():
                raise ValueError(f"the optimiser's '{shown(name, 20)}' of parameter {index} is damaged")


def _plain(value):
    # JSON keeps no tuples (Adam's betas come back a list), and a bool is an int to Python
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else (type(value), value)


def check_loop_state(state, path: Path) -> dict:
    """The loop's saved state, every field of its type and range; ModelError in one line otherwise."""

    def ok(kind: str, value) -> bool:
        if kind == "count":
            return is_whole(value, 0, 10**9)
        if kind == "epoch or -1":
            return is_whole(value, -1, 10**9)
        if kind == "loss":  # inf before the first validation
            return value == math.inf or is_number(value)
        if kind == "seconds":
            return is_number(value, 0)
        return isinstance(value, bool)

    def damaged(why: str):
        return ModelError(f"{path} is damaged ({why}); delete {path.parent.parent} to train afresh")

    if not isinstance(state, dict):
        raise damaged("its loop state is not a table")
    for key in REQUIRED_LOOP_STATE:
        if key not in state:
            raise damaged(f"no '{key}'")
    for key, value in state.items():
        if key not in LOOP_STATE:
            raise damaged(f"an unknown key '{shown(key, 40)}'")
        if not ok(LOOP_STATE[key], value):
            raise damaged(f"{key} = {shown_value(value)}; allowed: {LOOP_STATE[key]}")
    if state["best_epoch"] > state["epoch"] or state["bad_epochs"] > state["epoch"]:
        raise damaged(f"best_epoch and bad_epochs must not pass epoch {state['epoch']}")
    return state


MAX_METRICS_BYTES = 64 << 20  # a row an epoch, about 500 bytes each


def read_metrics(path: Path, epochs: int) -> list[dict]:
    """The first `epochs` rows of metrics.jsonl (it is written before the checkpoint, so it holds at
    least as many); each a table whose `epoch` counts up from 1."""
    if epochs == 0:
        return []
    where = f"{path} (delete {path.parent} to train this run afresh)"
    text = read_text(path, MAX_METRICS_BYTES, where, ModelError)
    rows = [parse_json(line, where, ModelError) for line in text.splitlines() if line.strip()]
    for i, row in enumerate(rows[:epochs]):
        if not isinstance(row, dict) or not is_whole(row.get("epoch"), i + 1, i + 1):
            raise ModelError(f"{where}: row {i + 1} is not epoch {i + 1}'s table")
    if len(rows) < epochs:
        raise ModelError(f"{where}: {len(rows)} epochs logged, the checkpoint has {epochs}")
    return rows[:epochs]


# The training state is nested dicts and lists of numbers, strings and tensors (the optimiser's,
# the random generators'). Tensors go into safetensors under a path name; the rest is JSON in the
# file's metadata, a tensor standing as {"tensor": name} and a dict with other keys than strings
# (the optimiser's per-parameter state) as {"items": [[key, value], ...]}.


def _flatten(value, tensors: dict | None = None, path: str = "") -> tuple[dict, object]:
    tensors = {} if tensors is None else tensors
    if isinstance(value, torch.Tensor):
        tensors[path or "."] = value.detach().cpu().contiguous()
        return tensors, {"tensor": path or "."}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return tensors, {"dict": {k: _flatten(v, tensors, f"{path}/{k}")[1] for k, v in value.items()}}
        return tensors, {"items": [[k, _flatten(v, tensors, f"{path}/{k}")[1]] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return tensors, {"list": [_flatten(v, tensors, f"{path}/{i}")[1] for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, str)):
        return tensors, value
    if isinstance(value, float):
        return tensors, value if math.isfinite(value) else {"float": repr(value)}
    raise TypeError(f"cannot save a {type(value).__name__} in a training state")


def _unflatten(node, tensors: dict):
    if isinstance(node, dict):
        if len(node) != 1:
            raise ValueError("malformed training state")
        ((kind, body),) = node.items()
        if kind == "tensor" and isinstance(body, str):
            return tensors[body]
        if kind == "dict" and isinstance(body, dict):
            return {k: _unflatten(v, tensors) for k, v in body.items()}
        if kind == "items" and isinstance(body, list) and all(_is_pair(item) for item in body):
            return {k: _unflatten(v, tensors) for k, v in body}
        if kind == "list" and isinstance(body, list):
            return [_unflatten(v, tensors) for v in body]
        if kind == "float" and body in ("inf", "-inf", "nan"):
            return float(body)
        raise ValueError(f"malformed training state (a '{shown(kind, 20)}' entry)")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    raise ValueError("malformed training state")


def _metadata(raw: bytes) -> dict:
    """The metadata of safetensors bytes, from their header (8 bytes of its length, then JSON), so
    that the file is read once; KeyError or ValueError (ModelError) for a header that has none."""
    header = parse_json(raw[8 : 8 + int.from_bytes(raw[:8], "little")], "its header", ModelError)
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__"), dict):
        raise KeyError("__metadata__")
    return header["__metadata__"]


def _is_pair(item) -> bool:
    # JSON has no tuples: an optimiser's integer keys come back from lists of two
    return isinstance(item, list) and len(item) == 2 and isinstance(item[0], (int, str))


# ---------------------------------------------------------------- reading model folders


@dataclass
class ModelFolder:
    """A model folder as it was read, once: its config.json (parsed, not yet resolved) and tensors."""

    path: Path
    config: dict
    weights: dict[str, torch.Tensor]


def read_model_folder(folder: Path, device: str | torch.device = "cpu") -> ModelFolder:
    """Both files of a model folder, each read once with its size capped; ModelError otherwise."""
    return ModelFolder(Path(folder), load_config(folder), load_weights(folder, device))


def load_config(folder: Path) -> dict:
    """A model folder's config.json as a dict; ModelError in one line naming the file otherwise."""
    path = Path(folder) / CONFIG
    config = parse_json(read_text(path, MAX_CONFIG_BYTES, str(path), ModelError), str(path), ModelError)
    if not isinstance(config, dict):
        raise ModelError(f"{path} holds a JSON {type(config).__name__}; a ved config.json is an object")
    return config


def load_weights(folder: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    path = Path(folder) / WEIGHTS
    raw = read_bytes(path, MAX_WEIGHTS_BYTES, str(path), ModelError)
    try:
        tensors = load(raw)
    except (SafetensorError, ValueError) as e:  # missing, truncated, garbled, huge header
        raise ModelError(f"{path} is not a readable safetensors file: {one_line(e)}") from None
    return {k: v.to(device) for k, v in tensors.items()}
