"""Recipes and profiles: :class:`TrainConfig` (one training recipe, validated in one place), the
profiles behind every notebook's ``parameters`` cell and the command line, and their estimated times.

Profiles (``SENET_PROFILE``, default quick on CPU and class on a GPU; ``python -m senet_lib profiles``
lists them): ``quick`` (CPU and CI smoke runs), ``class`` (one class period on a GPU), ``cpu`` (full
CIFAR-10 on a bf16 CPU; the pretrained networks' recipe), ``gpu`` (the headline run, see
:data:`GPU_PROFILE_RATIONALE`), ``he2016`` (He et al. 2016's CIFAR recipe; for ResNet-110/164 add
``--warmup-epochs 1 --warmup-constant 0.1``) and ``step`` (a public SE-ResNet-50 CIFAR repository's step recipe, not the
SE paper's). A profile names only what it changes from :class:`TrainConfig`'s defaults.

Time estimates (:func:`estimate_profile`) are **estimates**: on the CPU from the recorded training
throughput (``results/train_*.json``, scaled by MACs for a model without a record), on a T4 / H100
from 6 × MACs FLOP per training image at an assumed rate (:data:`ASSUMED_TFLOPS`) plus
:data:`ASSUMED_COMPILE_SECONDS`.
"""

from __future__ import annotations

import math
import numbers
import statistics
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import read_json
from ..cost import count_macs
from ..data import PIPELINES
from ..env import PRECISIONS, get_paths, get_precision, get_profile
from ..errors import UserError
from ..models import create_model

SCHEDULES = ("step", "cosine", "onecycle")

#: A value that a field must be given (``epochs``, ``batch_size``): ``dataclasses.MISSING``.
_REQUIRED: Any = MISSING


def _recipe(
    default: Any = _REQUIRED,
    *,
    help: str = "",
    runtime: bool = False,
    cli: bool = True,
    flags: tuple[str, ...] = (),
    choices: tuple[Any, ...] | None = None,
    metavar: str | None = None,
    group: str = "recipe",
    omit_default: bool = False,
) -> Any:
    """A :class:`TrainConfig` field with what the command line and run names need to know about it.

    ``runtime`` fields change how a run executes, not what it computes (out of :meth:`TrainConfig.recipe`
    and run names); ``omit_default`` marks a field added after run names were pinned, left out of the
    recipe while at its default.
    """
    metadata = {
        "help": help,
        "runtime": runtime,
        "cli": cli,
        "flags": flags,
        "choices": choices,
        "metavar": metavar,
        "group": group,
        "omit_default": omit_default,
    }
    if default is _REQUIRED:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


#: The step schedule's milestones unless a recipe sets its own; left alone in shorter runs.
DEFAULT_MILESTONES = (30, 60, 90)

#: The largest seed torch accepts (``torch.manual_seed`` takes a signed 64-bit value).
MAX_SEED = 2**63 - 1


