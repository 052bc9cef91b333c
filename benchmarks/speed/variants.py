"""The benchmark's variants (precision, memory format, pipeline, compile), their aliases, targets and
reference ratios.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Variant:
    """One way to train: input pipeline, precision, memory format, compilation.

    ``precision`` is ``"fp32"``, ``"mixed"`` (bf16, or fp16 on CUDA GPUs without bf16) or None
    (the library's default); ``channels_last`` None is the library's default too. ``true_fp32``
    switches TF32 off on CUDA while the variant runs.
    """

    description: str
    pipeline: str
    precision: str | None
    channels_last: bool | None
    compile: bool = False
    true_fp32: bool = False

    @property
    def uses_bf16(self) -> bool:
        """Whether the variant always trains in reduced precision (skipped by default on MPS)."""
        return self.precision == "mixed"


VARIANTS: dict[str, Variant] = {
    "seed-style": Variant(
        "torchvision transforms + DataLoader, true fp32 (TF32 off on CUDA), channels-first",
        pipeline="torch",
        precision="fp32",
        channels_last=False,
        true_fp32=True,
    ),
    "device-fp32": Variant("device-resident loader, fp32", "device", "fp32", False),
    "device-fp32-cl": Variant("device loader + fp32 + channels-last (CPU rows only)", "device", "fp32", True),
    "device-bf16": Variant(
        "device loader + bf16 autocast (fp16 where a GPU lacks bf16)", "device", "mixed", False
    ),
    "device-bf16-cl": Variant("device loader + bf16 autocast + channels-last", "device", "mixed", True),
    "default": Variant(
        "the library's defaults on this device (precision, channels-last, pipeline; compile has its own row)",
        "auto",
        None,
        None,
    ),
    "device-bf16-cl-compile": Variant(
        "device-bf16-cl + torch.compile", "device", "mixed", True, compile=True
    ),
}

#: Names of the previous benchmark's variants (and a short form), still accepted.
ALIASES: dict[str, str] = {
    "baseline": "seed-style",
    "device": "device-fp32",
    "device+amp": "device-bf16",
    "device+amp+cl": "device-bf16-cl",
    "device+amp+cl+compile": "device-bf16-cl-compile",
    "+compile": "device-bf16-cl-compile",
}

#: The series' goals, printed beside the measured values. ``applies_when`` says which run a goal is for.
TARGETS: dict[str, dict[str, Any]] = {
    "se_images_per_sec": {
        "target": 20_000.0,
        "goal": "SE-ResNet-50 (CIFAR stem) ≥ 20,000 training img/s on one H100 (best variant, median)",
        "applies_when": "se_resnet50 on an H100",
    },
    "se_vs_plain_ratio": {
        "target": 0.92,
        "goal": "SE-ResNet-50 ≥ 0.92 × ResNet-50 training throughput (best SE variant, medians)",
        "applies_when": "se_resnet50 vs resnet50 on a CUDA GPU",
    },
    "cuda_default_vs_seed_style": {
        "target": 5.0,
        "goal": "default GPU path (device loader, mixed precision) ≥ 5 × seed-style fp32 DataLoader loop",
        "applies_when": "the SE model on a CUDA GPU",
    },
    "fit_vs_bare_step": {
        "target": 0.9,
        "goal": "fit's training phase ≥ 0.9 × the bare train step (SE model, library defaults, medians)",
        "applies_when": "the loop was measured (any device)",
    },
    "cpu_default_vs_seed_style": {
        "target": 2.0,
        "goal": "default CPU path ≥ 2 × the seed-style fp32 loop for se_resnet20",
        "applies_when": "se_resnet20 on a CPU",
    },
}

#: Other people's SE/plain throughput ratios, for comparison (theirs, not measured here).
REFERENCE_RATIOS = {
    "paper_v4": {
        "ratio": round(190 / 209, 3),
        "source": "Hu et al. v4 §4: ResNet-50 190 ms vs SE-ResNet-50 209 ms per forward+backward, "
        "batch 256 on 8× Titan X (their numbers)",
    },
    "timm": {
        "ratio": 0.87,
        "source": "timm's published ImageNet training throughputs, ≈0.87 as quoted in the issue "
        "(theirs, not re-measured here)",
    },
}

DATA_NOTE = (
    "synthetic images of CIFAR shape (3x32x32): throughput does not depend on pixel values, "
    "so these numbers hold for real CIFAR of the same shape"
)

TIMING_NOTE = (
    "train_step (forward, backward, optimiser step) plus fetching the batch; warm-up steps untimed; "
    "device synchronised before each clock read; each repeat runs at least `steps` steps and at least "
    "`min_seconds` seconds (at most `max_steps` steps); rows report the median over repeats; with "
    "`interleave`, a model's variants are timed in rounds of one repeat each (order alternating), "
    "and each repeat names its round"
)


def canonical_variant(name: str) -> str:
    """The variant ``name`` means (an old name is translated), or a ValueError listing the valid ones."""
    name = ALIASES.get(name, name)
    if name not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}: use any of {', '.join(VARIANTS)}.")
    return name
