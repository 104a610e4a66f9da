"""Model families. Each is an nn.Module built from its config dict, with
loss(batch) -> dict of scalars and generate(tokens, lengths, n, generator) -> images in [0, 1]."""
import inspect
import math

from ..errors import is_whole, one_line, shown, shown_value
from .cvae import ConditionalVAE
from .judge import Judge
from .paper_ved import PaperVED

GENERATORS = {"paper_ved": PaperVED, "cvae": ConditionalVAE}
MAX_WHOLE = 100_000  # layer widths and step counts: far above any sensible model, below a memory crash


def check_config(config) -> type:
    """The model class a [model] table names, its keys and the type and range of each value checked
    against the constructor's defaults: ValueError in one line before anything is built."""
    if not isinstance(config, dict):
        raise ValueError(f"[model] must be a table of settings, got {type(config).__name__}")
    kind = config.get("family", "paper_ved")
    if not isinstance(kind, str) or kind not in GENERATORS:
        raise ValueError(f"[model] family = {shown_value(kind)}; choose one of: {', '.join(GENERATORS)}")
    cls = GENERATORS[kind]
    params = inspect.signature(cls).parameters
    for key, value in config.items():
        if key == "family":
            continue
        if key not in params:
            raise ValueError(f"unknown key '{shown(key, 40)}' in [model] for family '{kind}'; "
                             f"allowed: {', '.join(params)}")
        _check_value(key, value, params[key].default)
    return cls


def _check_value(key: str, value, default) -> None:
    where = f"[model] {key} = {shown_value(value)}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where}; allowed: true or false")
    elif isinstance(default, int):
        low = 0 if default == 0 or key.endswith("_steps") else 1  # step counts and settings off at 0; sizes >= 1
        if not is_whole(value, low, MAX_WHOLE):
            raise ValueError(f"{where}; allowed: a whole number from {low} to {MAX_WHOLE:,}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}; allowed: a number >= 0")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{where}; allowed: a name in quotes")
    elif value is not None and not (isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        raise ValueError(f"{where}; allowed: a table of names")


def build(config: dict):
    """A generative model from the [model] table of a config."""
    cls = check_config(config)
    try:
        return cls(**{k: v for k, v in config.items() if k != "family"})
    except (AssertionError, RuntimeError) as e:  # torch's own checks, e.g. a width that heads do not divide
        raise ValueError(f"[model] cannot be built: {one_line(e)}") from None


__all__ = ["ConditionalVAE", "Judge", "PaperVED", "GENERATORS", "build", "check_config"]
