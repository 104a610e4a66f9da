"""Loading trained models and sampling digits from captions: the stable user contract.

    import ved
    images = ved.load("paper-arithmetic").generate(["three plus two"], n=8, seed=0)
    images.shape, images.dtype  # (1, 8, 28, 28) uint8, 0 = background, 255 = ink
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import checkpoint, models, vocab
from .models import caption_encoders

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "cvae-mixed"  # the best shipped generator: every caption family; see README "Beyond the paper"


class ModelError(ValueError):
    """A model name or folder that cannot be loaded; the message is one line."""


def shipped_models() -> list[str]:
    """Names of the generators shipped in the package (the judge is not one)."""
    return sorted(p.name for p in WEIGHTS_DIR.iterdir()
                  if (p / checkpoint.CONFIG).exists() and p.name != "judge")


def resolve_model(name_or_dir: str | Path | None, allow_paths: bool = True) -> Path:
    name = str(name_or_dir or DEFAULT_MODEL)
    if name in shipped_models():
        return WEIGHTS_DIR / name
    path = Path(name)
    if allow_paths and (path / checkpoint.CONFIG).exists() and (path / checkpoint.WEIGHTS).exists():
        return path
    where = " or a run folder holding config.json and model.safetensors" if allow_paths else ""
    raise ModelError(f"unknown model '{name}'; choose one of: {', '.join(shipped_models())}{where}")


def device_of(name: str | None) -> torch.device:
    name = name or "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {name}: this torch build or machine has no CUDA device; use --device cpu")
    if not (name == "cpu" or name.startswith("cuda")):
        raise ModelError(f"unknown device '{name}'; use cpu or cuda[:N]")
    return torch.device(name)


def load_generator(folder: Path, device="cpu") -> torch.nn.Module:
    model_config = checkpoint.load_config(folder)["model"]
    if model_config.get("caption_encoder") == "routed" and "experts" not in model_config:
        model_config = {**model_config, "experts": caption_encoders.UNRECORDED_EXPERTS}
    model = models.build(model_config)
    model.load_state_dict(checkpoint.load_weights(folder, device))
    return model.to(device).eval()


def load_judge(folder: Path | None = None, device="cpu") -> models.Judge:
    """The shipped judge, frozen, in eval mode."""
    folder = Path(folder or WEIGHTS_DIR / "judge")
    if not (folder / checkpoint.WEIGHTS).exists():
        raise ModelError(f"no judge weights in {folder}; train them with `ved judge train`")
    judge = models.Judge()
    judge.load_state_dict(checkpoint.load_weights(folder, device))
    judge.to(device).eval()
    for p in judge.parameters():
        p.requires_grad_(False)
    return judge


class Pipeline:
    """A trained generator with its tokenizer: captions in, uint8 digit images out."""

    def __init__(self, model: torch.nn.Module, name: str = "", device="cpu"):
        self.model, self.name, self.device = model.eval(), name, torch.device(device)

    @torch.no_grad()
    def generate(self, caption_list: list[str] | str, n: int = 16, seed: int | None = 0) -> np.ndarray:
        """(len(captions), n, 28, 28) uint8 in MNIST convention; CaptionError on a bad caption."""
        if isinstance(caption_list, str):
            caption_list = [caption_list]
        if not 1 <= n <= 10_000:
            raise ValueError(f"n must be between 1 and 10000, got {n}")
        for c in caption_list:
            vocab.tokenize(c)  # every caption is checked before any work is done
        if not caption_list:
            return np.zeros((0, n, 28, 28), dtype=np.uint8)
        tokens, lengths = vocab.encode(caption_list)
        g = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
        images = self.model.generate(tokens.to(self.device), lengths.to(self.device), n, g)
        return (images * 255).round().to(torch.uint8).cpu().numpy()


def load(name_or_dir: str | Path | None = None, device: str = "cpu", allow_paths: bool = True) -> Pipeline:
    folder = resolve_model(name_or_dir, allow_paths)
    dev = device_of(device)
    return Pipeline(load_generator(folder, dev), name=str(name_or_dir or DEFAULT_MODEL), device=dev)
