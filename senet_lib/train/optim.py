"""Optimizer parameter groups and learning-rate schedules (step, cosine, one-cycle) as one step-wise factor."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


# --------------------------------------------------------------------------- optimizer and schedule
def parameter_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = True) -> list[dict]:
    """SGD parameter groups; with ``decay_norm_and_bias=False`` every 0-/1-D parameter (biases,
    norm-layer scales and shifts) goes into a second group with ``weight_decay=0``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": params, "weight_decay": weight_decay, "group": "all"}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay, "group": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "group": "no_decay"},
    ]


def fused_sgd_supported(device: torch.device) -> bool:
    """Whether this torch fuses SGD on ``device`` (one kernel per step; CUDA only here, so that CPU
    results stay bit-for-bit those of the for-each SGD)."""
    import inspect

    return torch.device(device).type == "cuda" and "fused" in inspect.signature(torch.optim.SGD).parameters


def make_sgd(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.SGD:
    """SGD for ``config`` (parameter groups from :func:`parameter_groups`), fused where
    :func:`fused_sgd_supported` says so and the parameters allow it, else the for-each version."""
    groups = parameter_groups(model, config.weight_decay, config.decay_norm_and_bias)
    options = dict(lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if fused_sgd_supported(device):
        try:
            return torch.optim.SGD(groups, **options, fused=True)
        except (RuntimeError, TypeError, ValueError):  # e.g. a dtype or device the fused kernel lacks
            pass
    return torch.optim.SGD(groups, **options)


class LRFactor:
    """Multiplier of the base LR at optimizer step ``s`` for the step (``gamma ** milestones passed``,
    times the warm-up ramp or ``constant``) and cosine schedules (warm-up, then to 0 at ``T``); plain
    attributes, so ``LambdaLR.state_dict`` stores it."""

    def __init__(
        self,
        kind: str,
        steps_per_epoch: int,
        total_steps: int,
        warmup_steps: int,
        milestones,
        gamma: float,
        constant: float | None = None,
    ) -> None:
        self.kind = kind
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.milestones = tuple(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.constant = None if constant is None else float(constant)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            warm = (step + 1) / self.warmup_steps if self.constant is None else self.constant
            if self.kind == "cosine":
                return warm
        else:
            warm = 1.0
        if self.kind == "step":
            epoch = step // self.steps_per_epoch
            return warm * self.gamma ** sum(epoch >= m for m in self.milestones)
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step LR scheduler for ``config.schedule`` (``onecycle``: ``OneCycleLR`` peaking at ``config.lr``,
    rising ``warmup_epochs`` (default 30 %), momentum held)."""
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=total,
            pct_start=warmup / total if warmup else 0.3,
            cycle_momentum=False,
        )
    factor = LRFactor(
        config.schedule,
        steps_per_epoch,
        total,
        warmup,
        config.milestones,
        config.gamma,
        config.warmup_constant,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
