"""Training-throughput benchmark: ``python -m senet_lib bench``.

A benchmark, not a test: it measures and records, it asserts nothing. For each model and
variant it builds the same :class:`~senet_lib.train.Trainer` the notebooks use, runs ``warmup``
untimed steps, then times ``repeats`` runs of :meth:`Trainer.train_step` calls (including
fetching each batch from the loader, since the input pipeline is one of the things compared).
Each run lasts at least ``steps`` steps *and* at least ``min_seconds`` seconds, whichever ends
later, but never more than ``max_steps`` steps. A row reports the **median** training images per
second of its runs, their min and max, and the relative spread ``(max - min) / median``; every
run's own figures stay in the record. Ratios and speed-ups are computed from the medians.

Variants (``--variants``), each a combination of input pipeline, precision, memory format and
compilation:

==========================  =========================================================================
``seed-style``              torchvision transforms in a ``DataLoader`` (``pipeline="torch"``), true
                            fp32: no autocast, channels-first, and TF32 switched off on CUDA while it
                            runs (restored afterwards): the loop a first tutorial writes
``device-fp32``             device-resident loader (augmentation on the device), fp32 (TF32 as torch's
                            own defaults leave it on CUDA: off for matmuls, on for cuDNN convolutions)
``device-bf16``             device loader, bf16 autocast (fp16 + GradScaler on CUDA GPUs without bf16;
                            the row's ``precision`` says which)
``device-bf16-cl``          … plus channels-last memory format
``default``                 whatever the library chooses on this device: ``TrainConfig(precision=None,
                            channels_last=None, pipeline="auto")``; the row records what that resolved to
``device-bf16-cl-compile``  ``device-bf16-cl`` plus ``torch.compile`` (CUDA defaults only)
==========================  =========================================================================

The old names still work: ``baseline``, ``device``, ``device+amp``, ``device+amp+cl`` and
``device+amp+cl+compile`` (also ``+compile``) mean the variants above, in that order.

The record (JSON, in the results folder) holds the environment (:meth:`Environment.record`),
backend flags (CPU bf16 units, torch threads, TF32 and ``cudnn.benchmark``, CUDA/cuDNN versions),
the settings, every measurement, the derived ratios and the targets they are compared with. The
data are synthetic images of CIFAR shape unless ``--dataset`` says otherwise: pixel values do
not change how long a training step takes.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_write_json
from .data import DeviceLoader, ImageDataset, load_dataset, make_loaders
from .env import Environment, cpu_bf16_units, get_paths, setup, synchronize
from .models import create_model
from .train import TrainConfig, Trainer, compile_reason, resolve_channels_last


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
    "device-bf16": Variant(
        "device loader + bf16 autocast (fp16 where a GPU lacks bf16)", "device", "mixed", False
    ),
    "device-bf16-cl": Variant("device loader + bf16 autocast + channels-last", "device", "mixed", True),
    "default": Variant(
        "the library's defaults on this device (precision, channels-last, pipeline)", "auto", None, None
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
    "`min_seconds` seconds (at most `max_steps` steps); rows report the median over repeats"
)


def canonical_variant(name: str) -> str:
    """The variant ``name`` means (an old name is translated), or a ValueError listing the valid ones."""
    name = ALIASES.get(name, name)
    if name not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}: use any of {', '.join(VARIANTS)}.")
    return name


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. :func:`default_settings` picks values that suit the device.

    ``train_images`` is the size of the (synthetic) training split the loaders cycle through;
    None means just enough for the warm-up and one repeat's ``steps``.
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


def default_variants(device: torch.device) -> tuple[str, ...]:
    """Every variant on CUDA; on a CPU all but compilation (it takes minutes there); on MPS also no
    bf16 variant (bf16 autocast is not a training path there)."""
    device = torch.device(device)
    if device.type == "cuda":
        return tuple(VARIANTS)
    names = tuple(name for name, spec in VARIANTS.items() if not spec.compile)
    if device.type == "mps":
        names = tuple(name for name in names if not VARIANTS[name].uses_bf16)
    return names


def default_settings(device: torch.device) -> BenchSettings:
    """CUDA: SE-ResNet-50 vs ResNet-50 (CIFAR stem), batch 256, every variant, a CIFAR-sized epoch
    of 50,000 images. CPU/MPS: the CIFAR ResNet-20 pair, batch 128, no compilation. Everywhere:
    3 repeats of at least 3 s each, reporting the median."""
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
    """Settings that change throughput: CPU bf16 units, torch threads, fp32 matmul precision and,
    on CUDA, the CUDA/cuDNN versions, TF32 flags and ``cudnn.benchmark``."""
    device = torch.device(device)
    flags: dict[str, Any] = {
        "cpu_bf16_units": cpu_bf16_units(),
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


def throughput_stats(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and relative spread ``(max - min) / median`` of per-repeat img/s."""
    if not values:
        raise ValueError("No repeat was timed: pass --repeats 1 or more.")
    median = statistics.median(values)
    low, high = min(values), max(values)
    return {
        "images_per_sec": median,
        "images_per_sec_min": low,
        "images_per_sec_max": high,
        "relative_spread": (high - low) / median if median > 0 else 0.0,
    }


