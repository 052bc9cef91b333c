"""How a run executes on a device: channels-last, ``torch.compile`` policy and the environment record."""

from __future__ import annotations

from typing import Any

import torch

from ..env import (
    default_channels_last,
    environment_record,
    get_precision,
)
from .config import TrainConfig


def resolve_channels_last(device: torch.device, config: TrainConfig) -> bool:
    """``config.channels_last``, or when None the device's default
    (:func:`senet_lib.env.default_channels_last`: CUDA and CPUs, not MPS)."""
    if config.channels_last is not None:
        return config.channels_last
    return default_channels_last(device)


def run_environment(device: torch.device, config: TrainConfig, profile: str | None = None) -> dict[str, Any]:
    """:func:`senet_lib.env.environment_record` for a run of ``config`` on ``device``: the precision it
    trains in and why, and whether it uses channels-last and ``torch.compile``."""
    precision = get_precision(device, config.precision)
    record = environment_record(device, precision.name, profile, precision.reason)
    record["channels_last"] = resolve_channels_last(device, config)
    record["compile"] = resolve_compile(device, config) and compile_reason(device) is None
    return record


def compile_reason(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot be used on ``device``, or None if it can."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if device.type == "mps":
        return "torch.compile does not support Apple MPS"
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (7, 0):
        major, minor = torch.cuda.get_device_capability(device)
        return f"this GPU has compute capability {major}.{minor} and torch.compile needs 7.0 or newer"
    return None


def resolve_compile(device: torch.device, config: TrainConfig) -> bool:
    """``config.compile``, or when None: on for CUDA (where it speeds training up), off elsewhere
    (on a CPU the compile time outweighs what it saves in a short run)."""
    if config.compile is not None:
        return config.compile
    return torch.device(device).type == "cuda"
