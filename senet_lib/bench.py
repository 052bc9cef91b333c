"""Training-throughput benchmark: ``python -m senet_lib bench``.

A benchmark, not a test: it measures and records, it asserts nothing. For each model and
variant it builds the same :class:`~senet_lib.train.Trainer` the notebooks use, runs a few
warm-up steps, synchronises the device, times several :meth:`Trainer.train_step` calls
(including fetching each batch from the loader, since the input pipeline is one of the things
compared) and reports training images per second.

Variants (``--variants``), each a combination of input pipeline, precision, memory format and
compilation:

==========================  =====================================================================
``baseline``                plain ``DataLoader`` with PIL transforms (``pipeline="torch"``), fp32
``device``                  device-resident pipeline (augmentation on the device), fp32
``device+amp``              device pipeline, mixed precision (bf16, or fp16 + GradScaler)
``device+amp+cl``           … plus channels-last memory format
``device+amp+cl+compile``   … plus ``torch.compile``
==========================  =====================================================================

The record (JSON, in the results folder) holds the device, torch version, commit, settings,
every measurement, the derived ratios and the targets they are compared with. The data are
synthetic images of CIFAR shape unless ``--dataset`` says otherwise: pixel values do not change
how long a training step takes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_write_json
from .data import ImageDataset, load_dataset, make_loaders
from .env import Environment, get_paths, get_precision, setup, synchronize
from .models import create_model
from .train import TrainConfig, Trainer

#: The issue's goals, printed beside the measured values. ``applies`` says when a goal is meant.
TARGETS = {
    "se_images_per_sec": {
        "target": 20_000.0,
        "goal": "SE-ResNet-50 (CIFAR stem) ≥ 20,000 training img/s on one H100",
    },
    "se_vs_plain_ratio": {
        "target": 0.92,
        "goal": "SE-ResNet-50 ≥ 0.92 × ResNet-50 training throughput",
    },
    "speedup_device_amp_vs_baseline": {
        "target": 5.0,
        "goal": "device-resident pipeline + mixed precision ≥ 5 × plain DataLoader + fp32",
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

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"pipeline": "torch", "amp": False, "channels_last": False, "compile": False},
    "device": {"pipeline": "device", "amp": False, "channels_last": False, "compile": False},
    "device+amp": {"pipeline": "device", "amp": True, "channels_last": False, "compile": False},
    "device+amp+cl": {"pipeline": "device", "amp": True, "channels_last": True, "compile": False},
    "device+amp+cl+compile": {"pipeline": "device", "amp": True, "channels_last": True, "compile": True},
}

DATA_NOTE = (
    "synthetic images of CIFAR shape (3x32x32): throughput does not depend on pixel values, "
    "so these numbers hold for real CIFAR of the same shape"
)


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. :func:`default_settings` picks values that suit the device."""

    models: tuple[str, ...]
    variants: tuple[str, ...]
    batch_size: int
    steps: int
    warmup: int
    dataset: str = "synthetic"
    num_workers: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"Unknown variant(s) {', '.join(unknown)}: use any of {', '.join(VARIANTS)}.")
        if self.steps < 1 or self.warmup < 0 or self.batch_size < 1:
            raise ValueError("steps and batch size must be at least 1 and warm-up at least 0.")
        if not self.models:
            raise ValueError("Name at least one model to benchmark.")


def default_settings(device: torch.device) -> BenchSettings:
    """GPU: SE-ResNet-50 vs ResNet-50 (CIFAR stem), batch 256, every variant. CPU/MPS: the small
    CIFAR ResNet-20 pair, batch 32, a few steps, no compilation (it takes minutes on a CPU)."""
    if device.type == "cuda":
        return BenchSettings(
            models=("se_resnet50", "resnet50"), variants=tuple(VARIANTS), batch_size=256, steps=30, warmup=10
        )
    return BenchSettings(
        models=("se_resnet20", "resnet20"),
        variants=("baseline", "device", "device+amp"),
        batch_size=32,
        steps=5,
        warmup=2,
    )


