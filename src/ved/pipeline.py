"""Loading trained models and sampling digits from captions: the stable user contract.

import ved
images = ved.load("paper-arithmetic").generate(["three plus two"], n=8, seed=0)
images.shape, images.dtype  # (1, 8, 28, 28) uint8, 0 = background, 255 = ink
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from . import captions, checkpoint, models, vocab
from . import config as configs
from .checkpoint import ModelError
from .errors import VedError, is_whole, one_line

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "cvae-mixed"  # the best shipped generator: every caption family; see docs/conditional-vae.md


class ArgumentError(VedError):
    """An argument of the wrong type or out of range; the message is one line."""


class StrictRefusal(captions.CaptionError):
    """A caption of known words outside the model's grammar (no value, or another family);
    strict=False draws it anyway."""


MAX_N = 10_000
MAX_SEED = 2**63 - 1


def shipped_models() -> list[str]:
    """Names of the generators shipped in the package (the judge is not one)."""
    return sorted(
        p.name for p in WEIGHTS_DIR.iterdir() if (p / checkpoint.CONFIG).exists() and p.name != "judge"
    )


def resolve_model(name_or_dir: str | Path | None, allow_paths: bool = True) -> Path:
    name = str(name_or_dir or DEFAULT_MODEL)
    if name in shipped_models():
        return WEIGHTS_DIR / name
    if allow_paths and _is_model_folder(Path(name)):
        return Path(name)
    where = " or a run folder holding config.json and model.safetensors" if allow_paths else ""
    raise ModelError(
        f"unknown model '{captions.shown(name, 60)}'; choose one of: {', '.join(shipped_models())}{where}"
    )


def _is_model_folder(path: Path) -> bool:
    try:
        return (path / checkpoint.CONFIG).is_file() and (path / checkpoint.WEIGHTS).is_file()
    except (OSError, ValueError):  # a name no file system takes (a NUL byte, too long)
        return False


def device_of(name: str | None) -> torch.device:
    name = name or "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {name}: this torch build or machine has no CUDA device; use --device cpu")
    if not (name == "cpu" or name.startswith("cuda")):
        raise ModelError(f"unknown device '{name}'; use cpu or cuda[:N]")
    return torch.device(name)


def load_generator(folder: Path, device="cpu", config: dict | None = None) -> torch.nn.Module:
    """The generator saved in `folder`, in eval mode; ModelError in one line for any broken folder
    (a folder may come from anywhere: nothing in it is trusted before it has been checked)."""
    config = configs.of_folder(folder) if config is None else config
    try:
        model = configs.build(config)
    except ValueError as e:
        raise ModelError(f"{Path(folder) / checkpoint.CONFIG}: {one_line(e)}") from None
    _load_weights(model, folder, device)
    return model.to(device).eval()


def _load_weights(model: torch.nn.Module, folder: Path, device) -> None:
    weights = checkpoint.load_weights(folder, device)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:  # missing, unexpected or wrongly shaped tensors
        raise ModelError(
            f"{Path(folder) / checkpoint.WEIGHTS} does not fit its config.json: {_first_mismatch(str(e))}"
        ) from None
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelError(
                f"{Path(folder) / checkpoint.WEIGHTS} holds non-finite values (NaN or inf) "
                f"in '{name}'; a model with them draws nothing"
            )


def _first_mismatch(message: str) -> str:
    # torch lists every bad key on its own line after a heading; the first tells the story
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else (lines[0] if lines else "mismatched tensors")


def load_judge(folder: Path | None = None, device="cpu") -> models.Judge:
    """The shipped judge, frozen, in eval mode."""
    folder = Path(folder or WEIGHTS_DIR / "judge")
    if not (folder / checkpoint.WEIGHTS).exists():
        raise ModelError(f"no judge weights in {folder}; train them with `ved judge train`")
    judge = models.Judge()
    _load_weights(judge, folder, device)
    judge.to(device).eval()
    for p in judge.parameters():
        p.requires_grad_(False)
    return judge


class Pipeline:
    """A trained generator with its tokenizer: captions in, uint8 digit images out.

    `config`: the model's resolved config (config.py). Its [sample] table gives the sampling settings
    `generate` uses. Its [data] family is the caption family the model was trained on: by default a
    caption is drawn only if the grammar gives it a value and it belongs to that family (any family
    for `mixed`); `strict=False` draws any caption of known words, and warns that it did."""

    def __init__(self, model: torch.nn.Module, config: dict | None = None, name: str = "", device="cpu"):
        self.model, self.name, self.device = model.eval(), name, torch.device(device)
        self.config = config
        self.family = trained_family(config) if config else None
        self.settings = dict(config["sample"]) if config else type(model).sample_defaults()

    def check(self, caption_list, strict: bool = True) -> tuple[list[str], list[tuple[str, str]]]:
        """The captions as a list (read once), every one checked before any work, and (caption, why)
        for each one outside the model's grammar (drawn only with strict=False). Words outside
        the vocabulary are a CaptionError either way; with `strict`, the first caption outside the
        grammar is a StrictRefusal (a CaptionError) in one line."""
        if not isinstance(strict, bool):
            raise ArgumentError(f"strict must be True or False, got {type(strict).__name__}")
        caption_list, loose = caption_texts(caption_list), []
        for c in caption_list:
            captions.words(c)
            try:
                captions.check_caption(c, self.family)
            except captions.CaptionError as e:
                if strict:
                    raise StrictRefusal(str(e)) from None
                loose.append((c, str(e)))
        return caption_list, loose

    @torch.no_grad()
    def generate(self, caption_list, n: int = 16, seed: int | None = 0, strict: bool = True) -> np.ndarray:
        """(len(captions), n, 28, 28) uint8 in MNIST convention. `caption_list`: a str or any iterable
        of str. CaptionError (a VedError) for a refused caption, ArgumentError for a bad n or seed."""
        caption_list, loose = self.check(caption_list, strict)
        n, seed = check_n(n), check_seed(seed)
        if loose:
            warnings.warn(
                f"drawing {len(loose)} caption(s) outside the model's grammar (strict=False), "
                f"e.g. '{captions.shown(loose[0][0], 60)}'; their digits mean nothing",
                stacklevel=3,
            )
        if not caption_list:
            return np.zeros((0, n, 28, 28), dtype=np.uint8)
        tokens, lengths = vocab.encode(caption_list)
        g = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
        images = self.model.generate(tokens.to(self.device), lengths.to(self.device), n, g, **self.settings)
        return (images * 255).round().to(torch.uint8).cpu().numpy()


def caption_texts(caption_list) -> list[str]:
    """A str, or any iterable of str (a generator is read once), as a list; ArgumentError otherwise."""
    if isinstance(caption_list, str):
        return [caption_list]
    if isinstance(caption_list, (bytes, bytearray)):
        raise ArgumentError("captions must be text (str), got bytes; decode them first")
    try:
        items = list(caption_list)
    except TypeError:
        raise ArgumentError(
            f"captions must be a str or an iterable of str, got {type(caption_list).__name__}"
        ) from None
    for i, c in enumerate(items):
        if not isinstance(c, str):
            raise ArgumentError(f"caption {i + 1} must be text (str), got {type(c).__name__}")
    return items


def check_n(n) -> int:
    if not is_whole(n, 1, MAX_N):
        shown = repr(n) if isinstance(n, (int, float)) else type(n).__name__
        raise ArgumentError(f"n must be a whole number from 1 to {MAX_N}, got {shown}")
    return n


def check_seed(seed) -> int | None:
    if seed is not None and not is_whole(seed, 0, MAX_SEED):
        shown = repr(seed) if isinstance(seed, (int, float)) else type(seed).__name__
        raise ArgumentError(f"seed must be None or a whole number from 0 to 2**63-1, got {shown}")
    return seed


def trained_family(config: dict) -> str | None:
    """The caption family a model folder's config.json says it was trained on, if it names one."""
    data = config.get("data")
    family = data.get("family") if isinstance(data, dict) else None
    return family if family in captions.FAMILIES else None


def load(name_or_dir: str | Path | None = None, device: str = "cpu", allow_paths: bool = True) -> Pipeline:
    """The pipeline for a shipped model's name or a run folder; ModelError in one line if it cannot be."""
    folder = resolve_model(name_or_dir, allow_paths)
    dev = device_of(device)
    config = configs.of_folder(folder)
    return Pipeline(
        load_generator(folder, dev, config), config, name=str(name_or_dir or DEFAULT_MODEL), device=dev
    )
