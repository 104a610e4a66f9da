"""Checkpoints: a folder with model.safetensors + config.json (+ optimizer state), written atomically."""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save

WEIGHTS, CONFIG, TRAIN_STATE = "model.safetensors", "config.json", "train_state.pt"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: a reader sees the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; keep the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_model(folder: Path, model: torch.nn.Module, config: dict, train_state: dict | None = None) -> None:
    """Weights and config; the training state goes last so that it never points past the weights."""
    folder = Path(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS, save(tensors))
    atomic_write_text(folder / CONFIG, json.dumps(config, indent=2, sort_keys=True))
    if train_state is not None:
        save_train_state(folder, train_state)


def save_train_state(folder: Path, train_state: dict) -> None:
    buf = io.BytesIO()
    torch.save(train_state, buf)
    atomic_write_bytes(Path(folder) / TRAIN_STATE, buf.getvalue())


def load_config(folder: Path) -> dict:
    return json.loads((Path(folder) / CONFIG).read_text())


def load_weights(folder: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    return load_file(str(Path(folder) / WEIGHTS), device=str(device))


def load_train_state(folder: Path) -> dict | None:
    path = Path(folder) / TRAIN_STATE
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
