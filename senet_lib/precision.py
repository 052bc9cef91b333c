"""Training precision by device: bf16, fp16 + GradScaler or fp32, and why (one idea, split from env).

Imports nothing else from senet_lib; :mod:`senet_lib.env` re-exports every public name here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "CPU_BF16_FLAGS",
    "PRECISIONS",
    "Precision",
    "cpu_bf16_units",
    "cpu_vector_isa",
    "default_channels_last",
    "get_precision",
]

PRECISIONS = ("bf16", "fp16", "fp32")
#: CPU feature flags (as Linux's /proc/cpuinfo spells them) that give native bf16 matrix arithmetic.
CPU_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


def cpu_bf16_units() -> list[str]:
    """The native bf16 matrix units of this CPU (``["AMX-BF16", "AVX512-BF16"]``, a subset, or ``[]``).

    Read from torch's own CPU probe where it has one (the one oneDNN uses), else from Linux's
    ``/proc/cpuinfo``; ``[]`` when neither can tell (e.g. macOS, ARM, older x86).
    """
    probes = {
        "AMX-BF16": getattr(getattr(torch._C, "_cpu", None), "_is_amx_tile_supported", None),
        "AVX512-BF16": getattr(getattr(torch._C, "_cpu", None), "_is_avx512_bf16_supported", None),
    }
    if all(callable(f) for f in probes.values()):
        return [name for name, probe in probes.items() if probe()]
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [name for flag, name in CPU_BF16_FLAGS.items() if flag in flags]


def cpu_vector_isa() -> str | None:
    """The widest vector instruction set torch's CPU kernels use here (``"AVX512"``, ``"AVX2"``,
    ``"DEFAULT"`` …), from ``torch.backends.cpu.get_cpu_capability()``; None where torch cannot say.

    Two CPUs without bf16 units can still train at very different fp32 speeds: this names one reason.
    """
    probe = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    try:
        return str(probe()) if callable(probe) else None
    except RuntimeError:
        return None


@dataclass(frozen=True)
class Precision:
    """How to run the forward pass: the autocast dtype, whether a GradScaler is needed, and why
    this precision was chosen (printed by :func:`setup` and stored in every record)."""

    name: str  # "bf16" | "fp16" | "fp32"
    dtype: torch.dtype | None  # autocast dtype; None means plain fp32
    use_grad_scaler: bool
    reason: str = ""

    def autocast(self, device: torch.device) -> torch.autocast:
        """A ``torch.autocast`` context for ``device`` (disabled for fp32)."""
        return torch.autocast(
            device_type=device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        )


def _default_precision(device: torch.device) -> tuple[str, str]:
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", "this GPU computes bf16 natively (Ampere or newer)"
        return "fp16", "this GPU has no native bf16 (older than Ampere): fp16 with a GradScaler"
    if device.type == "cpu":
        units = cpu_bf16_units()
        if units:
            return "bf16", f"this CPU has native bf16 matrix units ({', '.join(units)})"
        return (
            "fp32",
            "this CPU has no native bf16 matrix units (AMX or AVX512-BF16), where bf16 would be slower",
        )
    return "fp32", f"the default on {device.type}"


def get_precision(device: torch.device, name: str | None = None) -> Precision:
    """The training precision on ``device``: ``name``, else ``$SENET_PRECISION``, else the device's.

    Defaults: bf16 on GPUs that compute it natively (Ampere and later), fp16 + GradScaler on older
    CUDA GPUs (T4, V100, P100), bf16 on CPUs with native bf16 matrix units (AMX or AVX512-BF16,
    :func:`cpu_bf16_units`), fp32 on other CPUs and on MPS.
    """
    device = torch.device(device)
    if name:
        reason = "asked for (precision argument)"
    elif os.environ.get("SENET_PRECISION"):
        name, reason = os.environ["SENET_PRECISION"], "asked for (SENET_PRECISION)"
    else:
        name, reason = _default_precision(device)
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision {name!r}: use one of {', '.join(PRECISIONS)}.")
    if name == "fp16" and device.type == "cpu":
        raise ValueError("fp16 autocast is not supported for training on the CPU: use fp32 or bf16.")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[name]
    return Precision(name=name, dtype=dtype, use_grad_scaler=(name == "fp16"), reason=reason)


def default_channels_last(device: torch.device) -> bool:
    """Channels-last when the recipe does not say: on CUDA and on every CPU; MPS stays channels-first.

    Chosen by ``python -m senet_lib bench`` (records in ``results/bench_cpu-*``, the ``-cl`` rows against
    their channels-first twins, timed in interleaved rounds). fp32: on an Intel Xeon without bf16 units
    channels-last trained SE-ResNet-20 22 % faster, on an AMD EPYC with AVX2 15 %. bf16: on an Intel
    Xeon with AMX-BF16, SE-ResNet-20 10 % and ResNet-20 21 % faster, and on an AMD EPYC with AVX512-BF16
    2-10 % and 12-19 % in three records; only the Intel Xeon with AVX512-BF16 and no AMX (2026-11-23)
    ran SE-ResNet-20 3-5 % slower channels-last, which one rule for every CPU accepts."""
    return torch.device(device).type in ("cuda", "cpu")
