"""Configs: the one place where they are read, defaulted and checked.

A config is four tables (and a `name`):

    [model]   kind = a key of models.GENERATORS ("paper_ved", "cvae", ...), then the fields of
              that model class's Config, each with its bounds (rules.py)
    [data]    which captions (the Data schema below)
    [train]   how the loop trains (Train below)
    [sample]  the model's sampling settings: the keyword-only arguments of its `generate`;
              these are the defaults that a call may override
    [provenance]  in a model folder only: ved version, commit, training date, MNIST hash, metrics

Configs in TOML (shipped ones in ved/configs/, found by name) and a model
folder's config.json both go through `resolve`, so a folder says nothing a
config could not. Every error is one line naming the key and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import about, captions, checkpoint, files, models
from .about import VERSION
from .errors import ConfigError, is_number, is_whole, one_line, shown, shown_value
from .precision import CHOICES as PRECISIONS
from .rules import check_table, counts, flag, number, one_of, texts, whole, wholes

SHIPPED = Path(__file__).parent / "configs"


@dataclass
class Data:
    family: str = one_of("arithmetic", lambda: captions.FAMILIES)  # or mixed: captions.MIXED at once
    caption_seed: int = whole(0, 0, 2**31 - 1)  # seeds the logic pools and the arithmetic test captions
    logic_k: list = counts((1, 3), 1, 8)  # distractor counts for logic captions in train and valid
    logic_test_k: list | None = counts(None, 1, 8)  # for logic test captions (None: as logic_k)
    train_max_ops: int = whole(
        1, 1, 4
    )  # arithmetic: most operations in a training caption; tests have up to 5
    hold_out_pairs: int = whole(
        0, 0, 50
    )  # arithmetic: one-operation captions kept out of training, to test on
    # arithmetic, one split at a time (captions.arithmetic_pool says exactly what leaves training):
    hold_out_captions: list | None = texts()  # these, named
    # a digit word seen only bare in training
    add_primitive: str | None = one_of(None, captions.DIGIT_WORDS, optional=True)
    # a digit no training caption but its word evaluates to
    hold_out_result: int | None = field(default=None, metadata={"whole": (0, 9), "optional": True})
    # arithmetic or mixed: numbers 10 to captions.MAX_NUMBER too, drawn as strips of digit cells by a
    # model with [model] cells = 2 (captions.number_pool)
    numbers: bool = flag(False)
    hold_out_numbers: list | None = wholes(10, captions.MAX_NUMBER)  # no training caption makes these
    # 0: all 50,000 training images; N: the first N only, for smoke runs (ved reproduce --quick, tests)
    train_images: int = whole(0, 0, 50_000)


@dataclass
class Train:
    batch_size: int = whole(128, 1, 50_000)
    lr: float = number(1e-3, 1e-8, 10.0)  # Adam
    # the rate over the run's max_epochs: held ("constant"), or falling to 0 at the last step in a
    # straight line ("linear") or a half cosine ("cosine")
    schedule: str = one_of("constant", ("constant", "linear", "cosine"))
    # the rate rising in a straight line from lr / warmup_steps to the schedule's over the first steps:
    # Adam's first steps move every weight by about lr whatever its gradient, and at full rate they
    # killed the image encoder of a conditional VAE (docs/conditional-vae.md)
    warmup_steps: int = whole(0, 0, 10_000_000)
    max_epochs: int = whole(200, 1, 100_000)
    patience: int = whole(10, 1, 100_000)  # epochs without a better validation score before stopping
    early_stop_on: str = one_of(
        "recon", ("recon", "loss")
    )  # the validation loss term that picks the best epoch
    min_epochs: int = whole(0, 0, 100_000)
    # > 0: stop at the step where the training time reaches this many seconds, and validate that
    # epoch's weights (under torchrun: after the epoch); a CPU budget, as the peers get the default
    # model's; such a run ends where the machine's speed puts it
    max_seconds: int = whole(0, 0, 10_000_000)
    seed: int = whole(0, 0, 2**63 - 1)
    threads: int = whole(0, 0, 1024)  # torch CPU threads; 0 leaves torch's default
    # the training step's forward under bf16 autocast: "auto" where that was measured faster (a CPU
    # with AVX-512 bf16 or AMX), fp32 elsewhere, a CUDA GPU included (docs/speed.md)
    precision: str = one_of("fp32", PRECISIONS)
    eval_images: int = whole(2000, 1, 10_000)  # validation (and train) images generated and judged each epoch
    ema: float = number(
        0.0, 0.0, 1.0, below_high=True, what="a decay"
    )  # > 0: validate, keep and ship a moving average
    # true: the training step (forward and backward) through torch.compile, with CUDA graphs on a
    # GPU, whose small steps otherwise wait on kernel launches; on 2 CPU cores it gained nothing
    # (docs/speed.md), and the first steps of each batch size pay for compiling
    compile: bool = flag(False)
    # true: a run that ends collapsed (train.collapse_of) is refused by `ved train` (exit 2, the
    # weights kept); false for smoke runs too short for any model to learn its digits
    check_collapse: bool = flag(True)


TABLES = {"data": Data, "train": Train}


def resolve(config: dict) -> dict:
    """Defaults overlaid with a config's tables, every value checked; ValueError in one line otherwise."""
    if not isinstance(config, dict):
        raise ConfigError(f"a config is a table of tables, got {type(config).__name__}")
    allowed = ["model", *TABLES, "sample", "provenance"]
    for table, values in config.items():
        if table == "name":  # the run's name (the config file's stem), kept with the weights
            if not isinstance(values, str):
                raise ConfigError(f"name = {shown_value(values)}; allowed: text")
        elif table not in allowed:
            raise ConfigError(f"unknown config table [{shown(table, 40)}]; allowed: {', '.join(allowed)}")
        elif not isinstance(values, dict):
            raise ConfigError(f"[{table}] must be a table of settings, got {shown_value(values)}")
    out = {"name": config["name"]} if "name" in config else {}
    if "provenance" in config:  # written by training (about.py) and by `ved reproduce --ship`
        out["provenance"] = about.check_provenance(config["provenance"], captions.FAMILIES, ConfigError)
    model = dict(config.get("model", {}))
    sample = dict(config.get("sample", {}))
    cls = model_class(model)
    out["model"] = check_model(model)
    for table, schema in TABLES.items():
        out[table] = check_table(table, schema, config.get(table, {}))
    out["sample"] = check_sample(cls, sample)
    check_numbers(out)
    if out["model"].get("caption_encoder") == "routed":  # recorded, so that a new default never changes it
        out["model"]["experts"] = out["model"].get("experts") or default_experts()
    return out


