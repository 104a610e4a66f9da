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
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load, save

from .errors import VedError, one_line
from .files import UMASK, atomic_write_bytes, atomic_write_text  # noqa: F401 (checkpoint.atomic_write_* for callers)

WEIGHTS, CONFIG, TRAIN_STATE = "model.safetensors", "config.json", "train_state.safetensors"
PICKLED_TRAIN_STATE = "train_state.pt"  # older ved's; never opened
MAX_CONFIG_BYTES = 1 << 20


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
    try:
        with safe_open(str(path), "pt") as f:
            skeleton = json.loads((f.metadata() or {})["state"])
        tensors = load(path.read_bytes())
        state = _unflatten(skeleton, tensors)
    except (OSError, SafetensorError, KeyError, ValueError, TypeError) as e:
        raise ModelError(
            f"{path} is damaged ({one_line(e)}); delete {folder} to train this run afresh"
        ) from None
    if not isinstance(state, dict) or not {"optimizer", "rng", "state"} <= state.keys():
        raise ModelError(f"{path} is not a ved training state; delete {folder} to train this run afresh")
    return state


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
        if kind == "tensor":
            return tensors[body]
        if kind == "dict":
            return {k: _unflatten(v, tensors) for k, v in body.items()}
        if kind == "items":
            return {k: _unflatten(v, tensors) for k, v in body}
        if kind == "list":
            return [_unflatten(v, tensors) for v in body]
        if kind == "float" and body in ("inf", "-inf", "nan"):
            return float(body)
        raise ValueError(f"malformed training state (a '{kind}' entry)")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    raise ValueError("malformed training state")


# ---------------------------------------------------------------- reading model folders


def load_config(folder: Path) -> dict:
    """A model folder's config.json as a dict; ModelError in one line naming the file otherwise."""
    path = Path(folder) / CONFIG
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelError(f"{path} is {path.stat().st_size} bytes; a ved config.json is a few KB")
        config = json.loads(path.read_text(encoding="utf-8"))
    except ModelError:
        raise
    except (OSError, ValueError) as e:  # missing, unreadable, not UTF-8, not JSON
        raise ModelError(f"{path} cannot be read as JSON: {one_line(e)}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} holds a JSON {type(config).__name__}; a ved config.json is an object")
    return config


def load_weights(folder: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    path = Path(folder) / WEIGHTS
    try:
        tensors = load(path.read_bytes())
    except (OSError, SafetensorError, ValueError) as e:  # missing, truncated, garbled, huge header
        raise ModelError(f"{path} is not a readable safetensors file: {one_line(e)}") from None
    return {k: v.to(device) for k, v in tensors.items()}
