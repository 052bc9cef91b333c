"""Benchmark settings and the device's defaults, TF32 switches and backend flags."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from senet_lib.data import ImageDataset, load_dataset
from senet_lib.env import cpu_bf16_units, cpu_vector_isa

from .variants import VARIANTS, canonical_variant


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. :func:`default_settings` picks values that suit the device.

    ``train_images`` is the size of the (synthetic) training split the loaders cycle through;
    None means just enough for the warm-up and one repeat's ``steps``. ``loop`` also measures
    :func:`senet_lib.train.fit` against the bare step for the SE model (:mod:`speed.loop`).
    ``interleave`` times a model's variants in rounds of one repeat each instead of one after another
    (:mod:`speed.interleave`), so drift of a shared machine falls on every row alike.
    """

    models: tuple[str, ...]
    variants: tuple[str, ...]
    batch_size: int
    steps: int = 10
    warmup: int = 3
    repeats: int = 3
    min_seconds: float = 3.0
    max_steps: int = 10_000
    train_images: int | None = None
    dataset: str = "synthetic"
    num_workers: int | None = None
    seed: int = 0
    loop: bool = True
    interleave: bool = False

    def __post_init__(self) -> None:
        variants = tuple(dict.fromkeys(canonical_variant(v) for v in self.variants))
        object.__setattr__(self, "variants", variants)
        object.__setattr__(self, "models", tuple(self.models))
        checks = [
            (bool(self.models), "Name at least one model to benchmark (--models)."),
            (bool(self.variants), "Name at least one variant to benchmark (--variants)."),
            (
                self.batch_size >= 1,
                f"batch size must be at least 1 (got {self.batch_size}): pass --batch-size 1 or more.",
            ),
            (self.steps >= 1, f"steps must be at least 1 (got {self.steps}): pass --steps 1 or more."),
            (
                self.warmup >= 1,
                f"warm-up must be at least 1 step (got {self.warmup}), since the first step allocates, "
                "tunes and compiles: pass --warmup 1 or more.",
            ),
            (
                self.repeats >= 1,
                f"repeats must be at least 1 (got {self.repeats}): pass --repeats 1 or more.",
            ),
            (
                self.min_seconds >= 0,
                f"min_seconds must be 0 or more (got {self.min_seconds}): pass --min-seconds 0 or more.",
            ),
            (
                self.max_steps >= self.steps,
                f"max_steps ({self.max_steps}) is below steps ({self.steps}): pass --max-steps at least --steps.",
            ),
            (
                self.train_images is None or self.train_images >= self.batch_size,
                f"train_images ({self.train_images}) must hold at least one batch ({self.batch_size}): "
                "pass a larger --train-images.",
            ),
            (
                self.num_workers is None or self.num_workers >= 0,
                f"num_workers must be 0 or more (got {self.num_workers}): pass --num-workers 0 or more.",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def load_bench_data(settings: BenchSettings, test_fraction: float | None = None) -> ImageDataset:
    """The images to train on: synthetic CIFAR-shaped data (``train_images`` of them, by default
    enough for the warm-up and one repeat's ``steps``), or a named dataset subset to ``train_images``.

    ``test_fraction`` sizes the test split as that share of the training split (the epoch loop's
    test passes, :mod:`speed.loop`); None leaves one batch of synthetic test images (the
    variants never test) and a named dataset's whole test split."""
    size = settings.train_images or settings.batch_size * (settings.warmup + settings.steps + 1)
    test = None if test_fraction is None else max(1, round(test_fraction * size))
    if settings.dataset == "synthetic":
        return load_dataset(
            "synthetic", synthetic_size=(size, test or settings.batch_size), seed=settings.seed
        )
    data = load_dataset(settings.dataset)
    if settings.train_images is not None and settings.train_images < len(data.train):
        data = data.subset(settings.train_images, test, seed=settings.seed)
    return data


def default_variants(device: torch.device) -> tuple[str, ...]:
    """Every variant on CUDA; on a CPU all but compilation (it takes minutes there), and no bf16
    variant where the CPU has no native bf16 units (emulated bf16 runs at a tenth of fp32's speed);
    on MPS no bf16 variant either (bf16 autocast is not a training path there). fp32 channels-last is a CPU row only:
    it shows whether that memory format would pay on this CPU."""
    device = torch.device(device)
    names = tuple(name for name in VARIANTS if device.type == "cpu" or name != "device-fp32-cl")
    if device.type == "cuda":
        return names
    names = tuple(name for name in names if not VARIANTS[name].compile)
    if device.type == "mps" or (device.type == "cpu" and not cpu_bf16_units()):
        names = tuple(name for name in names if not VARIANTS[name].uses_bf16)
    return names


def skipped_note(device: torch.device) -> str | None:
    """What the default run leaves out on this device, and why (printed before measuring)."""
    device = torch.device(device)
    if device.type == "cpu" and not cpu_bf16_units():
        return (
            "bf16 variants skipped: this CPU has no native bf16 units (AMX / AVX512-BF16), so bf16 would run "
            "emulated at a tenth of fp32's speed; name them with --variants to time them anyway."
        )
    if device.type == "cpu":
        return (
            "torch.compile variants skipped on the CPU (minutes of compilation); name them with --variants."
        )
    return None


def default_settings(device: torch.device) -> BenchSettings:
    """CUDA: SE-ResNet-50 vs ResNet-50 (CIFAR stem), batch 256, every variant, a CIFAR-sized epoch
    of 50,000 images, variants one after another (each row's peak memory is its own). CPU/MPS: the
    CIFAR ResNet-20 pair, batch 128, no compilation, variants interleaved in rounds (a shared CPU
    drifts by several per cent within a minute). Everywhere: 3 repeats of at least 3 s each,
    reporting the median."""
    device = torch.device(device)
    if device.type == "cuda":
        return BenchSettings(
            models=("se_resnet50", "resnet50"),
            variants=default_variants(device),
            batch_size=256,
            steps=50,
            warmup=10,
            train_images=50_000,
        )
    return BenchSettings(
        models=("se_resnet20", "resnet20"),
        variants=default_variants(device),
        batch_size=128,
        steps=10,
        warmup=3,
        train_images=10_000,
        interleave=True,
    )


def mixed_precision_name(device: torch.device) -> str:
    """The reduced precision a ``device-bf16*`` variant uses: bf16, or fp16 on a CUDA GPU that has
    no native bf16 (named as such in the row)."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return "fp16"
    return "bf16"


@contextmanager
def tf32_settings(device: torch.device, disable: bool) -> Iterator[dict[str, bool] | None]:
    """On CUDA, switch TF32 off for matmuls and cuDNN while the block runs (when ``disable``) and
    restore the previous flags afterwards; yields the flags in effect (None off CUDA, where TF32
    does not exist)."""
    if torch.device(device).type != "cuda":
        yield None
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if disable:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        yield {
            "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        }
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def backend_flags(device: torch.device) -> dict[str, Any]:
    """Settings that change throughput: CPU bf16 units and vector ISA, torch threads, fp32 matmul precision and,
    on CUDA, the CUDA/cuDNN versions, TF32 flags and ``cudnn.benchmark``."""
    device = torch.device(device)
    flags: dict[str, Any] = {
        "cpu_bf16_units": cpu_bf16_units(),
        "cpu_vector_isa": cpu_vector_isa() if device.type == "cpu" else None,
        "torch_threads": torch.get_num_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda": None,
    }
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        flags["cuda"] = {
            "cuda_version": torch.version.cuda,
            "cudnn_version": torch.backends.cudnn.version(),
            "compute_capability": f"{major}.{minor}",
            "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        }
    return flags
