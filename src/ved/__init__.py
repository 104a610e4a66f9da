"""ved: captions to MNIST digits with variational encoder-decoders."""

from .about import VERSION
from .captions import CaptionError, parse
from .errors import VedError

__version__ = VERSION
__all__ = [
    "ArgumentError",
    "CaptionError",
    "ModelError",
    "Pipeline",
    "VedError",
    "VedPipelineOutput",
    "load",
    "parse",
    "shipped_models",
]
_FROM_PIPELINE = {"ArgumentError", "ModelError", "Pipeline", "VedPipelineOutput", "load", "shipped_models"}


def __getattr__(name: str):
    """The model side on first use (as diffusers imports lazily): `ved captions ...`, `ved data` and
    `ved --help` start without torch, in a tenth of the time."""
    if name in _FROM_PIPELINE:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'ved' has no attribute {name!r}")
