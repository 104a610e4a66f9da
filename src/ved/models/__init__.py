"""Model families. Each is an nn.Module built from its config dict, with
loss(batch) -> dict of scalars and generate(tokens, lengths, n, generator) -> images in [0, 1]."""
import inspect

from .cvae import ConditionalVAE
from .judge import Judge
from .paper_ved import PaperVED

GENERATORS = {"paper_ved": PaperVED, "cvae": ConditionalVAE}


def build(config: dict):
    """A generative model from the [model] table of a config."""
    kind = config.get("family", "paper_ved")
    if kind not in GENERATORS:
        raise ValueError(f"unknown model family '{kind}'; choose one of: {', '.join(GENERATORS)}")
    cls = GENERATORS[kind]
    allowed = list(inspect.signature(cls).parameters)
    unknown = [k for k in config if k != "family" and k not in allowed]
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}' in [model] for family '{kind}'; allowed: {', '.join(allowed)}")
    return cls(**{k: v for k, v in config.items() if k != "family"})


__all__ = ["ConditionalVAE", "Judge", "PaperVED", "GENERATORS", "build"]
