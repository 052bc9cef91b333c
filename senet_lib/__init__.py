"""senet_lib: the helper library of the Squeeze-and-Excitation Networks notebook series.

Modules follow one data flow, each importing only from those before it::

    env → data → se / models → train → excitation → plots

``senet_lib.env`` is imported first so that ``PYTORCH_ENABLE_MPS_FALLBACK`` is set before
torch loads.
"""

from . import env  # noqa: I001  (must come first: sets PYTORCH_ENABLE_MPS_FALLBACK)
from . import checkpoint, data, excitation, figures, pretrained, profiles, train
from .env import get_device, get_paths, get_precision, get_profile, seed_everything, setup
from .models import create_model, list_models, register_model
from .se import Excitation, Squeeze, SqueezeExcitation, override_gate, scale, se_blocks, squeeze

__version__ = "0.1.0"

__all__ = [
    "Excitation",
    "checkpoint",
    "data",
    "excitation",
    "figures",
    "pretrained",
    "profiles",
    "train",
    "Squeeze",
    "SqueezeExcitation",
    "create_model",
    "env",
    "get_device",
    "get_paths",
    "get_precision",
    "get_profile",
    "list_models",
    "override_gate",
    "register_model",
    "scale",
    "se_blocks",
    "seed_everything",
    "setup",
    "squeeze",
]
