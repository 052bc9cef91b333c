"""Running a model in a mode for a while: :func:`eval_mode`, and every module's own flag restored."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def module_mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    """Put ``model`` in train (``training=True``) or eval mode; restore every module's own
    train/eval flag afterwards, also after an exception."""
    modes = {module: module.training for module in model.modules()}
    model.train(training)
    try:
        yield model
    finally:
        for module, flag in modes.items():
            module.training = flag


def eval_mode(model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Put ``model`` in eval mode; restore every module's own train/eval flag afterwards."""
    return module_mode(model, False)