def _batches(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches from ``loader`` forever (a new pass starts when one ends)."""
    while True:
        produced = False
        for batch in loader:
            produced = True
            yield batch
        if not produced:
            raise ValueError("The benchmark's data loader produced no batch: use a larger dataset.")


def mixed_precision_name(device: torch.device) -> str:
    """The mixed precision the device uses: bf16 or fp16 on CUDA (as in training), bf16 elsewhere."""
    name = get_precision(device).name
    return name if name != "fp32" else "bf16"


def _build(
    model_name: str, data: ImageDataset, variant: str, settings: BenchSettings, device: torch.device
) -> tuple[Trainer, Iterator[tuple[torch.Tensor, torch.Tensor]], str]:
    """Model, trainer and an endless batch iterator for one (model, variant)."""
    spec = VARIANTS[variant]
    precision = mixed_precision_name(device) if spec["amp"] else "fp32"
    config = TrainConfig(
        epochs=1,
        batch_size=settings.batch_size,
        precision=precision,
        channels_last=spec["channels_last"],
        compile=spec["compile"],
        pipeline=spec["pipeline"],
        seed=settings.seed,
        progress=False,
    )
    torch.manual_seed(settings.seed)
    model = create_model(model_name, num_classes=data.num_classes)
    train_loader, _ = make_loaders(
        data,
        settings.batch_size,
        device,
        pipeline=spec["pipeline"],
        channels_last=spec["channels_last"],
        num_workers=settings.num_workers,
        seed=settings.seed,
    )
    trainer = Trainer(model, config, device, steps_per_epoch=max(len(train_loader), 1))
    return trainer, _batches(train_loader), precision


def measure(
    model_name: str, data: ImageDataset | None, variant: str, settings: BenchSettings, device: torch.device
) -> dict[str, Any]:
    """Training img/s of one (model, variant): ``warmup`` untimed steps, then ``steps`` timed ones.

    The clock is read after :func:`synchronize`, so queued GPU work is counted. A variant that
    cannot run here (e.g. ``torch.compile`` without a compiler) is recorded as failed with the
    error's first line instead of stopping the benchmark.
    """
    spec = VARIANTS[variant]
    row: dict[str, Any] = {"model": model_name, "variant": variant, **spec}
    try:
        trainer, batches, precision = _build(model_name, data, variant, settings, device)
        row["precision"] = precision
        for _ in range(settings.warmup):
            x, y = next(batches)
            trainer.train_step(x, y)
        synchronize(device)
        start = time.perf_counter()
        loss = None
        for _ in range(settings.steps):
            x, y = next(batches)
            loss = trainer.train_step(x, y)
        synchronize(device)
        seconds = time.perf_counter() - start
    except Exception as err:  # a variant that cannot run here is a result, not a crash
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        row.update(status="failed", error=f"{type(err).__name__}: {first_line}", images_per_sec=None)
        return row
    images = settings.steps * settings.batch_size
    row.update(
        status="ok",
        images_per_sec=images / seconds,
        step_ms=1000 * seconds / settings.steps,
        timed_steps=settings.steps,
        timed_seconds=seconds,
        final_loss=float(loss) if loss is not None else None,
    )
    return row


def _throughput(results: Sequence[dict], model: str, variant: str) -> float | None:
    for row in results:
        if row["model"] == model and row["variant"] == variant and row["status"] == "ok":
            return row["images_per_sec"]
    return None


def summarize(results: Sequence[dict], settings: BenchSettings) -> dict[str, Any]:
    """The headline numbers: best SE throughput, SE/plain ratio per variant and at the best
    variant, and the device+amp vs baseline speed-up of the first model."""
    se_models = [m for m in settings.models if m.startswith("se_")]
    se_model = se_models[0] if se_models else settings.models[0]
    plain_model = next((m for m in settings.models if m == se_model[3:]), None)
    ok = [r for r in results if r["model"] == se_model and r["status"] == "ok"]
    best = max(ok, key=lambda r: r["images_per_sec"]) if ok else None
    ratios = {}
    if plain_model:
        for variant in settings.variants:
            se, plain = _throughput(results, se_model, variant), _throughput(results, plain_model, variant)
            if se and plain:
                ratios[variant] = se / plain
    baseline = _throughput(results, se_model, "baseline")
    amp_variants = [
        v for v in ("device+amp", "device+amp+cl", "device+amp+cl+compile") if v in settings.variants
    ]
    amp = _throughput(results, se_model, "device+amp") if "device+amp" in amp_variants else None
    best_amp = max((t for v in amp_variants if (t := _throughput(results, se_model, v))), default=None)
    return {
        "se_model": se_model,
        "plain_model": plain_model,
        "best_variant": best["variant"] if best else None,
        "se_images_per_sec": best["images_per_sec"] if best else None,
        "se_vs_plain_ratio": ratios.get(best["variant"]) if best else None,
        "se_vs_plain_ratio_by_variant": ratios,
        "speedup_device_amp_vs_baseline": amp / baseline if amp and baseline else None,
        "speedup_best_amp_vs_baseline": best_amp / baseline if best_amp and baseline else None,
    }


def check_targets(summary: dict[str, Any], env: Environment) -> list[dict[str, Any]]:
    """Each target beside its measured value; ``applies`` is False when the run is not the one the
    target is for (e.g. the 20,000 img/s goal is for SE-ResNet-50 on an H100)."""
    on_h100 = env.device.type == "cuda" and "H100" in env.device_name
    checks = []
    for key, spec in TARGETS.items():
        measured = summary.get(key)
        if key == "se_images_per_sec":
            applies = on_h100 and summary["se_model"] == "se_resnet50"
        elif key == "se_vs_plain_ratio":
            applies = summary["se_model"] == "se_resnet50" and summary["plain_model"] == "resnet50"
        else:  # the goal for the input pipeline is about GPU training
            applies = env.device.type == "cuda"
        checks.append(
            {
                "name": key,
                "goal": spec["goal"],
                "target": spec["target"],
                "measured": measured,
                "applies": applies,
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

    trainer, batches, _ = _build(model_name, data, variant, settings, device)
    for _ in range(max(settings.warmup, 1)):
        trainer.train_step(*next(batches))
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.train_step(*next(batches))
        synchronize(device)
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
    """The images to train on: synthetic CIFAR-shaped data big enough for every timed step,
    or a named dataset."""
    if settings.dataset == "synthetic":
        needed = settings.batch_size * (settings.warmup + settings.steps + 1)
        return load_dataset("synthetic", synthetic_size=(needed, settings.batch_size), seed=settings.seed)
    return load_dataset(settings.dataset)


def run_benchmark(
    settings: BenchSettings | None = None,
    env: Environment | None = None,
    profile_trace: bool = False,
    verbose: bool = True,
) -> dict[str, Any]:
    """Measure every (model, variant) of ``settings`` and return the record (see module docstring)."""
    env = env or setup(verbose=False)
    settings = settings or default_settings(env.device)
    data = load_bench_data(settings)
    results = []
    for model_name in settings.models:
        for variant in settings.variants:
            row = measure(model_name, data, variant, settings, env.device)
            results.append(row)
            if verbose:
                shown = f"{row['images_per_sec']:,.0f} img/s" if row["status"] == "ok" else row["error"]
                print(f"  {model_name:<14} {variant:<24} {shown}", flush=True)
    summary = summarize(results, settings)
    record = {
        "kind": "benchmark",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": env.record(),
        "device": str(env.device),
        "device_name": env.device_name,
        "torch": env.torch_version,
        "commit": env.commit,
        "settings": {
            **asdict(settings),
            "dataset_label": getattr(data, "label", settings.dataset),
            "synthetic": bool(getattr(data, "synthetic", settings.dataset == "synthetic")),
            "image_shape": [3, 32, 32],
            "num_classes": data.num_classes,
            "timing": "train_step (forward, backward, optimiser step) plus fetching the batch; "
            "warm-up steps untimed; device synchronised before each clock read",
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


def format_record(record: dict[str, Any]) -> str:
    """A plain-text table of a benchmark record: measurements, ratios and targets."""
    lines = [
        f"Training throughput on {record['device_name']} ({record['device']}), torch {record['torch']}, "
        f"commit {record['commit']}",
        f"batch {record['settings']['batch_size']}, {record['settings']['steps']} timed steps after "
        f"{record['settings']['warmup']} warm-up; data: {record['settings']['dataset_label']}",
        "",
        f"{'model':<16}{'variant':<25}{'precision':<11}{'img/s':>12}{'ms/step':>10}",
    ]
    for row in record["results"]:
        if row["status"] == "ok":
            lines.append(
                f"{row['model']:<16}{row['variant']:<25}{row.get('precision', ''):<11}"
                f"{row['images_per_sec']:>12,.0f}{row['step_ms']:>10.1f}"
            )
        else:
            lines.append(f"{row['model']:<16}{row['variant']:<25}failed: {row['error']}")
    summary = record["summary"]
    if summary["se_vs_plain_ratio_by_variant"]:
        lines += ["", f"{summary['se_model']} / {summary['plain_model']} throughput ratio:"]
        lines += [f"  {v:<25}{r:.3f}" for v, r in summary["se_vs_plain_ratio_by_variant"].items()]
        lines += [
            f"  {name} (theirs): {ref['ratio']:.3f} — {ref['source']}"
            for name, ref in REFERENCE_RATIOS.items()
        ]
    lines += ["", f"{'target':<74}{'measured':>12}  status"]
    for check in record["targets"]:
        measured = _format_value(check["measured"])
        if check["measured"] is None:
            status = "not measured"
        elif not check["applies"]:
            status = ("met" if check["met"] else "below") + " (target is for another setting)"
        else:
            status = "MET" if check["met"] else "MISSED"
        lines.append(f"{check['goal']:<74}{measured:>12}  {status}")
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
    env = env or setup(verbose=False)
    print(f"Benchmarking {', '.join(settings.models)} on {env.device_name} …", flush=True)
    record = run_benchmark(settings, env, profile_trace=profile_trace)
    print()
    print(format_record(record))
    path = write_bench_record(record, out)
    print(f"\nRecord written to {path}")
    return path
