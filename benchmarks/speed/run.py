"""Running the whole benchmark: data, every variant, summary and record (:func:`run_benchmark`,
:func:`main_bench`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from senet_lib.env import Environment, setup

from .interleave import measure_interleaved
from .loop import measure_loop
from .report import _row_figures, check_targets, format_record, record_header, summarize, write_bench_record
from .settings import BenchSettings, backend_flags, default_settings, load_bench_data
from .timing import measure, profile_steps
from .variants import DATA_NOTE, REFERENCE_RATIOS, TIMING_NOTE


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
        if settings.interleave:
            rows = measure_interleaved(model_name, data, settings.variants, settings, env.device)
        else:
            rows = (measure(model_name, data, v, settings, env.device) for v in settings.variants)
        for row in rows:
            results.append(row)
            if verbose:
                print(f"  {model_name:<14} {row['variant']:<24} {_row_figures(row)}", flush=True)
    summary = summarize(results, settings)
    loop = None
    if settings.loop:
        if verbose:
            print(f"  {summary['se_model']:<14} {'fit vs bare step':<24} …", flush=True)
        loop = measure_loop(summary["se_model"], settings, env.device)
        summary["fit_vs_bare_step"] = loop.get("fit_vs_bare_step")
    workers = sorted({r["num_workers"] for r in results if r.get("num_workers") is not None})
    record = {
        **record_header("benchmark", env),
        "schema": 2,
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
        "loop": loop,
        "summary": summary,
        "targets": check_targets(summary, env),
        "reference_ratios": REFERENCE_RATIOS,
    }
    if profile_trace and summary["best_variant"] is not None:
        record["profile"] = profile_steps(
            summary["se_model"], data, summary["best_variant"], settings, env.device
        )
    return record


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