def check_numbers(config: dict) -> None:
    """[data] numbers and a model that draws strips ([model] cells = 2) go together, and held-out
    numbers must be drawable: refused here, before MNIST loads, in one line."""
    data, cells = config["data"], config["model"].get("cells", 1)
    if data["numbers"] != (cells == 2):
        raise ConfigError(
            "[model] cells = 2 draws numbers past nine and needs [data] numbers = true, and the other "
            f"way round; got cells = {cells}, numbers = {str(data['numbers']).lower()}"
        )
    if data["numbers"] and data["family"] not in ("arithmetic", "mixed"):
        raise ConfigError(f"[data] numbers = true needs arithmetic captions; got family = '{data['family']}'")
    if data["hold_out_numbers"]:
        if not data["numbers"]:
            raise ConfigError(
                "[data] hold_out_numbers holds numbers past nine out of training; it needs numbers = true"
            )
        try:
            captions.check_held_out_numbers(data["hold_out_numbers"])
        except captions.CaptionError as e:
            raise ConfigError(f"[data] {e}") from None


def default_experts() -> dict[str, str]:
    """The caption expert of each registered family (captions.REGISTRY; docs/conditional-vae.md)."""
    return {name: family.expert for name, family in captions.REGISTRY.items()}


def kind_of(table: dict):
    """A [model] table's kind: `kind`, or `family` as configs of 0.1 named it; the paper's VED if neither."""
    return table.get("kind", table.get("family", "paper_ved"))


def model_class(table) -> type:
    """The model class a [model] table names by `kind` (`family`, its older name, read for one release)."""
    if not isinstance(table, dict):
        raise ConfigError(f"[model] must be a table of settings, got {type(table).__name__}")
    kind = kind_of(table)
    if not isinstance(kind, str) or kind not in models.GENERATORS:
        raise ConfigError(
            f"[model] kind = {shown_value(kind)}; choose one of: {', '.join(models.GENERATORS)}"
        )
    return models.GENERATORS[kind]


def check_model(table: dict) -> dict:
    """The [model] table with its kind first, each key checked against the model class's Config."""
    cls = model_class(table)
    if "kind" in table and "family" in table:
        raise ConfigError("[model] has both kind and family; family is kind's older name, keep kind")
    kind = kind_of(table)
    values = {k: v for k, v in table.items() if k not in ("kind", "family")}
    for key in values:
        if key in cls.sample_defaults():
            raise ConfigError(f"[model] {shown(key, 40)} is a sampling setting; set it in [sample]")
    return {"kind": kind, **check_table("model", cls.Config, values)}


