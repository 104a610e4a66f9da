"""ved: captions to MNIST digits with variational encoder-decoders."""
from .captions import CaptionError, parse
from .pipeline import Pipeline, load, shipped_models

__version__ = "0.1.0"
__all__ = ["CaptionError", "Pipeline", "load", "parse", "shipped_models"]
