"""ved: captions to MNIST digits with variational encoder-decoders."""

from .about import VERSION
from .captions import CaptionError, parse
from .errors import VedError
from .pipeline import ArgumentError, ModelError, Pipeline, load, shipped_models

__version__ = VERSION
__all__ = [
    "ArgumentError",
    "CaptionError",
    "ModelError",
    "Pipeline",
    "VedError",
    "load",
    "parse",
    "shipped_models",
]
