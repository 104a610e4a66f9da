"""Loading trained models and sampling digits from captions: the stable user contract, as a
diffusers pipeline is used.

import ved
pipe = ved.load()                                  # the default model, on the CPU, drawing in fp32
out = pipe(prompt=["three plus two"], num_images_per_prompt=8, generator=0)
out.images, out.digits, out.seed                   # eight PIL images, [5], 0
pipe("nine", output_type="mnist").images           # (1, 8, 28, 28) uint8, 0 = background, 255 = ink
pipe("nine", temperature=0.8)                      # a sampling setting overridden for one call
pipe.same_style(n=2)                               # (2, 10, 28, 28): one handwriting, every digit
pipe.save_pretrained("folder")                     # weights, config.json and a model card
"""

from __future__ import annotations

import re
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import captions, card, checkpoint, models, vocab
from . import captions as captions_module  # `captions` is also a call's argument
from . import config as configs
from .about import DEFAULT_MODEL, WEIGHTS_DIR, shipped_models  # noqa: F401 (pipeline.* for callers)
from .checkpoint import ModelError
from .errors import VedError, is_whole, one_line, shown, shown_value
from .images import DEFAULT_N, as_uint8, check_image_count
from .precision import CHOICES as PRECISIONS
from .precision import autocast_for
from .precision import resolve as resolve_precision


class ArgumentError(VedError):
    """An argument of the wrong type or out of range; the message is one line."""


class StrictRefusal(captions.CaptionError):
    """A caption of known words outside the model's grammar (no value, or another family);
    strict=False draws it anyway."""


MAX_N = 10_000
CHUNK_IMAGES = 4096  # images drawn per forward pass: memory stays bounded however large the request
OUTPUT_TYPES = ("pil", "np", "pt", "mnist")
MAX_SEED = 2**63 - 1


HUB_REPO = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
HUB_FILES = [checkpoint.CONFIG, checkpoint.WEIGHTS, card.CARD]  # never code: a repo's .py stays unread


def resolve_model(name_or_dir: str | Path | None, allow_paths: bool = True) -> Path:
    """A shipped model's folder, a model folder, or (with paths allowed) a Hugging Face Hub
    repository `owner/name` fetched through huggingface_hub, its config, weights and card only."""
    name = str(name_or_dir or DEFAULT_MODEL)
    if name in shipped_models():
        return WEIGHTS_DIR / name
    if allow_paths and _is_model_folder(Path(name)):
        return Path(name)
    if allow_paths and HUB_REPO.fullmatch(name) and not Path(name).exists():
        return hub_folder(name)
    where = " or a run folder holding config.json and model.safetensors" if allow_paths else ""
    raise ModelError(
        f"unknown model '{captions.shown(name, 60)}'; choose one of: {', '.join(shipped_models())}{where}"
    )