def _batches(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches from ``loader`` forever (a new pass starts when one ends)."""
    while True:
        produced = False
        for batch in loader:
            produced = True
            yield batch
        if not produced:
            raise ValueError("The benchmark's data loader produced no batch: use a larger dataset.")


def _build(
    model_name: str, data: ImageDataset, variant: str, settings: BenchSettings, device: torch.device
) -> tuple[Trainer, Iterator[tuple[torch.Tensor, torch.Tensor]], dict[str, Any]]:
    """Model, trainer, an endless batch iterator and what the variant resolved to on ``device``."""
    spec = VARIANTS[variant]
    precision = mixed_precision_name(device) if spec.precision == "mixed" else spec.precision
    config = TrainConfig(
        epochs=1,
        batch_size=settings.batch_size,
        precision=precision,
        channels_last=spec.channels_last,
        compile=spec.compile,
        pipeline=spec.pipeline,
        seed=settings.seed,
        progress=False,
    )
    channels_last = resolve_channels_last(device, config)  # the loader needs it before the Trainer
    torch.manual_seed(settings.seed)
    model = create_model(model_name, num_classes=data.num_classes)
    train_loader, _ = make_loaders(
        data,
        settings.batch_size,
        device,
        pipeline=spec.pipeline,
        channels_last=channels_last,
        num_workers=settings.num_workers,
        seed=settings.seed,
    )
    trainer = Trainer(model, config, device, steps_per_epoch=max(len(train_loader), 1))
    is_device = isinstance(train_loader, DeviceLoader)
    info = {
        "pipeline": "device" if is_device else "torch",
        "pipeline_requested": spec.pipeline,
        "num_workers": None if is_device else int(getattr(train_loader, "num_workers", 0)),
        "precision": trainer.precision.name,
        "precision_reason": trainer.precision.reason,
        "grad_scaler": trainer.precision.use_grad_scaler,
        "channels_last": trainer.channels_last,
        "compile": spec.compile and compile_reason(device) is None,
    }
    return trainer, _batches(train_loader), info


def _timed_repeat(
    trainer: Trainer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    settings: BenchSettings,
    device: torch.device,
) -> tuple[dict[str, float], torch.Tensor]:
    """One timed run: at least ``steps`` steps and ``min_seconds`` seconds, at most ``max_steps``.

    The stopping test reads the host clock without waiting for the device; the host can only be
    ahead of the device, so the synchronised time measured at the end is never shorter.
    """
    synchronize(device)
    start = time.perf_counter()
    steps = 0
    loss = torch.zeros(())
    while steps < settings.max_steps:
        loss = trainer.train_step(*next(batches))
        steps += 1
        if steps >= settings.steps and time.perf_counter() - start >= settings.min_seconds:
            break
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"steps": steps, "seconds": seconds, "images_per_sec": steps * settings.batch_size / seconds}, loss


def _first_line(err: BaseException) -> str:
    """``"TypeName: first line of the message"`` (just the type name when the message is empty)."""
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _time_variant(
    row: dict[str, Any],
    model_name: str,
    data: ImageDataset,
    variant: str,
    settings: BenchSettings,
    device: torch.device,
) -> None:
    """Build, warm up and time one (model, variant), filling ``row`` as it goes (so a failure
    still leaves what the variant resolved to)."""
    trainer, batches, info = _build(model_name, data, variant, settings, device)
    row.update(info)
    row["true_fp32"] = (
        info["precision"] == "fp32"
        and torch.get_float32_matmul_precision() == "highest"
        and (row.get("tf32") is None or not any(row["tf32"].values()))
    )
    try:
        synchronize(device)
        start = time.perf_counter()
        first_step = 0.0
        for i in range(settings.warmup):
            trainer.train_step(*next(batches))
            if i == 0:
                synchronize(device)
                first_step = time.perf_counter() - start
        synchronize(device)
        warmup_seconds = time.perf_counter() - start
        repeats, loss = [], None
        for _ in range(settings.repeats):
            timing, loss = _timed_repeat(trainer, batches, settings, device)
            repeats.append(timing)
    finally:
        batches.close()  # stops DataLoader workers
    row.update(
        status="ok",
        **throughput_stats([r["images_per_sec"] for r in repeats]),
        step_ms=statistics.median(1000 * r["seconds"] / r["steps"] for r in repeats),
        repeats=repeats,
        timed_steps=sum(r["steps"] for r in repeats),
        warmup_steps=settings.warmup,
        first_step_seconds=first_step,
        warmup_seconds=warmup_seconds,
        compile_seconds=first_step if info["compile"] else None,
        peak_memory_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        final_loss=float(loss) if loss is not None else None,
    )


def measure(
    model_name: str, data: ImageDataset | None, variant: str, settings: BenchSettings, device: torch.device
) -> dict[str, Any]:
    """Training img/s of one (model, variant): ``warmup`` untimed steps, then ``repeats`` timed runs.

    The clock is read after :func:`synchronize`, so queued GPU work is counted. The first
    warm-up step is timed on its own (``first_step_seconds``; for compiled variants it holds the
    compilation, ``compile_seconds``). On CUDA ``peak_memory_mb`` is the peak allocated memory
    of the row (model, optimiser, activations and the device-resident data). A variant that
    cannot run here (e.g. ``torch.compile`` without a compiler) is recorded as failed with the
    error's first line instead of stopping the benchmark.
    """
    spec = VARIANTS[variant]
    device = torch.device(device)
    row: dict[str, Any] = {"model": model_name, "variant": variant, "description": spec.description}
    try:
        with tf32_settings(device, disable=spec.true_fp32) as tf32:
            row["tf32"] = tf32
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            _time_variant(row, model_name, data, variant, settings, device)
    except Exception as err:  # a variant that cannot run here is a result, not a crash
        row.update(status="failed", error=_first_line(err), images_per_sec=None)
    finally:
        if spec.compile:
            torch._dynamo.reset()
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def _medians(results: Sequence[dict]) -> dict[tuple[str, str], float]:
    return {
        (r["model"], r["variant"]): r["images_per_sec"]
        for r in results
        if r.get("status") == "ok" and r.get("images_per_sec")
    }


def summarize(results: Sequence[dict], settings: BenchSettings) -> dict[str, Any]:
    """The headline numbers, all from the rows' medians: best SE variant and its throughput, SE/plain
    ratio per variant and at the best variant, and per model the speed-up of ``default`` (and of
    the fastest variant) over ``seed-style``."""
    medians = _medians(results)
    se_models = [m for m in settings.models if m.startswith("se_")]
    se_model = se_models[0] if se_models else settings.models[0]
    plain_model = se_model[3:] if se_model.startswith("se_") and se_model[3:] in settings.models else None
    se_rows = {v: t for (m, v), t in medians.items() if m == se_model}
    best_variant = max(se_rows, key=se_rows.__getitem__) if se_rows else None
    ratios = {}
    if plain_model:
        for variant in settings.variants:
            se, plain = medians.get((se_model, variant)), medians.get((plain_model, variant))
            if se and plain:
                ratios[variant] = se / plain
    speedup_default, speedup_best = {}, {}
    for model in settings.models:
        seed = medians.get((model, "seed-style"))
        if not seed:
            continue
        if (model, "default") in medians:
            speedup_default[model] = medians[(model, "default")] / seed
        others = {v: t for (m, v), t in medians.items() if m == model and v != "seed-style"}
        if others:
            fastest = max(others, key=others.__getitem__)
            speedup_best[model] = {"variant": fastest, "speedup": others[fastest] / seed}
    return {
        "statistic": "median over repeats",
        "se_model": se_model,
        "plain_model": plain_model,
        "best_variant": best_variant,
        "se_images_per_sec": se_rows.get(best_variant) if best_variant else None,
        "se_vs_plain_ratio": ratios.get(best_variant) if best_variant else None,
        "se_vs_plain_ratio_by_variant": ratios,
        "speedup_default_vs_seed_style": speedup_default,
        "speedup_best_vs_seed_style": speedup_best,
    }


def check_targets(summary: dict[str, Any], env: Environment) -> list[dict[str, Any]]:
    """Each target beside its measured value; ``applies`` is False when the run is not the one the
    target is for (e.g. the 20,000 img/s goal is for SE-ResNet-50 on an H100)."""
    device = env.device.type
    pair = summary["se_model"] == "se_resnet50" and summary["plain_model"] == "resnet50"
    default_speedups = summary.get("speedup_default_vs_seed_style") or {}
    measured_applies = {
        "se_images_per_sec": (
            summary.get("se_images_per_sec"),
            device == "cuda" and "H100" in env.device_name and summary["se_model"] == "se_resnet50",
        ),
        "se_vs_plain_ratio": (summary.get("se_vs_plain_ratio"), device == "cuda" and pair),
        "cuda_default_vs_seed_style": (default_speedups.get(summary["se_model"]), device == "cuda"),
        "cpu_default_vs_seed_style": (
            default_speedups.get("se_resnet20"),
            device == "cpu" and summary["se_model"] == "se_resnet20",
        ),
    }
    checks = []
    for key, spec in TARGETS.items():
        measured, applies = measured_applies[key]
        checks.append(
            {
                "name": key,
                "goal": spec["goal"],
                "target": spec["target"],
                "applies_when": spec["applies_when"],
                "measured": measured,
                "applies": bool(applies),
                "met": None if measured is None else bool(measured >= spec["target"]),
            }
        )
    return checks


def profile_steps(
    model_name: str,
    data: ImageDataset,
    variant: str,
    settings: BenchSettings,
    device: torch.device,
    steps: int = 5,
    row_limit: int = 15,
) -> list[dict[str, Any]]:
    """Run ``steps`` training steps under ``torch.profiler``, print the top-ops table and return it.

    Use it when a target is missed, to see whether time goes to convolutions, the SE block's
    small ops, the data pipeline or the optimiser.
    """
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(device)
    with tf32_settings(device, disable=VARIANTS[variant].true_fp32):
        trainer, batches, _ = _build(model_name, data, variant, settings, device)
        try:
            for _ in range(settings.warmup):
                trainer.train_step(*next(batches))
            synchronize(device)
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
            with profile(activities=activities) as prof:
                for _ in range(steps):
                    trainer.train_step(*next(batches))
                synchronize(device)
        finally:
            batches.close()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    print(f"\nProfiler: {model_name} [{variant}], {steps} steps, sorted by {key}")
    print(averages.table(sort_by=key, row_limit=row_limit))
    rows = sorted(averages, key=lambda e: getattr(e, key, 0) or 0, reverse=True)[:row_limit]
    return [
        {
            "op": e.key,
            "calls": e.count,
            "self_cpu_ms": e.self_cpu_time_total / 1000,
            "self_device_ms": (getattr(e, "self_device_time_total", 0) or 0) / 1000,
        }
        for e in rows
    ]


def load_bench_data(settings: BenchSettings) -> ImageDataset:
    """The images to train on: synthetic CIFAR-shaped data (``train_images`` of them, by default
    enough for the warm-up and one repeat's ``steps``), or a named dataset."""
    needed = settings.batch_size * (settings.warmup + settings.steps + 1)
    if settings.dataset == "synthetic":
        size = settings.train_images or needed
        return load_dataset("synthetic", synthetic_size=(size, settings.batch_size), seed=settings.seed)
    data = load_dataset(settings.dataset)
    if settings.train_images is not None and settings.train_images < len(data.train):
        data = data.subset(settings.train_images, None, seed=settings.seed)
    return data


def run_benchmark(
    settings: BenchSettings | None = None,
    env: Environment | None = None,
    profile_trace: bool = False,
    verbose: bool = True,
) -> dict[str, Any]:
    """Measure every (model, variant) of ``settings`` and return the record (see module docstring)."""
    env = env or setup(seed=None, verbose=False)
    settings = settings or default_settings(env.device)
    backend = backend_flags(env.device)  # before any variant runs (and temporarily changes TF32)
    data = load_bench_data(settings)
    results = []
    for model_name in settings.models:
        for variant in settings.variants:
            row = measure(model_name, data, variant, settings, env.device)
            results.append(row)
            if verbose:
                print(f"  {model_name:<14} {variant:<24} {_row_figures(row)}", flush=True)
    summary = summarize(results, settings)
    workers = sorted({r["num_workers"] for r in results if r.get("num_workers") is not None})
    record = {
        "kind": "benchmark",
        "schema": 2,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(env.device),
        "device_name": env.device_name,
        "torch": env.torch_version,
        "commit": env.commit,
        "environment": env.record(),
        "backend": backend,
        "dataloader_workers": workers[0] if len(workers) == 1 else (workers or None),
        "settings": {
            **asdict(settings),
            "train_images": len(data.train),
            "dataset_label": getattr(data, "label", settings.dataset),
            "synthetic": bool(getattr(data, "synthetic", settings.dataset == "synthetic")),
            "image_shape": [3, 32, 32],
            "num_classes": data.num_classes,
            "timing": TIMING_NOTE,
        },
        "data_note": DATA_NOTE if settings.dataset == "synthetic" else f"real {settings.dataset} images",
        "results": results,
        "summary": summary,
        "targets": check_targets(summary, env),
        "reference_ratios": REFERENCE_RATIOS,
    }
    if profile_trace and summary["best_variant"] is not None:
        record["profile"] = profile_steps(
            summary["se_model"], data, summary["best_variant"], settings, env.device
        )
    return record


def _row_figures(row: dict[str, Any]) -> str:
    """``median img/s ± spread %`` of an ok row, else its error."""
    if row.get("status") != "ok":
        return f"failed: {row.get('error')}"
    return f"{row['images_per_sec']:,.0f} img/s ± {100 * row['relative_spread'] / 2:.1f}%"


def format_record(record: dict[str, Any]) -> str:
    """A plain-text table of a benchmark record: medians with their spread, ratios, speed-ups and
    targets."""
    settings = record["settings"]
    backend = record.get("backend") or {}
    cuda = backend.get("cuda")
    lines = [
        f"Training throughput on {record['device_name']} ({record['device']}), torch {record['torch']}, "
        f"commit {record['commit']}",
        f"batch {settings['batch_size']}, {settings['warmup']} warm-up steps, then {settings['repeats']} repeats "
        f"of ≥ {settings['steps']} steps and ≥ {settings['min_seconds']:g} s (≤ {settings['max_steps']} steps); "
        f"data: {settings['dataset_label']}, {settings['train_images']} training images",
        f"torch threads {backend.get('torch_threads')}, CPU bf16 units: "
        f"{', '.join(backend.get('cpu_bf16_units') or []) or 'none'}, DataLoader workers "
        f"{record.get('dataloader_workers')}",
    ]
    if cuda:
        lines.append(
            f"CUDA {cuda['cuda_version']}, cuDNN {cuda['cudnn_version']}, TF32 matmul "
            f"{cuda['matmul_allow_tf32']}, TF32 cuDNN {cuda['cudnn_allow_tf32']} (off for seed-style), "
            f"cudnn.benchmark {cuda['cudnn_benchmark']}"
        )
    lines += [
        "img/s: median of the repeats ± half their spread (max - min), with min–max",
        "",
        f"{'model':<14}{'variant':<24}{'loader':<8}{'prec':<6}{'layout':<7}{'img/s':>10}{'±':>8}"
        f"{'min–max':>20}{'ms/step':>9}",
    ]
    for row in record["results"]:
        head = f"{row['model']:<14}{row['variant']:<24}"
        if row.get("status") != "ok":
            lines.append(f"{head}failed: {row.get('error')}")
            continue
        layout = "NHWC" if row.get("channels_last") else "NCHW"
        low_high = f"{row['images_per_sec_min']:,.0f}–{row['images_per_sec_max']:,.0f}"
        extra = []
        if row.get("compile_seconds") is not None:
            extra.append(f"compile {row['compile_seconds']:.1f} s")
        if row.get("peak_memory_mb") is not None:
            extra.append(f"peak {row['peak_memory_mb']:,.0f} MiB")
        lines.append(
            f"{head}{row.get('pipeline', ''):<8}{row.get('precision', ''):<6}{layout:<7}"
            f"{row['images_per_sec']:>10,.0f}{100 * row['relative_spread'] / 2:>7.1f}%{low_high:>20}"
            f"{row['step_ms']:>9.1f}" + (f"  ({', '.join(extra)})" if extra else "")
        )
    default_rows = [r for r in record["results"] if r["variant"] == "default" and r.get("status") == "ok"]
    if default_rows:
        r = default_rows[0]
        lines += [
            "",
            f"default resolved to: pipeline {r['pipeline']}, precision {r['precision']} ({r['precision_reason']}), "
            f"channels-last {r['channels_last']}",
        ]
    summary = record["summary"]
    if summary["se_vs_plain_ratio_by_variant"]:
        lines += ["", f"{summary['se_model']} / {summary['plain_model']} throughput ratio (medians):"]
        lines += [f"  {v:<25}{r:.3f}" for v, r in summary["se_vs_plain_ratio_by_variant"].items()]
        lines += [
            f"  {name} (theirs): {ref['ratio']:.3f} — {ref['source']}"
            for name, ref in REFERENCE_RATIOS.items()
        ]
    if summary["speedup_default_vs_seed_style"] or summary["speedup_best_vs_seed_style"]:
        lines += ["", "speed-up over seed-style (medians):"]
        for model in dict.fromkeys(
            [*summary["speedup_default_vs_seed_style"], *summary["speedup_best_vs_seed_style"]]
        ):
            parts = []
            if model in summary["speedup_default_vs_seed_style"]:
                parts.append(f"default {summary['speedup_default_vs_seed_style'][model]:.2f}×")
            best = summary["speedup_best_vs_seed_style"].get(model)
            if best:
                parts.append(f"fastest ({best['variant']}) {best['speedup']:.2f}×")
            lines.append(f"  {model:<14}{', '.join(parts)}")
    lines += ["", f"{'target':<84}{'measured':>12}  status"]
    for check in record["targets"]:
        measured = _format_value(check["measured"])
        if check["measured"] is None:
            status = "not measured"
        elif not check["applies"]:
            status = ("met" if check["met"] else "below") + f" (target is for {check['applies_when']})"
        else:
            status = "MET" if check["met"] else "MISSED"
        lines.append(f"{check['goal']:<84}{measured:>12}  {status}")
    return "\n".join(lines)


def _format_value(value: float | None) -> str:
    """``—`` for None, thousands with no decimals for throughputs, three decimals for ratios."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"


def write_bench_record(record: dict[str, Any], out: str | Path | None = None) -> Path:
    """Write ``record`` as ``bench_<device>_<timestamp>.json`` into ``out`` (default: results folder).

    ``out`` may also be a file path ending in ``.json``.
    """
    out = Path(out) if out is not None else get_paths().results
    if out.suffix == ".json":
        path = out
    else:
        stamp = record["created"].replace(":", "").replace("-", "").replace("+0000", "Z")
        device = "".join(c if c.isalnum() else "-" for c in record["device_name"]).strip("-").lower()[:40]
        path = out / f"bench_{device}_{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, record)


def main_bench(
    settings: BenchSettings,
    out: str | Path | None = None,
    profile_trace: bool = False,
    env: Environment | None = None,
) -> Path:
    """Run, print and record the benchmark; returns the record's path."""
    env = env or setup(seed=None, verbose=False)
    print(f"Benchmarking {', '.join(settings.models)} on {env.device_name} …", flush=True)
    record = run_benchmark(settings, env, profile_trace=profile_trace)
    print()
    print(format_record(record))
    path = write_bench_record(record, out)
    print(f"\nRecord written to {path}")
    return path
