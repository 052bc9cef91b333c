"""What every command shares: the program name, :class:`UsageError`, checked names, the one-line error."""

from __future__ import annotations

import sys

from ..data import DATASETS
from ..errors import UserError
from ..models import list_models

PROG = "python -m senet_lib"


class UsageError(ValueError, UserError):
    """Bad command-line input; the message is one sentence that says what to do."""


# --------------------------------------------------------------------------- validation
def check_model(name: str) -> str:
    """``name`` if it is a registered model, else a :class:`UsageError` listing the valid ones."""
    if name not in list_models():
        raise UsageError(f"Unknown model {name!r}; valid models: {', '.join(list_models())}.")
    return name


def check_dataset(name: str) -> str:
    """``name`` if it is ``auto`` or a known dataset, else a :class:`UsageError` listing them."""
    valid = ("auto", *DATASETS)
    if name not in valid:
        raise UsageError(f"Unknown dataset {name!r}; valid datasets: {', '.join(valid)}.")
    return name


def print_error(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