def hub_folder(repo: str) -> Path:
    """The local folder of a Hub repository's config, weights and card (downloaded, or from the
    cache; HF_HUB_OFFLINE=1 reads the cache only); ModelError in one line if there is none."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelError(
            f"'{repo}' is no shipped model or folder; to load it from the Hugging Face Hub, "
            "pip install huggingface_hub (or ved[hub])"
        ) from None
    try:
        folder = Path(snapshot_download(repo, allow_patterns=HUB_FILES, library_name="ved"))
    except Exception as e:  # the library's own kinds: not found, offline, no access, network
        raise ModelError(
            f"'{shown(repo, 100)}' is no shipped model or model folder here, and as a Hub repository it "
            f"cannot be had: {type(e).__name__}: {shown(one_line(e), 200)}"
        ) from None
    if not _is_model_folder(folder):
        raise ModelError(f"Hub repository '{repo}' holds no ved model (config.json and model.safetensors)")
    return folder


def _is_model_folder(path: Path) -> bool:
    try:
        return (path / checkpoint.CONFIG).is_file() and (path / checkpoint.WEIGHTS).is_file()
    except (OSError, ValueError):  # a name no file system takes (a NUL byte, too long)
        return False


def device_of(name) -> torch.device:
    """A device as torch names one: "cpu", "cuda", "cuda:N", a torch.device, or an int N (cuda:N, as
    torch reads it); ModelError in one line for any other, or a CUDA device this machine lacks."""
    if name is None:
        return torch.device("cpu")
    if isinstance(name, int) and not isinstance(name, bool) and name >= 0:
        name = f"cuda:{name}"
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise ModelError(
            f"device must be a name such as 'cpu' or 'cuda:0' or a torch.device, got {type(name).__name__}"
        )
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps") or name.strip() != name:
        raise ModelError(
            f"unknown device '{shown(name, 40)}'; use cpu, cuda[:N] or mps ({machine_devices()})"
        )
    if device.type == "mps" and not (torch.backends.mps.is_available()):
        raise ModelError(f"--device mps: this machine has no Apple GPU; it has {machine_devices()}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(
            f"--device {shown(name, 40)}: this torch build or machine has no CUDA device; "
            f"it has {machine_devices()}"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ModelError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def machine_devices() -> str:
    """The devices this machine and torch build offer, as --device names them."""
    found = ["cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    return ", ".join(found + (["mps"] if torch.backends.mps.is_available() else []))


def load_generator(folder: Path, device="cpu") -> torch.nn.Module:
    """The generator saved in `folder`, in eval mode (read_generator, for its model only)."""
    return read_generator(folder, device)[0]


def read_generator(folder: Path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """The generator saved in `folder`, in eval mode, and its resolved config; ModelError in one line
    for any broken folder (a folder may come from anywhere: nothing in it is trusted before it has
    been checked). Loading flows down once: the folder is read (both files, once), its config
    resolved, the model built, the tensors checked and loaded, and a test draw made."""
    found = checkpoint.read_model_folder(folder, device)
    config = configs.of_folder_config(found.config, folder)
    try:
        model = configs.build(config)
    except VedError as e:
        raise ModelError(f"{Path(folder) / checkpoint.CONFIG}: {one_line(e)}") from None
    _load_weights(model, found.weights, Path(folder) / checkpoint.WEIGHTS)
    model = model.to(device).eval()
    canary_draw(model, config, folder)
    return model, config


def _load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """A folder's tensors into `model`: each of the dtype and shape the architecture has (a
    float64 tensor would be cast on the way in, and 1e300 becomes inf), then every weight and buffer
    finite as the model holds it."""
    expected = model.state_dict()
    for name, tensor in weights.items():
        if name in expected and tensor.dtype != expected[name].dtype:
            raise ModelError(
                f"{path}: '{shown(name, 60)}' is {str(tensor.dtype).removeprefix('torch.')}; "
                f"this model holds it as {str(expected[name].dtype).removeprefix('torch.')}"
            )
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:  # missing, unexpected or wrongly shaped tensors
        raise ModelError(f"{path} does not fit its config.json: {_first_mismatch(str(e))}") from None
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelError(
                f"{path} holds non-finite values (NaN or inf) in '{shown(name, 60)}'; "
                "a model with them draws nothing"
            )


CANARY_SEED = 0


def digit_captions(config: dict | None) -> list[str]:
    """One training caption for each digit, 0 first, that names it to a model trained on `config`
    (bare digit words without one)."""
    pool = captions.pool_for(config["data"], "train") if config else captions.label_pool()
    return list(captions.first_per_digit(pool).values())


@torch.no_grad()
def canary_draw(model, config: dict, folder: Path) -> None:
    """Two images of each digit, drawn at load with the folder's own sampling settings: a folder
    whose weights are finite but still draw NaN, inf or blank images (weights that overflow once
    multiplied, a decoder of zeros) is refused here, not found out by a user's empty grid."""
    tokens, lengths = vocab.encode(digit_captions(config))
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(CANARY_SEED)
    images = model.generate(tokens.to(device), lengths.to(device), 2, g, **config["sample"]).float()
    why = None
    if not torch.isfinite(images).all():
        why = "non-finite pixels (NaN or inf)"
    elif images.shape[-2] != 28 or images.shape[-1] not in (28, 56) or images.amin() < 0 or images.amax() > 1:
        why = "images that are not 28x28 pixels (or 28x56 strips) in [0, 1]"
    elif (images[..., -28:].amax((-2, -1)) - images[..., -28:].amin((-2, -1)) < 1 / 255).any():
        why = "blank images (one shade of grey)"
    if why:
        raise ModelError(
            f"{Path(folder) / checkpoint.WEIGHTS}: a test draw at load gave {why}; "
            "this folder cannot draw digits"
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
    _load_weights(judge, checkpoint.load_weights(folder, device), folder / checkpoint.WEIGHTS)
    # channels_last: the same features to float rounding, twice as fast on a CPU (docs/speed.md)
    judge.to(device, memory_format=torch.channels_last).eval()
    for p in judge.parameters():
        p.requires_grad_(False)
    return judge


class Pipeline:
    """A trained generator with its tokenizer: captions in, digit images out.

    `config`: the model's resolved config (config.py). Its [sample] table gives the sampling settings
    a call uses unless it overrides them. Its [data] family is the caption family the model was
    trained on: by default a caption is drawn only if the grammar gives it a value and it belongs to
    that family (any family for `mixed`); `strict=False` draws any caption of known words, and warns
    that it did."""

    def __init__(
        self,
        model: torch.nn.Module,
        config: dict | None = None,
        name: str = "",
        device="cpu",
        precision: str = "fp32",
    ):
        self.model, self.name, self.device = model.eval(), name, torch.device(device)
        self.precision = check_precision(precision)
        self.config = config
        self.family = trained_family(config) if config else None
        self.settings = dict(config["sample"]) if config else type(model).sample_defaults()
        self.last_seed: int | None = None  # the seed of the last call: any result can be drawn again

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return (
            f"Pipeline(model={self.name or type(self.model).__name__!r}, family={self.family!r}, "
            f"device='{self.device}', precision={self.precision!r}, {settings})"
        )

    def to(self, *targets) -> Pipeline:
        """The pipeline on another device and/or in another dtype, as diffusers' and torch's .to:
        `pipe.to("cuda")`, `pipe.to(torch.bfloat16)`, `pipe.to("cuda", torch.float32)`; moved in
        place and returned. A dtype sets what the images are drawn in (`precision`)."""
        for target in targets:
            if isinstance(target, torch.dtype):
                self.precision = precision_of(target)
            else:
                self.device = device_of(target)
                self.model.to(self.device)
        return self

    @classmethod
    def from_pretrained(cls, name_or_dir, **options) -> Pipeline:
        """As diffusers names it: `ved.load` (a shipped name, a folder, or a Hub repository)."""
        return load(name_or_dir, **options)

    def save_pretrained(self, folder) -> None:
        """Write this model as a folder that `ved.load(folder)` and `from_pretrained` read: its
        weights (safetensors), config.json (with the sampling settings this pipeline uses) and a
        model card (README.md with the Hub's metadata), ready to upload to the Hub as it is."""
        if self.config is None:
            raise ArgumentError("save_pretrained needs the model's config: load the pipeline with ved.load")
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise ArgumentError(f"save_pretrained: '{shown(folder, 100)}' is a file; give a folder")
        config = {**self.config, "sample": dict(self.settings)}
        checkpoint.save_model(folder, self.generator_module, config)
        checkpoint.atomic_write_text(folder / card.CARD, card.model_card(config, self.name or folder.name))

    @property
    def dtype(self) -> torch.dtype:
        """What the images are drawn in: torch.bfloat16 (under autocast) or torch.float32."""
        return DTYPES[resolve_precision(self.precision, self.device)]

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
                captions.check_caption(c, self.family, numbers=self.numbers)
            except captions.CaptionError as e:
                if strict:
                    raise StrictRefusal(str(e)) from None
                loose.append((c, str(e)))
        return caption_list, loose

    @torch.no_grad()
    def __call__(
        self,
        prompt=None,
        num_images_per_prompt: int | None = None,
        generator: int | torch.Generator | list | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        strict: bool = True,
        progress: bool = False,
        captions=None,
        n: int | None = None,
        **settings,
    ):
        """`num_images_per_prompt` images (default 8) for each caption of `prompt` (a str or any
        iterable of str), as a diffusers pipeline is called.

        generator: a seed, a torch.Generator, or None for a fresh seed; the seed is kept in
        `last_seed` and in the output (None for a Generator). Or, as in diffusers, a list of seeds or
        Generators, one per caption: each caption then draws from its own, and gets what a call for it
        alone would (up to float rounding: a batch's kernels may round the last bit differently).
        output_type: as diffusers has them, a caption's images one after another: "pil" a flat list of
        PIL images, "np" float32 (images, 28, 28, 1) in [0, 1], "pt" float32 (images, 1, 28, 28) in
        [0, 1]; and ved's own "mnist": uint8 (captions, n, 28, 28), 0 = background.
        return_dict: True gives a VedPipelineOutput (`.images`, `.digits`, `.seed`), False the tuple
        (images, digits). `captions` and `n` are the older names of `prompt` and
        `num_images_per_prompt`, kept for one release.
        settings: the model's sampling settings (e.g. temperature; see `settings`) for this call.
        The images are drawn in `precision` ("fp32", "bf16" under torch.autocast, or "auto": bf16
        on a CPU that computes it fast), the caption's class always in fp32. At most MAX_IMAGES
        images a call, drawn CHUNK_IMAGES at a time. CaptionError (a VedError) for a refused
        caption, ArgumentError for any other bad argument."""
        prompt = _one_of("prompt", prompt, "captions", captions)
        if prompt is None:
            raise ArgumentError("prompt: give a caption or a list of captions")
        count = _one_of("num_images_per_prompt", num_images_per_prompt, "n", n)
        caption_list, loose = self.check(prompt, strict)
        n, output_type = check_n(DEFAULT_N if count is None else count), check_output_type(output_type)
        if not isinstance(return_dict, bool):
            raise ArgumentError(f"return_dict must be True or False, got {type(return_dict).__name__}")
        check_image_count(len(caption_list), n, ArgumentError)
        if isinstance(generator, (list, tuple)):
            if len(generator) != len(caption_list):
                raise ArgumentError(
                    f"generator: a list needs one seed or Generator per caption ({len(caption_list)}), "
                    f"got {len(generator)}"
                )
            g = [self._generator(one) for one in generator]
            self.last_seed = None
        else:
            g = self._generator(generator)
        settings = self.resolve_settings(settings)
        if loose:
            warnings.warn(
                f"drawing {len(loose)} caption(s) outside the model's grammar (strict=False), "
                f"e.g. '{captions_module.shown(loose[0][0], 60)}'; their digits mean nothing",
                stacklevel=3,
            )
        images = self._draw(
            caption_list, n, g, settings, floats=output_type in ("np", "pt"), progress=progress
        )
        refused = {c for c, _ in loose}
        value = captions_module.number if self.numbers else captions_module.parse
        digits = [None if c in refused else value(c) for c in caption_list]
        images = as_output(images, output_type)
        return VedPipelineOutput(images, digits, self.last_seed) if return_dict else (images, digits)

    @property
    def numbers(self) -> bool:
        """Whether the model draws numbers past nine (as strips of digit cells, 28 x 56)."""
        return bool(self.config.get("data", {}).get("numbers"))

    def _draw(self, caption_list: list[str], n: int, g, settings: dict, floats: bool, progress: bool):
        """(captions, n, 28, 28 x cells): uint8 as each chunk comes (a large job holds a quarter as
        much), or float32 in [0, 1] when floats are asked for. A numbers model's chunks may come
        narrower than the widest (one-digit captions only): right-aligned, blank to the left."""
        width = 28 * (2 if self.numbers else 1)
        images = torch.zeros(
            (len(caption_list), n, 28, width), dtype=torch.float32 if floats else torch.uint8
        )
        step = max(1, CHUNK_IMAGES // n)  # captions per forward pass
        per_pass = min(n, CHUNK_IMAGES)  # n > CHUNK_IMAGES: a caption's images in several passes
        chunks = [(lo, j) for lo in range(0, len(caption_list), step) for j in range(0, n, per_pass)]
        autocast = autocast_for(resolve_precision(check_precision(self.precision), self.device), self.device)
        for lo, j in tqdm(chunks, desc="drawing", leave=False, disable=not progress or len(chunks) < 2):
            tokens, lengths = vocab.encode(caption_list[lo : lo + step])
            chunk_g = g[lo : lo + step] if isinstance(g, list) else g
            m = min(per_pass, n - j)
            with torch.autocast(**autocast):
                drawn = self._generate(
                    tokens.to(self.device), lengths.to(self.device), m, chunk_g, **settings
                )
            drawn = drawn.float().cpu()
            images[lo : lo + step, j : j + m, :, width - drawn.shape[-1] :] = (
                drawn if floats else as_uint8(drawn)
            )
        if self.numbers and not images[..., : width - 28].any():  # one-digit captions only: one cell
            images = images[..., width - 28 :].contiguous()
        return images

    def generate(
        self, caption_list, n: int = DEFAULT_N, seed: int | None = None, strict: bool = True
    ) -> np.ndarray:
        """The call above as ved's uint8 array (captions, n, 28, 28), seeded by a number: what the
        study, the benchmarks and `ved sample` use."""
        return self(
            caption_list, n, generator=check_seed(seed), output_type="mnist", return_dict=False, strict=strict
        )[0]

    @torch.no_grad()
    def same_style(
        self,
        n: int = 1,
        generator: int | torch.Generator | None = None,
        output_type: str = "mnist",
        prompt=None,
        **settings,
    ):
        """Same handwriting, every digit: `n` rows, each one style drawn as each of the ten digits:
        (n, 10, 28, 28) uint8 for "mnist", a row's ten images one after another for the other output
        types. A model whose latent does not part style from content (the paper's) shows each digit's
        latent mean. The digits are named by one training caption each; `prompt` names others
        instead (a numbers model's strips, (n, captions, 28, 56), write every number in one hand)."""
        n, output_type = check_n(n), check_output_type(output_type)
        caption_list = digit_captions(self.config) if prompt is None else self.check(prompt)[0]
        g, settings = self._generator(generator), self.resolve_settings(settings)
        tokens, lengths = vocab.encode(caption_list)
        images = self.generator_module.same_style(
            tokens.to(self.device), lengths.to(self.device), n, g, **settings
        )
        return as_output(images.float().cpu(), output_type)

    def compile(self, **options) -> Pipeline:
        """Compile the model's drawing with torch.compile (its options, e.g. mode="reduce-overhead");
        the first call after it is slow while it compiles. Returned, as torch's .compile is."""
        self._compiled = torch.compile(self.generator_module.generate, **options)
        return self

    def _generate(self, *args, **settings):
        compiled = getattr(self, "_compiled", None)
        return (compiled or self.generator_module.generate)(*args, **settings)

    @property
    def generator_module(self) -> torch.nn.Module:
        """The model itself, also where `pipe.model` was replaced by torch.compile(pipe.model)."""
        return getattr(self.model, "_orig_mod", self.model)

    def _generator(self, generator) -> torch.Generator:
        if isinstance(generator, torch.Generator):
            self.last_seed = None
            return generator
        seed = check_seed(generator)
        self.last_seed = secrets.randbits(63) if seed is None else seed
        return torch.Generator().manual_seed(self.last_seed)

    def resolve_settings(self, overrides: dict) -> dict:
        """The pipeline's sampling settings with `overrides`, each checked against the model's bounds;
        ArgumentError in one line naming the setting and what is allowed otherwise."""
        try:
            settings = configs.check_sample(
                type(self.generator_module), {**self.settings, **overrides}, table=""
            )
            self.generator_module.check_settings(**settings)
        except ValueError as e:
            raise ArgumentError(one_line(e)) from None
        return settings


def as_output(images: torch.Tensor, output_type: str):
    """(rows, n, 28, 28 x cells) images, floats in [0, 1] or uint8 already, as the output type asks:
    "mnist" uint8 (rows, n, 28, 28); as diffusers has them, a row's images one after another,
    "np" float32 (images, 28, 28, 1), "pt" float32 (images, 1, 28, 28), "pil" PIL images."""
    if output_type in ("np", "pt"):
        floats = images.float() / 255 if images.dtype == torch.uint8 else images
        flat = floats.reshape(-1, 1, *floats.shape[-2:])
        return flat if output_type == "pt" else flat.permute(0, 2, 3, 1).numpy()
    array = (images if images.dtype == torch.uint8 else as_uint8(images)).numpy()
    if output_type == "mnist":
        return array
    from PIL import Image  # matplotlib's dependency; only this output needs it

    return [Image.fromarray(im) for im in array.reshape(-1, *array.shape[-2:])]  # uint8, 2-D: mode "L"


@dataclass
class VedPipelineOutput:
    """What a call returns, as diffusers' pipeline outputs: `images` in the output type asked for,
    `digits` each caption's digit under the grammar (None for one drawn with strict=False outside
    it), `seed` the call's seed (None where Generators were given). `out[0]` is `out.images`."""

    images: list | np.ndarray | torch.Tensor
    digits: list[int | None]
    seed: int | None

    def __getitem__(self, index):
        return self.to_tuple()[index]

    def to_tuple(self) -> tuple:
        return self.images, self.digits


def _one_of(name: str, value, old_name: str, old_value):
    """A setting given by its name or by its older name, kept for one release; not both."""
    if old_value is not None and value is not None:
        raise ArgumentError(f"give {name} or {old_name} (its older name), not both")
    return value if value is not None else old_value


def check_output_type(output_type) -> str:
    if output_type not in OUTPUT_TYPES:
        raise ArgumentError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r:.40}")
    return output_type


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


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def precision_of(dtype) -> str:
    """A torch dtype as ved's precision; ArgumentError for one ved does not draw in."""
    for name, known in DTYPES.items():
        if dtype == known:
            return name
    raise ArgumentError(
        f"torch_dtype {shown_value(dtype)}: ved draws in torch.float32 or torch.bfloat16 (under autocast)"
    )


def check_precision(setting) -> str:
    if setting not in PRECISIONS:
        raise ArgumentError(f"precision must be one of {', '.join(PRECISIONS)}, got {shown_value(setting)}")
    return setting


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


def load(
    name_or_dir: str | Path | None = None,
    device: str = "cpu",
    allow_paths: bool = True,
    precision: str | None = None,
    torch_dtype: torch.dtype | None = None,
) -> Pipeline:
    """The pipeline for a shipped model's name or a run folder; ModelError in one line if it cannot be.
    `precision` ("fp32", "bf16" or "auto"; see Pipeline.__call__) or, as diffusers names it,
    `torch_dtype` (torch.float32 or torch.bfloat16): what images are drawn in; fp32 by default."""
    if torch_dtype is not None:
        if precision is not None and precision != precision_of(torch_dtype):
            raise ArgumentError(f"precision={precision!r} and torch_dtype={torch_dtype} disagree; give one")
        precision = precision_of(torch_dtype)
    precision = check_precision(precision or "fp32")
    folder = resolve_model(name_or_dir, allow_paths)
    dev = device_of(device)
    model, config = read_generator(folder, dev)
    return Pipeline(
        model,
        config,
        name=str(name_or_dir or DEFAULT_MODEL),
        device=dev,
        precision=precision,
    )