def check_sample(cls: type, settings: dict, table: str = "[sample] ") -> dict:
    """The model's sampling defaults overlaid with `settings`, each of the default's type and within
    the bounds the model class states (models/base.py `setting_bounds`)."""
    defaults = cls.sample_defaults()
    for key, value in settings.items():
        if key not in defaults:
            raise ConfigError(
                f"unknown sampling setting '{shown(key, 40)}' for {cls.__name__}; "
                f"allowed: {', '.join(defaults)}"
            )
        check_setting(cls, key, value, f"{table}{key} = {shown_value(value)}")
    return {**defaults, **settings}


def check_setting(cls: type, key: str, value, where: str) -> None:
    """One sampling setting against its bounds: a whole number where the default is one."""
    if key not in cls.setting_bounds:  # a model class that forgot to bound a setting refuses it
        raise ConfigError(f"{where}; {cls.__name__} states no bounds for '{key}'")
    low, high = cls.setting_bounds[key]
    if isinstance(cls.sample_defaults()[key], int):
        if not is_whole(value, low, high):
            raise ConfigError(f"{where}; allowed: a whole number from {low} to {high}")
    elif not is_number(value, low, high):
        raise ConfigError(f"{where}; allowed: a number from {low:g} to {high:g}")


def build(config: dict) -> models.Generator:
    """The model of a resolved config, its sampling settings checked against it."""
    model = models.build(config["model"])
    model.check_settings(**config["sample"])
    return model


def override(config: dict, change: str) -> None:
    """`model.channels=16`: config["model"]["channels"] = 16, the value read as TOML reads it (the
    experiments' and benchmarks' variants of a recipe); ConfigError in one line otherwise. The
    changed config is checked where it is built or trained."""
    key, sep, value = change.partition("=")
    table, dot, name = key.partition(".")
    if not (sep and dot and name and isinstance(config.get(table), dict)):
        raise ConfigError(f"{shown(change, 80)!r}: expected TABLE.KEY=VALUE, e.g. model.channels=16")
    config[table][name] = files.parse_toml(f"v = {value}", repr(shown(change, 80)), ConfigError)["v"]


def load(path_or_name) -> dict:
    """A TOML config file, or a shipped config by name (`cvae-arithmetic`), resolved and checked, its
    model built once to run the model's own checks; ValueError in one line naming the file otherwise."""
    path = Path(path_or_name)
    if not path.exists() and (SHIPPED / f"{path_or_name}.toml").is_file():
        path = SHIPPED / f"{path_or_name}.toml"
    if path.is_dir():
        raise ConfigError(
            f"config '{path}' is a folder; give a TOML file or a shipped config's name "
            f"({', '.join(shipped())})"
        )
    if not path.exists():
        raise ConfigError(
            f"config file '{shown(path, 200)}' not found; give a TOML file or a shipped config's name "
            f"({', '.join(shipped())})"
        )
    where = f"config '{shown(path, 200)}'"
    raw = files.parse_toml(
        files.read_text(path, files.MAX_CONFIG_BYTES, where, ConfigError), where, ConfigError
    )
    try:
        if "name" in raw:
            check_run_name(raw["name"])
        config = resolve(raw)
        with torch.random.fork_rng(devices=[]):  # built once to run the model's own checks; no RNG consumed
            build(config)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None
    config.setdefault("name", path.stem)
    return config


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_run_name(name) -> str:
    """A config's name as a run folder's name: a plain name, never a path."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
        raise ConfigError(
            f"name = {shown_value(name)}; allowed: a plain name of letters, digits, '.', '_' and '-' "
            "(at most 100, not starting with '.'), never a path"
        )
    return name


def shipped() -> list[str]:
    """Names of the configs shipped with ved."""
    return sorted(p.stem for p in SHIPPED.glob("*.toml"))


def of_folder(folder: Path) -> dict:
    """A model folder's config.json, resolved as a config is; checkpoint.ModelError in one line naming
    the file if it is not one (a folder may come from anywhere: nothing in it is trusted unchecked)."""
    return of_folder_config(checkpoint.load_config(folder), folder)


def of_folder_config(raw: dict, folder: Path) -> dict:
    """A config.json already read from `folder`, resolved as of_folder does."""
    where = Path(folder) / checkpoint.CONFIG
    if not isinstance(raw.get("model"), dict):
        raise checkpoint.ModelError(f"{where} has no [model] table; is this a ved model folder?")
    try:
        return resolve(raw)
    except ValueError as e:
        saved_by = raw.get("provenance", {}).get("ved") if isinstance(raw.get("provenance"), dict) else None
        which = (
            f" (saved by ved {shown(str(saved_by), 20)}; this is ved {VERSION})"
            if saved_by != VERSION
            else ""
        )
        raise checkpoint.ModelError(f"{where}: {one_line(e)}{which}") from None
