"""How long a profile will take, before it runs: estimated seconds per network on this CPU, a T4 and an H100.

Every figure here is an **estimate**, and each says how it was made:

* **CPU**: the training throughput (images/s) that this repository's recorded runs measured
  (``results/train_*.json``, median over their epochs) for the same model and precision; a model
  without a record is scaled from a recorded one by the ratio of their multiply-accumulates (MACs).
* **T4 / H100**: the profile's arithmetic divided by an *assumed* sustained rate
  (:data:`ASSUMED_TFLOPS`): training costs about 3 × 2 × MACs floating-point operations an image
  (forward, and a backward of twice the forward), evaluation 2 × MACs (twice that with flip-TTA);
  plus :data:`ASSUMED_COMPILE_SECONDS` when the run compiles (the default on CUDA).

Replace the assumptions by measurements (``python -m senet_lib bench``) once a GPU has run the code.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from .cost import count_macs
from .env import get_paths
from .models import create_model
from .precision import get_precision
from .profiles import Profile

__all__ = [
    "ASSUMED_COMPILE_SECONDS",
    "ASSUMED_TFLOPS",
    "TimeEstimate",
    "estimate_profile",
    "recorded_cpu_throughput",
]

#: Sustained training rate assumed on each GPU, in TFLOP/s (an assumption, not a measurement):
#: about 18 % of a T4's 65 TFLOP/s fp16 tensor peak and about 10 % of an H100 SXM's ~990 TFLOP/s
#: dense bf16 peak, because 32×32 CIFAR images make small convolutions that keep a GPU far from peak.
ASSUMED_TFLOPS = {"T4": 12.0, "H100": 100.0}
#: torch.compile's first-step cost assumed per network on a GPU (seconds; an assumption).
ASSUMED_COMPILE_SECONDS = 60.0
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
#: Below this many MACs an image (e.g. ResNet-20's 0.04 G) a GPU estimate from arithmetic is only a lower bound.
SMALL_MACS = 200_000_000


@dataclass(frozen=True)
class TimeEstimate:
    """Estimated wall time of one network of a profile on one device, and how it was estimated."""

    device: str  # "CPU (this machine)" | "T4" | "H100"
    seconds: float | None  # per network; None = no basis for an estimate
    how: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@cache
def _macs(model: str) -> int:
    """MACs of one 32×32 image through ``model`` (10 classes), counted by :func:`senet_lib.cost.count_macs`."""
    return count_macs(create_model(model, num_classes=10), (1, 3, 32, 32)).total


def recorded_cpu_throughput(results: str | Path | None = None) -> dict[tuple[str, str], tuple[float, str]]:
    """``(model, precision) → (median images/s, file name)`` from the CPU training records in ``results``
    (default: :func:`senet_lib.env.get_paths`' results folder); the fastest record wins per key."""
    folder = Path(results) if results is not None else get_paths(create=False).results
    found: dict[tuple[str, str], tuple[float, str]] = {}
    for path in sorted(folder.glob("train_*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            rates = [row["images_per_sec"] for row in record["history"] if row.get("images_per_sec")]
            key = (record["model"]["name"], record["precision"])
            on_cpu = record["device"] == "cpu"
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if on_cpu and rates:
            rate = float(statistics.median(rates))
            if rate > found.get(key, (0.0, ""))[0]:
                found[key] = (rate, path.name)
    return found


def _sizes(profile: Profile) -> tuple[int, int]:
    return profile.train_subset or CIFAR_TRAIN, profile.test_subset or CIFAR_TEST


def _evaluations(profile: Profile) -> int:
    every = profile.config.eval_every
    return len({e for e in range(every, profile.epochs + 1, every)} | {profile.epochs})


def _cpu_estimate(profile: Profile, model: str, results: str | Path | None) -> TimeEstimate:
    label = "CPU (this machine)"
    precision = get_precision(torch.device("cpu"), profile.config.precision).name
    recorded = {m: v for (m, p), v in recorded_cpu_throughput(results).items() if p == precision}
    if not recorded:
        return TimeEstimate(label, None, f"no CPU training record in {precision} in results/ to scale from")
    basis = model if model in recorded else min(recorded, key=lambda m: abs(_macs(m) - _macs(model)))
    rate, source = recorded[basis]
    rate *= _macs(basis) / _macs(model)
    train, test = _sizes(profile)
    seconds = profile.epochs * train / rate + _evaluations(profile) * test / (3 * rate)
    scaled = "" if basis == model else f", scaled by MACs ({_macs(basis):,} / {_macs(model):,})"
    return TimeEstimate(
        label,
        seconds,
        f"{profile.epochs} epochs x {train:,} images at {rate:.0f} img/s ({precision}; median of the "
        f"epochs of {source}{scaled}), evaluation at 3x that rate",
    )


def _gpu_estimate(profile: Profile, model: str, gpu: str) -> TimeEstimate:
    train, test = _sizes(profile)
    macs = _macs(model)
    flops = 6 * macs * profile.epochs * train + 2 * macs * test * (_evaluations(profile) + profile.config.tta)
    rate = ASSUMED_TFLOPS[gpu] * 1e12
    compiles = profile.config.compile is not False  # None = on for CUDA
    seconds = flops / rate + (ASSUMED_COMPILE_SECONDS if compiles else 0.0)
    small = macs < SMALL_MACS
    return TimeEstimate(
        gpu,
        seconds,
        f"(6 x {macs / 1e9:.3f} GMACs x {profile.epochs} x {train:,} + evaluation) = {flops:.3g} FLOP "
        f"at an assumed {ASSUMED_TFLOPS[gpu]:g} TFLOP/s"
        + (f" + {ASSUMED_COMPILE_SECONDS:.0f} s compile (assumed)" if compiles else "")
        + (
            "; a lower bound: so small a network is bound by kernel launches, not arithmetic" if small else ""
        ),
    )


def estimate_profile(profile: Profile, results: str | Path | None = None) -> dict[str, list[TimeEstimate]]:
    """Estimated seconds per network for each of the profile's two models: ``{model: [CPU, T4, H100]}``."""
    return {
        model: [_cpu_estimate(profile, model, results)]
        + [_gpu_estimate(profile, model, g) for g in ASSUMED_TFLOPS]
        for model in profile.models
    }
