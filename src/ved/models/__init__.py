"""Model families. Each generator is a models.base.Generator built from its [model] table (checked by
config.py), with loss(batch) -> dict of scalars and generate(tokens, lengths, n, generator, **settings)
-> images in [0, 1]."""

from ..errors import ConfigError, one_line
from ..rules import check_table
from .base import Generator
from .cvae import ConditionalVAE
from .flow import CaptionFlow
from .judge import Judge
from .paper_ved import PaperVED
from .textbook_cvae import TextbookCVAE

# The peers (textbook_cvae, flow) are there to measure ved's model against (docs/peers.md).
GENERATORS = {
    "paper_ved": PaperVED,
    "cvae": ConditionalVAE,
    "textbook_cvae": TextbookCVAE,
    "flow": CaptionFlow,
}


def build(table: dict) -> Generator:
    """A generative model from a checked [model] table (config.check_model): its kind's class, built
    from that class's Config."""
    cls = GENERATORS[table.get("kind", "paper_ved")]
    values = check_table("model", cls.Config, {k: v for k, v in table.items() if k != "kind"})
    try:
        return cls(cls.Config(**values))
    except (AssertionError, RuntimeError) as e:  # torch's own checks, e.g. a width that heads do not divide
        raise ConfigError(f"[model] cannot be built: {one_line(e)}") from None


__all__ = [
    "CaptionFlow",
    "ConditionalVAE",
    "Generator",
    "Judge",
    "PaperVED",
    "TextbookCVAE",
    "GENERATORS",
    "build",
]
