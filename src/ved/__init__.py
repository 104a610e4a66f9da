"""ved: captions to MNIST digits with variational encoder-decoders."""

from .captions import CaptionError, parse
from .errors import VedError
from .pipeline import ArgumentError, ModelError, Pipeline, load, shipped_models

__version__ = "0.1.0"
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
