"""senet_lib: the helper library of the Squeeze-and-Excitation Networks notebook series.

Notebooks import from the short paths ``senet_lib``, ``.data``, ``.models``, ``.cost``, ``.train``,
``.excitation`` and ``.plots``. ``senet_lib.env`` is imported first so that
``PYTORCH_ENABLE_MPS_FALLBACK`` is set before torch loads.
"""

from . import env  # noqa: I001  (must come first: sets PYTORCH_ENABLE_MPS_FALLBACK)
from . import checkpoint, cost, data, excitation, models, plots, train
from .env import (
    PRECISIONS,
    PROFILES,
    default_channels_last,
    get_device,
    get_paths,
    get_precision,
    get_profile,
    notebook_titles,
    seed_everything,
    setup,
)
from .models import create_model, list_models, register_model
from .train import PROFILE_SETTINGS, Profile, get_settings
from .se import (
    Excitation,
    Squeeze,
    SqueezeExcitation,
    hidden_width,
    make_gate,
    override_gate,
    scale,
    se_blocks,
    squeeze,
)

__version__ = "0.1.0"

__all__ = [
    "default_channels_last",
    "PRECISIONS",
    "PROFILES",
    "PROFILE_SETTINGS",
    "Excitation",
    "Profile",
    "Squeeze",
    "SqueezeExcitation",
    "checkpoint",
    "cost",
    "create_model",
    "data",
    "env",
    "excitation",
    "get_device",
    "get_paths",
    "get_precision",
    "get_profile",
    "get_settings",
    "hidden_width",
    "list_models",
    "make_gate",
    "models",
    "notebook_titles",
    "override_gate",
    "plots",
    "register_model",
    "scale",
    "se_blocks",
    "seed_everything",
    "setup",
    "squeeze",
    "train",
]
