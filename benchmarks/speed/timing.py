"""Timing one variant: build it, time repeated training steps, and profile a few steps."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from senet_lib.data import DeviceLoader, ImageDataset, make_loaders
from senet_lib.env import synchronize
from senet_lib.train import RunPlan, TrainConfig, Trainer, compile_reason

from .settings import BenchSettings, mixed_precision_name, tf32_settings
from .variants import VARIANTS


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


def index_batches(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches from ``loader`` forever (a new pass starts when one ends)."""
    while True:
        produced = False
        for batch in loader:
            produced = True
            yield batch
        if not produced:
            raise ValueError("The benchmark's data loader produced no batch: use a larger dataset.")


def build_trainer(
    model_name: str,
    data: ImageDataset,
    config: TrainConfig,
    device: torch.device,
    num_workers: int | None = None,
) -> tuple[Trainer, Any]:
    """A :class:`Trainer` for a fresh ``model_name`` (initialised from ``config.seed``) and the
    training loader ``config`` asks for, built as :func:`senet_lib.train.fit` builds them."""
    plan = RunPlan.resolve(config, device, model=model_name)  # the loader needs it before the Trainer
    train_loader, _ = make_loaders(
        data,
        config.batch_size,
        device,
        pipeline=config.pipeline,
        channels_last=plan.channels_last,
        num_workers=num_workers,
        seed=config.seed,
    )
    model = plan.build_model(data.num_classes)
    return Trainer(model, config, plan, steps_per_epoch=max(len(train_loader), 1)), train_loader


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
    trainer, train_loader = build_trainer(model_name, data, config, device, settings.num_workers)
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
    return trainer, index_batches(train_loader), info


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


def _loader_only(
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]], settings: BenchSettings, device: torch.device
) -> float:
    """Images per second that the input pipeline alone delivers (``steps`` batches fetched, no training):
    the ceiling the loader puts on a training row."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(settings.steps):
        next(batches)
    synchronize(device)
    return settings.steps * settings.batch_size / (time.perf_counter() - start)


def _first_line(err: BaseException) -> str:
    """``"TypeName: first line of the message"`` (just the type name when the message is empty)."""
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


@dataclass
class LiveVariant:
    """A (model, variant) built and warmed up, between its timed repeats: its record ``row`` (filled
    as it goes, so a failure still leaves what the variant resolved to), trainer, endless batches
    and the repeats timed so far."""

    row: dict[str, Any]
    trainer: Trainer
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]]
    repeats: list[dict[str, float]] = field(default_factory=list)
    loss: torch.Tensor | None = None

    def time_repeat(self, settings: BenchSettings, device: torch.device) -> None:
        """One more timed repeat (:func:`_timed_repeat`)."""
        timing, self.loss = _timed_repeat(self.trainer, self.batches, settings, device)
        self.repeats.append(timing)


def start_variant(
    row: dict[str, Any],
    model_name: str,
    data: ImageDataset,
    variant: str,
    settings: BenchSettings,
    device: torch.device,
) -> LiveVariant:
    """Build and warm up one (model, variant), filling ``row`` with what it resolved to and how long
    the warm-up took (the first step on its own: for compiled variants it holds the compilation)."""
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
    except BaseException:
        batches.close()  # stops DataLoader workers
        raise
    row.update(
        warmup_steps=settings.warmup,
        first_step_seconds=first_step,
        warmup_seconds=time.perf_counter() - start,
        compile_seconds=first_step if info["compile"] else None,
        compile_mode="torch.compile(dynamic=False), default mode" if info["compile"] else None,
    )
    return LiveVariant(row, trainer, batches)


def finish_variant(live: LiveVariant, settings: BenchSettings, device: torch.device) -> None:
    """Time the loader alone, stop the batches and fill ``live.row`` with the repeats' statistics."""
    try:
        loader_images_per_sec = _loader_only(live.batches, settings, device)
    finally:
        live.batches.close()  # stops DataLoader workers
    repeats = live.repeats
    live.row.update(
        status="ok",
        **throughput_stats([r["images_per_sec"] for r in repeats]),
        step_ms=statistics.median(1000 * r["seconds"] / r["steps"] for r in repeats),
        repeats=repeats,
        timed_steps=sum(r["steps"] for r in repeats),
        loader_images_per_sec=loader_images_per_sec,
        peak_memory_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        final_loss=float(live.loss) if live.loss is not None else None,
    )


def record_failure(row: dict[str, Any], err: BaseException) -> None:
    """Mark ``row`` failed with the error's first line (a variant that cannot run here is a result)."""
    row.update(status="failed", error=_first_line(err), images_per_sec=None)


def release(compiled: bool, device: torch.device) -> None:
    """Free what timed variants left: dynamo's caches (after a compiled one), garbage, CUDA's cache."""
    if compiled:
        torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


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
            live = start_variant(row, model_name, data, variant, settings, device)
            try:
                for _ in range(settings.repeats):
                    live.time_repeat(settings, device)
            except BaseException:
                live.batches.close()
                raise
            finish_variant(live, settings, device)
    except Exception as err:  # a variant that cannot run here is a result, not a crash
        record_failure(row, err)
    finally:
        release(spec.compile, device)
    return row


def profiled_steps(
    trainer: Trainer, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], steps: int, device: torch.device
) -> tuple[Any, str]:
    """``steps`` training steps of a warmed-up ``trainer`` under ``torch.profiler``: the profiler's key
    averages and the name of the attribute that holds each operator's self time on ``device``."""
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(device)
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.train_step(*next(batches))
        synchronize(device)
    return prof.key_averages(), "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"


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
    device = torch.device(device)
    with tf32_settings(device, disable=VARIANTS[variant].true_fp32):
        trainer, batches, _ = _build(model_name, data, variant, settings, device)
        try:
            for _ in range(settings.warmup):
                trainer.train_step(*next(batches))
            averages, key = profiled_steps(trainer, batches, steps, device)
        finally:
            batches.close()
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
