"""Summarising benchmark results: medians, ratios against targets, the printed table and the JSON record."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from senet_lib.checkpoint import atomic_write_json
from senet_lib.env import Environment, get_paths

from .loop import format_loop
from .settings import BenchSettings
from .variants import REFERENCE_RATIOS, TARGETS


def _medians(results: Sequence[dict]) -> dict[tuple[str, str], float]:
    return {
        (r["model"], r["variant"]): r["images_per_sec"]
        for r in results
        if r.get("status") == "ok" and r.get("images_per_sec")
    }


def _round_rates(results: Sequence[dict], model: str, variant: str) -> dict[int, float]:
    """``{round: img/s}`` of one ok row whose repeats name their round (an interleaved run), else ``{}``."""
    for r in results:
        if r["model"] == model and r["variant"] == variant and r.get("status") == "ok":
            return {t["round"]: t["images_per_sec"] for t in r.get("repeats", ()) if "round" in t}
    return {}


def paired_speedups(results: Sequence[dict], model: str) -> dict[str, Any] | None:
    """``default`` over ``seed-style`` of ``model`` round by round (repeats timed side by side,
    :mod:`speed.interleave`): min, median and max over the rounds; None when the rows
    were not interleaved."""
    default, seed = _round_rates(results, model, "default"), _round_rates(results, model, "seed-style")
    ratios = [default[k] / seed[k] for k in sorted(default.keys() & seed.keys()) if seed[k] > 0]
    if not ratios:
        return None
    return {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios), "rounds": ratios}


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
    speedup_default, speedup_best, by_round = {}, {}, {}
    for model in settings.models:
        paired = paired_speedups(results, model)
        if paired:
            by_round[model] = paired
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
        "speedup_default_vs_seed_style_by_round": by_round,
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
        "fit_vs_bare_step": (summary.get("fit_vs_bare_step"), summary.get("fit_vs_bare_step") is not None),
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
        f"{', '.join(backend.get('cpu_bf16_units') or []) or 'none'}"
        + (f", vector ISA {backend['cpu_vector_isa']}" if backend.get("cpu_vector_isa") else "")
        + (f" ({cpu_id})" if (cpu_id := (record.get("environment") or {}).get("cpu_id")) else "")
        + f", DataLoader workers {record.get('dataloader_workers')}",
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
        if row.get("loader_images_per_sec") is not None:
            extra.append(f"loader alone {row['loader_images_per_sec']:,.0f} img/s")
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
                paired = (summary.get("speedup_default_vs_seed_style_by_round") or {}).get(model)
                if paired:
                    parts[-1] += (
                        f" (round by round {paired['min']:.2f}–{paired['max']:.2f}×, "
                        f"median {paired['median']:.2f}×)"
                    )
            best = summary["speedup_best_vs_seed_style"].get(model)
            if best:
                parts.append(f"fastest ({best['variant']}) {best['speedup']:.2f}×")
            lines.append(f"  {model:<14}{', '.join(parts)}")
    if record.get("loop"):
        lines += ["", *format_loop(record["loop"])]
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


def record_header(kind: str, env: Environment) -> dict[str, Any]:
    """What every benchmark record starts with: its kind, when, the device, versions, commit, environment."""
    return {
        "kind": kind,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(env.device),
        "device_name": env.device_name,
        "torch": env.torch_version,
        "commit": env.commit,
        "environment": env.record(),
    }


def write_bench_record(record: dict[str, Any], out: str | Path | None = None, prefix: str = "bench") -> Path:
    """Write ``record`` as ``<prefix>_<device>_<timestamp>.json`` into ``out`` (default: results folder).

    ``out`` may also be a file path ending in ``.json``.
    """
    out = Path(out) if out is not None else get_paths().results
    if out.suffix == ".json":
        path = out
    else:
        stamp = record["created"].replace(":", "").replace("-", "").replace("+0000", "Z")
        device = "".join(c if c.isalnum() else "-" for c in record["device_name"]).strip("-").lower()[:40]
        path = out / f"{prefix}_{device}_{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, record)