class ConfigError(ValueError, UserError):
    """An invalid :class:`TrainConfig` value: ``field`` names it, ``problem`` says what it must be."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Invalid TrainConfig: {field} {problem}; fix that value.")
        self.field, self.problem = field, problem


# --------------------------------------------------------------------------- recipe
@dataclass
class TrainConfig:
    """One training recipe, as plain values (JSON-ready through :meth:`to_dict`).

    ``None`` for ``precision``, ``channels_last`` or ``compile`` takes the device's default.
    ``cutmix`` is a probability per batch; ``save_every`` and ``eval_every`` are in epochs (the last
    epoch is always evaluated and saved), ``print_freq`` in steps (0 = off). Each field's metadata
    (:func:`_recipe`) also makes its command-line option.
    """

    epochs: int = _recipe(help="number of epochs")
    batch_size: int = _recipe(help="images per training step")
    lr: float = _recipe(0.1, help="(peak) learning rate")
    momentum: float = _recipe(0.9, help="SGD momentum")
    nesterov: bool = _recipe(False, help="Nesterov momentum")
    weight_decay: float = _recipe(5e-4, help="L2 weight decay", flags=("--wd", "--weight-decay"))
    decay_norm_and_bias: bool = _recipe(True, cli=False)
    schedule: str = _recipe("step", choices=SCHEDULES, help="learning-rate schedule")
    milestones: tuple[int, ...] = _recipe(
        DEFAULT_MILESTONES, help="epochs at which the step schedule divides the lr"
    )
    gamma: float = _recipe(0.1, help="step schedule factor (default 0.1)")
    warmup_epochs: int = _recipe(0, help="epochs of linear warm-up")
    warmup_constant: float | None = _recipe(
        None,
        metavar="FACTOR",
        omit_default=True,
        help="hold lr x FACTOR through the warm-up epochs instead of a linear ramp (He et al. 2016: 0.1)",
    )
    label_smoothing: float = _recipe(0.0, help="label smoothing of the cross-entropy")
    cutout: int = _recipe(0, metavar="LENGTH", help="Cutout square side in pixels (0 = off)")
    cutout_count: int = _recipe(1, metavar="N", help="Cutout squares per image")
    cutmix: float = _recipe(0.0, metavar="P", help="probability that a batch is CutMix-ed")
    zero_init_residual: bool = _recipe(
        False,
        omit_default=True,
        help="start each residual block's last BatchNorm scale at 0 (Goyal et al. 2017)",
    )
    precision: str | None = _recipe(None, choices=PRECISIONS, help="default: the device's")
    channels_last: bool | None = _recipe(None, runtime=True, help="default: on for CUDA and CPUs, off on MPS")
    compile: bool | None = _recipe(None, runtime=True, help="torch.compile the model (default: on for CUDA)")
    pipeline: str = _recipe("auto", choices=PIPELINES, help="data pipeline")
    seed: int = _recipe(0, help="random seed (default: the profile's first)")
    save_every: int = _recipe(
        1, runtime=True, group="output", metavar="N", help="checkpoint every N epochs (0 = at the end)"
    )
    eval_every: int = _recipe(
        1, runtime=True, group="output", metavar="N", help="evaluate every N epochs and at the end"
    )
    tta: bool = _recipe(
        False, runtime=True, group="output", help="also report flip-TTA test accuracy at the end"
    )
    print_freq: int = _recipe(0, runtime=True, group="output", metavar="N", help="print a line every N steps")
    max_steps_per_epoch: int | None = _recipe(
        None, flags=("--max-steps",), metavar="N", help="at most N steps per epoch (smoke runs)"
    )
    progress: bool = _recipe(
        True, runtime=True, group="output", flags=("--no-progress",), help="hide the progress bar"
    )

    def __post_init__(self) -> None:
        """Check every value (type and range).

        Raises:
            ConfigError: the first invalid value, named with what it must be (a ``ValueError``).
        """
        if isinstance(self.milestones, (list, tuple)):
            self.milestones = tuple(self.milestones)
        milestones = self.milestones if isinstance(self.milestones, tuple) else ()
        whole, number = _is_whole, _is_number
        flag, maybe = "must be True or False", "must be True, False or None"
        checks: list[tuple[str, bool, str]] = [
            ("epochs", whole(self.epochs, 1), "must be a whole number, at least 1"),
            ("batch_size", whole(self.batch_size, 1), "must be a whole number, at least 1"),
            ("lr", number(self.lr) and self.lr > 0, "must be a finite positive number"),
            ("momentum", number(self.momentum) and 0 <= self.momentum < 1, "must be in [0, 1)"),
            ("nesterov", isinstance(self.nesterov, bool), flag),
            (
                "nesterov",
                not (self.nesterov and self.momentum == 0),
                "needs a momentum above 0 (Nesterov momentum without momentum does nothing)",
            ),
            (
                "weight_decay",
                number(self.weight_decay) and self.weight_decay >= 0,
                "must be a finite number, 0 or more",
            ),
            ("decay_norm_and_bias", isinstance(self.decay_norm_and_bias, bool), flag),
            ("schedule", self.schedule in SCHEDULES, f"must be one of {', '.join(SCHEDULES)}"),
            (
                "milestones",
                isinstance(self.milestones, tuple)
                and all(whole(m, 1) for m in milestones)
                and all(a < b for a, b in zip(milestones, milestones[1:], strict=False)),
                "must be positive epoch numbers in increasing order",
            ),
            (
                "milestones",
                self.schedule != "step"
                or self.milestones == DEFAULT_MILESTONES
                or not whole(self.epochs, 1)
                or all(whole(m, 1) and m <= self.epochs for m in milestones),
                f"must be at most epochs ({self.epochs}), or the lr is never divided there",
            ),
            ("gamma", number(self.gamma) and 0 < self.gamma <= 1, "must be in (0, 1]"),
            (
                "warmup_epochs",
                whole(self.warmup_epochs, 0) and whole(self.epochs, 1) and self.warmup_epochs < self.epochs,
                f"must be between 0 and epochs - 1 ({self.epochs} epochs)",
            ),
            (
                "warmup_constant",
                self.warmup_constant is None
                or (
                    number(self.warmup_constant)
                    and 0 < self.warmup_constant <= 1
                    and self.schedule != "onecycle"
                    and self.warmup_epochs > 0
                ),
                "must be None or in (0, 1], with warmup_epochs above 0 and a step or cosine schedule",
            ),
            ("zero_init_residual", isinstance(self.zero_init_residual, bool), flag),
            (
                "label_smoothing",
                number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
                "must be in [0, 1)",
            ),
            ("cutout", whole(self.cutout, 0), "must be a whole number of pixels, 0 (off) or more"),
            ("cutout_count", whole(self.cutout_count, 1), "must be a whole number, at least 1"),
            (
                "cutmix",
                number(self.cutmix) and 0 <= self.cutmix <= 1,
                "is a probability per batch, in [0, 1]",
            ),
            ("precision", self.precision in (None, *PRECISIONS), "must be bf16, fp16, fp32 or None"),
            ("channels_last", self.channels_last is None or isinstance(self.channels_last, bool), maybe),
            ("compile", self.compile is None or isinstance(self.compile, bool), maybe),
            ("eval_every", whole(self.eval_every, 1), "must be a whole number of epochs, at least 1"),
            ("tta", isinstance(self.tta, bool), flag),
            ("pipeline", self.pipeline in PIPELINES, f"must be one of {', '.join(PIPELINES)}"),
            (
                "seed",
                whole(self.seed, 0) and self.seed <= MAX_SEED,
                f"must be a whole number in 0..{MAX_SEED}",
            ),
            (
                "save_every",
                whole(self.save_every, 0),
                "must be a whole number of epochs, 0 (only at the end) or more",
            ),
            ("print_freq", whole(self.print_freq, 0), "must be a whole number of steps, 0 (off) or more"),
            (
                "max_steps_per_epoch",
                self.max_steps_per_epoch is None or whole(self.max_steps_per_epoch, 1),
                "must be None or a whole number, at least 1",
            ),
            ("progress", isinstance(self.progress, bool), flag),
        ]
        for name, ok, problem in checks:
            if not ok:
                raise ConfigError(name, f"{problem} (got {getattr(self, name)!r})")
        for name in ("epochs", "batch_size", "warmup_epochs", "cutout", "cutout_count", "seed"):
            setattr(self, name, int(getattr(self, name)))  # e.g. numpy integers → int (JSON-ready)
        self.milestones = tuple(int(m) for m in milestones)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain values (``milestones`` as a list)."""
        values = asdict(self)
        values["milestones"] = list(self.milestones)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` (or its JSON round trip)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown TrainConfig field(s) {', '.join(unknown)}: remove them (valid: {', '.join(sorted(known))})."
            )
        return cls(**dict(values))

    @classmethod
    def from_profile(cls, profile: Profile, **overrides: Any) -> TrainConfig:
        """The recipe of a :class:`Profile` (``profile.config``), with overrides."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"TrainConfig has no field(s) {', '.join(unknown)}: use one of {', '.join(sorted(names))}."
            )
        return replace(profile.config, **overrides)

    def recipe(self) -> dict[str, Any]:
        """The values that determine what training computes (runtime-only fields and defaulted
        :data:`LATER_FIELDS` left out)."""
        return core_recipe(self.to_dict())


#: Fields that change how a run is executed or reported, not what it computes.
RUNTIME_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.metadata["runtime"])

#: Recipe fields added after run names were pinned, with their defaults (left out while at them).
LATER_FIELDS = {f.name: f.default for f in fields(TrainConfig) if f.metadata["omit_default"]}


def core_recipe(values: Mapping[str, Any]) -> dict[str, Any]:
    """A recipe's values (``to_dict()`` or a saved record's) without runtime-only fields and defaulted
    :data:`LATER_FIELDS`."""
    return {
        k: v
        for k, v in values.items()
        if k not in RUNTIME_FIELDS and not (k in LATER_FIELDS and v == LATER_FIELDS[k])
    }


def _is_whole(value: Any, least: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


_RECIPE_FIELDS = frozenset(f.name for f in fields(TrainConfig))


@dataclass(frozen=True)
class Profile:
    """One profile: its training recipe (:attr:`config`, also read through: ``profile.epochs``) and
    what only profiles decide."""

    name: str
    config: TrainConfig  # the recipe (seed = the first of ``seeds``)
    models: tuple[str, str]  # (plain, SE) pair that notebook 05 compares
    dataset: str = "cifar10"  # "auto" = CIFAR-10 if it can be had, else synthetic (said loudly)
    train_subset: int | None = None  # class-balanced subset size; None = the full split
    test_subset: int | None = None
    seeds: tuple[int, ...] = (0,)
    images_per_class: int = 50  # excitation statistics (paper Fig. 6 uses 50)
    timing_batch: int = 64  # forward+backward timing in notebook 04
    timing_repeats: int = 10
    description: str = ""  # one line, printed by ``python -m senet_lib profiles``

    def __getattr__(self, name: str) -> Any:
        if name in _RECIPE_FIELDS:
            return getattr(self.config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _profile(name: str, recipe: dict[str, Any], seeds: tuple[int, ...] = (0,), **settings: Any) -> Profile:
    return Profile(name, TrainConfig(**recipe, seed=seeds[0]), seeds=seeds, **settings)


#: A public SE-ResNet-50 CIFAR repository's step recipe: TrainConfig's defaults, 100 epochs (run names pinned as "paper").
_STEP = _profile(
    "step",
    dict(epochs=100, batch_size=128),
    seeds=(0, 1, 2),
    models=("resnet50", "se_resnet50"),
    timing_batch=256,
    description="a public SE-ResNet-50 CIFAR repository's step recipe (not the SE paper's): lr 0.1 ÷10 at 30/60/90, 100 epochs",
)
#: One-cycle instead of the step schedule (no milestones).
_ONECYCLE = dict(schedule="onecycle", milestones=())

PROFILE_SETTINGS: dict[str, Profile] = {
    "quick": _profile(
        "quick",
        dict(epochs=4, batch_size=64, **_ONECYCLE),
        models=("resnet20", "se_resnet20"),
        dataset="auto",
        train_subset=2000,
        test_subset=1000,
        images_per_class=20,
        timing_batch=2,
        timing_repeats=3,
        description="CPU and CI: ResNet-20 vs SE-ResNet-20 on a 2,000-image subset, 4 epochs (a smoke run)",
    ),
    "class": replace(
        _STEP,
        name="class",
        config=TrainConfig(epochs=15, batch_size=256, lr=0.2, **_ONECYCLE),
        seeds=(0,),
        timing_batch=64,
        description="one class period on a GPU: ResNet-50 vs SE-ResNet-50, 15 epochs of one-cycle SGD",
    ),
    "cpu": _profile(
        "cpu",
        # one-cycle's default rise: the first 30 % of the steps
        dict(
            epochs=40,
            batch_size=128,
            lr=0.2,
            nesterov=True,
            decay_norm_and_bias=False,
            label_smoothing=0.1,
            **_ONECYCLE,
        ),
        seeds=(0, 1, 2),
        models=("resnet20", "se_resnet20"),
        timing_batch=128,
        timing_repeats=5,
        description="full CIFAR-10 on a bf16 CPU: ResNet-20 vs SE-ResNet-20, 40 epochs (the pretrained networks)",
    ),
    "gpu": _profile(
        "gpu",
        dict(
            epochs=80,
            batch_size=500,  # 100 steps an epoch on CIFAR-10's 50,000 images: no partial batch to recompile
            lr=0.4,  # 0.1 per 128 images, scaled linearly (Goyal et al. 2017)
            nesterov=True,
            decay_norm_and_bias=False,
            label_smoothing=0.1,
            cutout=16,  # DeVries & Taylor 2017's length for CIFAR-10 (the anchor used 12 on ResNet-18)
            warmup_epochs=16,  # one-cycle's rise: 20 % of the run
            zero_init_residual=True,
            eval_every=10,
            save_every=10,
            tta=True,
            **_ONECYCLE,
        ),
        seeds=(0,),
        models=("resnet50", "se_resnet50"),
        timing_batch=256,
        description="the headline run: ResNet-50 vs SE-ResNet-50, 80 epochs, batch 500, aiming at >= 95.5 %",
    ),
    "he2016": _profile(
        "he2016",
        dict(epochs=164, batch_size=128, weight_decay=1e-4, milestones=(82, 123)),
        seeds=(0,),
        models=("resnet20", "se_resnet20"),
        timing_batch=128,
        description="He et al. 2016's CIFAR recipe (the SE paper's CIFAR baselines): 164 epochs, ÷10 at 82/123",
    ),
    "step": _STEP,
}

#: Why a reviewer would expect the ``gpu`` profile to reach 95.5 % on CIFAR-10 (not measured here).
GPU_PROFILE_RATIONALE = (
    "Anchor (theirs, cifar10-zoo): a ResNet-18 trained with Nesterov SGD, Cutout 12, batch 500 and a "
    "triangular (one-cycle) schedule reaches about 95.5 % single-crop test accuracy in 80 epochs. The gpu "
    "profile keeps that budget and schedule shape (80 epochs, batch 500, one-cycle with a 16-epoch rise, "
    "Nesterov) and Cutout, on a deeper network (ResNet-50 with the CIFAR stem, 1.30 GMACs an image by "
    "senet_lib.cost.count_macs), and adds label smoothing 0.1 and zero-initialised residual branches, which "
    "help rather than hurt at this budget; flip-TTA is reported beside single-crop, never instead of it. "
    "An expectation, not a result: no run of this profile is recorded yet."
)


def get_settings(name: str | None = None) -> Profile:
    """The :class:`Profile` called ``name`` (default: from :func:`senet_lib.env.get_profile`)."""
    return PROFILE_SETTINGS[get_profile(name)]


#: Sustained training rate assumed on each GPU, in TFLOP/s (an assumption, not a measurement): about
#: 18 % of a T4's fp16 tensor peak, 10 % of an H100's dense bf16 peak (small 32×32 convolutions).
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
    """MACs of one 32×32 image through ``model`` (10 classes)."""
    return count_macs(create_model(model, num_classes=10), (1, 3, 32, 32)).total


def recorded_cpu_throughput(results: str | Path | None = None) -> dict[tuple[str, str], tuple[float, str]]:
    """``(model, precision) → (median images/s, file name)`` from the CPU training records in ``results``
    (default: :func:`senet_lib.env.get_paths`' results folder); the fastest record wins per key."""
    folder = Path(results) if results is not None else get_paths(create=False).results
    found: dict[tuple[str, str], tuple[float, str]] = {}
    for path in sorted(folder.glob("train_*.json")) if folder.is_dir() else []:
        try:
            record = read_json(path)
            rates = [row["images_per_sec"] for row in record["history"] if row.get("images_per_sec")]
            key = (record["model"]["name"], record["precision"])
            on_cpu = record["device"] == "cpu"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # not a training record
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
