#!/usr/bin/env python
"""Build the generated sections of README, docs/results.md and docs/benchmarks.md, and the accuracy-curve
figures, from the records in results/.

    python scripts/build_results.py            # rewrite the sections + figures/results_*.png|pdf|json
    python scripts/build_results.py --check    # exit 1 if a section is not what the records give

Nothing in those README sections is typed by hand: training runs (``kind: train``, written by
``python -m senet_lib train --record`` or ``senet_lib.train.write_record``), benchmark records
(``kind: benchmark``, from ``python benchmarks/train_speed.py``) and notebook runtimes (``scripts/run_notebooks.py``, run by ``make tutorial``) are read and rendered,
each with its device, data and commit. The paper's and other people's numbers are printed beside
ours from :data:`REFERENCES`, labelled as theirs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Other people's numbers (test accuracy %, = 100 − error) per dataset, from ../shared/PAPER_FACTS.md.
REFERENCES_CIFAR100: list[tuple[str, str, str]] = [
    ("ResNet-110 → SE-ResNet-110", "73.12 → 76.15", "SE paper v4, Table 5 (single runs; flip + crop)"),
    ("ResNet-164 → SE-ResNet-164", "75.67 → 78.69", "SE paper v4, Table 5 (pre-activation ResNet-164)"),
]
REFERENCES: list[tuple[str, str, str]] = [
    ("ResNet-110 → SE-ResNet-110", "93.63 → 94.79", "SE paper v4, Table 4 (single runs; flip + crop)"),
    ("ResNet-164 → SE-ResNet-164", "94.54 → 95.61", "SE paper v4, Table 4 (pre-activation ResNet-164)"),
    ("ResNet-20 / ResNet-56", "91.25 / 93.03", "He et al. 2016 (post-activation; error 8.75 / 6.97)"),
    ("ResNet-20 → SE-ResNet-20", "91.30 → 91.70", "SENet-tf, best test accuracy over 5 runs"),
    (
        "ResNet → SE-ResNet → SE-ResNet + Cutout",
        "93.73 → 93.85 → 95.24",
        "LEEYEONSU/pytorch--SENet (PyTorch, BatchNorm; theirs)",
    ),
]


def load_records(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Every JSON record under ``folder``, grouped by its ``kind``, each with its file name."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise SystemExit(f"{path} is not valid JSON ({err}); fix or delete it and run again.") from err
        if isinstance(record, dict) and "kind" in record:
            record["_file"] = path.name
            groups[record["kind"]].append(record)
    return groups


def _pct(values: list[float]) -> str:
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _recipe_key(record: dict[str, Any]) -> tuple:
    recipe = record.get("recipe", {})
    data = record.get("dataset", {})
    return (
        data.get("label", data.get("name")),
        data.get("train_size"),
        recipe.get("epochs"),
        recipe.get("schedule"),
        recipe.get("lr"),
        recipe.get("batch_size"),
        recipe.get("cutout"),
    )


def _recipe_text(record: dict[str, Any]) -> str:
    r = record.get("recipe", {})
    parts = [
        f"{r.get('epochs')} epochs",
        f"SGD lr {r.get('lr')} ({r.get('schedule')})",
        f"momentum {r.get('momentum')}",
        f"wd {r.get('weight_decay')}",
        f"batch {r.get('batch_size')}",
    ]
    if r.get("cutout"):
        parts.append(f"Cutout {r['cutout']}")
    if r.get("label_smoothing"):
        parts.append(f"label smoothing {r['label_smoothing']}")
    return ", ".join(parts)


def _trained_in(record: dict[str, Any]) -> str:
    """The record's precision; a run resumed in another precision names each with its epochs."""
    segments = record.get("segments") or []
    if len({s.get("precision") for s in segments if s.get("precision")}) <= 1:
        return str(record.get("precision") or "?")
    return " + ".join(f"{s.get('precision') or '?'} (epochs {s['first']}–{s['last']})" for s in segments)


def _devices(record: dict[str, Any]) -> set[str]:
    """Every device a run trained on: the finishing one and, for resumed runs, those of its segments."""
    found = {s["device_name"] for s in record.get("segments") or [] if s.get("device_name")}
    return found | {str(record.get("device_name") or record.get("device"))}


def paired_line(rows: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
    """For each SE network whose plain twin (its name without ``se_``) ran the same seeds in the same
    precision: the seed-by-seed differences of final test accuracy, their mean and spread, and how many
    favour SE. Seeds that only one of the two ran are left out; fewer than two common seeds give nothing."""
    lines = []
    for (model, precision), runs in sorted(rows.items()):
        plain_name = model.removeprefix("se_").split(" (")[0]  # options such as (reduction=4) are SE's
        plain = rows.get((plain_name, precision))
        if not model.startswith("se_") or not plain:
            continue
        se_by_seed = {r.get("seed"): r["final_test_acc"] for r in runs}
        plain_by_seed = {r.get("seed"): r["final_test_acc"] for r in plain}
        seeds = sorted(set(se_by_seed) & set(plain_by_seed), key=str)
        if len(seeds) < 2:
            continue
        diffs = [100 * (se_by_seed[s] - plain_by_seed[s]) for s in seeds]
        ahead = sum(d > 0 for d in diffs)
        lines.append(
            f"Paired by seed ({precision}, seeds {', '.join(map(str, seeds))}): {model} − "
            f"{plain_name} = {', '.join(f'{d:+.2f}' for d in diffs)} points "
            f"(mean {statistics.mean(diffs):+.2f} ± {statistics.stdev(diffs):.2f}); "
            f"SE ahead in {ahead} of {len(seeds)}."
        )
    return lines


def model_label(record: dict[str, Any]) -> str:
    """The model's name with the options it was built with (``se_resnet20 (reduction=4)``)."""
    model = record.get("model") or {}
    options = {k: v for k, v in model.items() if k not in ("name", "num_classes")}
    extra = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return f"{model.get('name')} ({extra})" if extra else str(model.get("name"))


#: README's table leaves out short runs (smoke tests of an early commit): full data, at least this many epochs.
HEADLINE_MIN_EPOCHS = 20


def headline_table(records: list[dict[str, Any]]) -> str:
    """README's one table: every full-data recipe that trained an SE network and its plain twin (same
    seeds, same model options apart from SE), with the paired gap."""
    runs = [
        r for r in records if not r.get("ablation") and (r.get("dataset") or {}).get("train_size") == 50000
    ]
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        groups[
            (_recipe_key(r), str(r.get("profile") or (r.get("environment") or {}).get("profile") or "?"))
        ].append(r)
    lines = [
        "| data | recipe | plain | SE | seeds | SE − plain (points, paired by seed) |",
        "|---|---|---|---|---|---|",
    ]
    for (key, profile), group in sorted(groups.items(), key=lambda kv: (str(kv[0][0][0]), kv[0][0][2] or 0)):
        by_model: dict[str, dict[Any, dict[str, Any]]] = defaultdict(dict)
        for r in group:
            if r.get("precision") == "bf16" or not any(x.get("precision") == "bf16" for x in group):
                by_model[model_label(r)][r.get("seed")] = r
        for se_name, se_runs in sorted(by_model.items()):
            if not se_name.startswith("se_"):
                continue
            plain_name = se_name.removeprefix("se_").split(" (")[0]
            plain_runs = by_model.get(plain_name, {})
            seeds = sorted(set(se_runs) & set(plain_runs), key=str)
            if not seeds:
                continue
            gaps = [100 * (se_runs[s]["final_test_acc"] - plain_runs[s]["final_test_acc"]) for s in seeds]
            gap = (
                f"{gaps[0]:+.2f}"
                if len(gaps) == 1
                else f"{statistics.mean(gaps):+.2f} ± {statistics.stdev(gaps):.2f}"
            )
            lines.append(
                f"| {key[0]} | `{profile}`, {key[2]} epochs | {plain_name} {_pct([plain_runs[s]['final_test_acc'] for s in seeds])} "
                f"| {se_name} {_pct([se_runs[s]['final_test_acc'] for s in seeds])} | {', '.join(map(str, seeds))} | {gap} |"
            )
    if len(lines) == 2:
        return "_No SE network and plain twin are recorded on the same seeds yet._"
    lines += [
        "",
        f"Final test accuracy (%) of full-data runs of at least {HEADLINE_MIN_EPOCHS} epochs, mean ± standard deviation over seeds; "
        "every row's records and curves are in [docs/results.md](docs/results.md).",
    ]
    return "\n".join(lines)


def train_section(records: list[dict[str, Any]], figures: Path, write_figures: bool = True) -> str:
    """Markdown tables (one per dataset + recipe) with links to their curve figures in ``figures``
    (drawn and saved unless ``write_figures`` is False)."""
    ablations = [r for r in records if r.get("ablation")]
    records = [r for r in records if not r.get("ablation")]
    if not records and not ablations:
        return '_No training runs are recorded in `results/` yet. See "Recording results" below._'
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[_recipe_key(record)].append(record)
    lines: list[str] = []
    for index, (key, group) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
        first = group[0]
        label = key[0]
        devices = sorted(set().union(*(_devices(r) for r in group)))
        commits = sorted({str(r.get("commit", "unknown"))[:12] for r in group})
        lines += [
            f"**{label}**, {_recipe_text(first)}. Device: {', '.join(devices)}; commit {', '.join(commits)}.",
            "",
            "| model | precision | seeds | final test acc. (%) | best test acc. (%) | wall time (min) | records |",
            "|---|---|---|---|---|---|---|",
        ]
        rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in group:
            rows[model_label(r), _trained_in(r)].append(r)
        mixed = len({precision for _, precision in rows}) > 1
        by_model = {(f"{m} ({p})" if mixed else m): runs for (m, p), runs in sorted(rows.items())}
        for (model, precision), runs in sorted(rows.items()):
            lines.append(
                f"| {model} | {precision} | {', '.join(str(r.get('seed')) for r in runs)} "
                f"| {_pct([r['final_test_acc'] for r in runs])} "
                f"| {_pct([r['best_test_acc'] for r in runs])} "
                f"| {statistics.mean(r['wall_time_s'] for r in runs) / 60:.1f} "
                f"| {', '.join('`' + r['_file'] + '`' for r in runs)} |"
            )
        paired = paired_line(rows)
        if paired:
            lines += ["", *paired]
        name = f"results_curves_{index}"
        if write_figures:
            _curves_figure(by_model, label, _recipe_text(first), figures, name)
        link = figures.relative_to(ROOT).as_posix() if figures.is_relative_to(ROOT) else figures.as_posix()
        lines += ["", f"![accuracy curves]({link}/{name}.png)"]
        lines.append("")
    lines += [
        "Other people's CIFAR-10 test accuracies (%), for comparison; their recipes differ from ours:",
        "",
        "| models | accuracy (%) | source |",
        "|---|---|---|",
        *[f"| {m} | {a} | {s} |" for m, a, s in REFERENCES],
    ]
    if any((r.get("dataset") or {}).get("name") == "cifar100" for r in records + ablations):
        lines += [
            "",
            "The paper's CIFAR-100 test accuracies (%), for comparison; its recipes differ from ours:",
            "",
            "| models | accuracy (%) | source |",
            "|---|---|---|",
            *[f"| {m} | {a} | {s} |" for m, a, s in REFERENCES_CIFAR100],
        ]
    if ablations:
        lines += ["", ablation_section(ablations)]
    return "\n".join(lines)


def ablation_section(records: list[dict[str, Any]]) -> str:
    """One table per ablation grid (``python -m senet_lib ablate`` / notebook 07): per variant the
    seeds, final test accuracy (mean ± std), parameters and multiply-accumulates of one image."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["ablation"], *_recipe_key(record))].append(record)
    lines = ["**Ablation grids** (paper §6; `python -m senet_lib ablate`, notebook 07):", ""]
    for key, group in sorted(groups.items(), key=lambda kv: str(kv[0])):
        first = group[0]
        devices = sorted(set().union(*(_devices(r) for r in group)))
        commits = sorted({str(r.get("commit", "unknown"))[:12] for r in group})
        lines += [
            f"*{key[0]}* on {key[1]} (train {key[2]}), {_recipe_text(first)}. Device: {', '.join(devices)}; "
            f"commit {', '.join(commits)}.",
            "",
            "| variant | model | seeds | final test acc. (%) | parameters | MACs (M) | records |",
            "|---|---|---|---|---|---|---|",
        ]
        variants: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in sorted(group, key=lambda r: (r.get("created", ""), r["_file"])):
            variants[r["variant"]].append(r)
        for variant, runs in variants.items():
            cost = runs[0].get("cost") or {}
            lines.append(
                f"| {variant} | {runs[0]['model']['name']} | {', '.join(str(r.get('seed')) for r in runs)} "
                f"| {_pct([r['final_test_acc'] for r in runs])} | {cost.get('params', '—'):,} "
                f"| {cost.get('macs', 0) / 1e6:.1f} | {len(runs)} file(s) `{runs[0]['_file']}`… |"
            )
        lines.append("")
    return "\n".join(lines).rstrip()


def grid_headline(results: Path) -> str:
    """README's ablation line: for the recipe with the most ablation runs, each grid's variants (mean final
    test accuracy over seeds) and which of them differ from standard SE by more than the seed noise
    (:func:`senet_lib.train.differences`: twice the standard error, the spread pooled over the grid)."""
    from senet_lib.train import grid_verdicts, largest_recipe, recorded_ablations

    runs = recorded_ablations(results)
    if runs.empty:
        return "No ablation grid is recorded yet (`bash scripts/ablation_grid_cpu.sh` records the CPU grid)."
    runs = largest_recipe(runs)
    first = runs.iloc[0]
    key = (first["dataset"], int(first["train_size"]), int(first["epochs"]))
    model = runs.loc[runs["model"].str.startswith("se_"), "model"].iloc[0]
    seeds = ", ".join(str(s) for s in sorted(set(runs["seed"])))
    lines = [
        f"| paper table | {model} variants: final test acc. (%), mean of seeds {seeds} | beyond the seed noise |",
        "|---|---|---|",
    ]
    for v in grid_verdicts(runs, model):
        cells = " · ".join(f"{name} {mean:.2f}" for name, mean in v["means"].items())
        beyond = ", ".join(f"{name} {diff:+.2f}" for name, diff in v["beyond"]) or "none"
        lines.append(f"| {v['table']} ({v['ablation']}) | {cells} | {beyond} (against {v['standard']}) |")
    lines += [
        "",
        f"On {key[0]}, {key[2]} epochs of the `cpu` recipe on {key[1]:,} training images, full test split "
        '(`scripts/ablation_grid_cpu.sh`); "beyond the seed noise" means more than twice the standard error of '
        "the difference, the seed spread pooled over the grid. Records: `results/ablation_*.json`.",
    ]
    return "\n".join(lines)


def _curves_figure(by_model: dict[str, list[dict]], label: str, recipe: str, folder: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from senet_lib.plots import save_figure, set_style
    from senet_lib.plots.training import plot_curves

    set_style()
    fig = plot_curves({model: [r["history"] for r in runs] for model, runs in by_model.items()})
    fig.suptitle(f"{' vs '.join(by_model)} on {label}\n{recipe}", fontsize=10)
    fig.tight_layout()  # again, now with the title: it no longer overlaps the panels' own titles
    provenance = {
        "dataset": label,
        "recipe": recipe,
        "records": sorted(r["_file"] for runs in by_model.values() for r in runs),
        "devices": sorted({str(r.get("device_name")) for runs in by_model.values() for r in runs}),
        "run_commits": sorted({str(r.get("commit")) for runs in by_model.values() for r in runs}),
        "built_by": "scripts/build_results.py",
    }
    save_figure(fig, name, provenance=provenance, folder=folder)
    plt.close(fig)


def _bench_timing(settings: dict[str, Any]) -> str:
    """How a benchmark record timed its rows (old records: a number of timed steps)."""
    if settings.get("repeats"):
        return (
            f"median of {settings['repeats']} repeats of ≥ {settings.get('steps')} steps and "
            f"≥ {settings.get('min_seconds', 0):g} s each"
            + (", a model's variants interleaved in rounds" if settings.get("interleave") else "")
        )
    return f"{settings.get('steps')} timed steps"


def _bench_row(row: dict[str, Any]) -> str:
    """One table row: model, variant, img/s (the median in new records), spread, precision,
    memory format, input pipeline; ``—`` where an old record has no such field."""
    if row.get("status") != "ok":
        cells = [f"failed: {row.get('error')}", "—"]
    elif row.get("relative_spread") is not None:
        spread = (
            f"{100 * row['relative_spread']:.1f}% "
            f"({row['images_per_sec_min']:,.0f} – {row['images_per_sec_max']:,.0f})"
        )
        cells = [f"{row['images_per_sec']:,.0f}", spread]
    else:
        cells = [f"{row['images_per_sec']:,.0f}", "—"]
    layout = {True: "channels-last", False: "channels-first"}.get(row.get("channels_last"), "—")
    cells += [row.get("precision") or "—", layout, row.get("pipeline") or "—"]
    return f"| {row.get('model')} | {row.get('variant')} | {' | '.join(cells)} |"


def _ratio(value: float) -> str:
    """A ratio to a target's goal, with three decimals so that a miss (0.898 of a 0.9 goal) never reads as the
    goal itself; counts of 100 and more (img/s) as whole numbers."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"


def _cpu_units(backend: dict[str, Any]) -> str:
    """A record's CPU bf16 units, with the vector ISA in brackets where the record has it (since 2026-12-03)."""
    units = ", ".join(backend.get("cpu_bf16_units") or []) or "none"
    return f"{units} ({backend['cpu_vector_isa']})" if backend.get("cpu_vector_isa") else units


def _bench_overview_row(record: dict[str, Any]) -> str:
    """One line of the overview: when, where, and the SE model's default-vs-seed-style figures."""
    summary = record.get("summary") or {}
    se_model = summary.get("se_model")
    rates = {
        r.get("variant"): r.get("images_per_sec")
        for r in record.get("results", [])
        if r.get("model") == se_model and r.get("status") == "ok"
    }
    speedup = (summary.get("speedup_default_vs_seed_style") or {}).get(se_model)
    by_round = (summary.get("speedup_default_vs_seed_style_by_round") or {}).get(se_model)
    loop = record.get("loop") or {}
    cells = [
        str(record.get("created", ""))[:10],
        str(record.get("device_name")),
        _cpu_units(record.get("backend") or {}),
        str(record.get("commit"))[:7],
        str(se_model),
        *(f"{rates[v]:,.0f}" if rates.get(v) else "—" for v in ("seed-style", "default")),
        f"{speedup:.2f}×" if speedup else "—",
        f"{by_round['min']:.2f}–{by_round['max']:.2f}×" if by_round else "not interleaved",
        _ratio(loop["fit_vs_bare_step"]) if loop.get("status") == "ok" else "—",
        f"`{record['_file']}`",
    ]
    return "| " + " | ".join(cells) + " |"


def bench_section(records: list[dict[str, Any]]) -> str:
    """An overview table with one line per benchmark record (oldest first), then each record's full
    table, ratios and targets in a collapsed ``<details>`` block."""
    if not records:
        return "_No benchmark recorded yet: run `python benchmarks/train_speed.py` on a GPU and copy its record here._"
    # oldest first by the record's own clock: file names start with the machine, not the date
    records = sorted(records, key=lambda r: (str(r.get("created", "")), r["_file"]))
    lines: list[str] = [
        "| date | machine | CPU bf16 units (vector ISA) | commit | SE model | seed-style img/s | default img/s "
        "| default / seed-style | round by round | fit / bare step | record (`results/`) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(_bench_overview_row(r) for r in records),
        "",
    ]
    for record in records:
        settings = record.get("settings", {})
        lines += [
            f"<details><summary>{record.get('device_name')}, {str(record.get('created', ''))[:10]}, commit "
            f"{str(record.get('commit'))[:7]}: every row</summary>",
            "",
            f"{record.get('device_name')}, torch {record.get('torch')}, commit {str(record.get('commit'))[:12]}, "
            f"batch {settings.get('batch_size')}, {_bench_timing(settings)} (`results/{record['_file']}`):",
            "",
            "| model | variant | training img/s | spread (min – max) | precision | memory format | pipeline |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [_bench_row(row) for row in record.get("results", [])]
        summary = record.get("summary") or {}
        ratios = summary.get("se_vs_plain_ratio_by_variant") or {}
        if ratios:
            pairs = ", ".join(f"{variant} {ratio:.3f}" for variant, ratio in ratios.items())
            lines += ["", f"{summary.get('se_model')} / {summary.get('plain_model')} throughput: {pairs}."]
        speedups = summary.get("speedup_default_vs_seed_style") or {}
        if speedups:
            by_round = summary.get("speedup_default_vs_seed_style_by_round") or {}
            pairs = ", ".join(
                f"{model} {value:.2f}×"
                + (
                    f" (round by round {by_round[model]['min']:.2f}–{by_round[model]['max']:.2f}×)"
                    if model in by_round
                    else ""
                )
                for model, value in speedups.items()
            )
            lines += ["", f"`default` over `seed-style`: {pairs}."]
        loop = record.get("loop") or {}
        if loop.get("status") == "ok":
            lines += [
                "",
                f"Epoch loop (`fit`, {loop['model']}, {loop['precision']}, {loop['train_images']} training and "
                f"{loop['test_images']} test images, median of {loop['epochs'] - 1} epochs after a warm-up): "
                f"its training phase runs at {loop['fit_train']['images_per_sec']:,.0f} img/s, "
                f"{_ratio(loop['fit_vs_bare_step'])} × the bare step on one batch "
                f"({loop['bare_step']['images_per_sec']:,.0f} img/s); the whole epoch with its test pass and "
                f"checkpoint at {loop['fit_epoch']['images_per_sec']:,.0f} img/s, "
                f"{_ratio(loop['epoch_vs_bare_step'])} ×.",
            ]
        targets = [t for t in record.get("targets", []) if t.get("applies")]
        if targets:
            lines += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
            for t in targets:
                measured = "—" if t.get("measured") is None else _ratio(t["measured"])
                lines.append(
                    f"| {t['name']} | {t['goal']} | {measured} | {'yes' if t.get('met') else 'no'} |"
                )
        lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip()


#: The series, for README's table: (file stem, title, topic, paper sections).
NOTEBOOKS: list[tuple[str, str, str, str]] = [
    (
        "00_start_here",
        "start here",
        "the SE block in one picture, the map of the series, your machine, getting CIFAR",
        "Fig. 1",
    ),
    (
        "01_squeeze",
        "squeeze",
        "global information embedding: channel descriptors, receptive fields, avg vs max",
        "§3.1, Eq. 2, Table 11",
    ),
    (
        "02_excitation",
        "excitation",
        "adaptive recalibration: the bottleneck, the reduction ratio, the gate",
        "§3.2, Eq. 3, 5, Tables 10, 12",
    ),
    (
        "03_se_block",
        "the SE block",
        "scaling, the whole block, where it goes in a residual unit",
        "§3.3, Eq. 4, Fig. 2–3, 5, Table 14",
    ),
    (
        "04_se_resnet50",
        "SE-ResNet-50",
        "building SE-ResNet-50: Table 1, parameters, multiply-accumulates, time",
        "§4, Table 1",
    ),
    (
        "05_train_cifar",
        "training on CIFAR",
        "ResNet vs SE-ResNet on CIFAR-10/100, curves and a results table; the shipped fully trained pair",
        "§5, Tables 4–5",
    ),
    (
        "06_excitation_per_class",
        "excitation per class",
        "channel attention per class and per depth",
        "§7.2, Fig. 6–7",
    ),
    (
        "07_ablations",
        "ablations",
        "the paper's ablations trained: r, squeeze, gate, stages, placement, NoSqueeze; CIFAR-100",
        "§6, Tables 10–16",
    ),
]


def _runtime(records: list[dict[str, Any]], gpu: bool, stem: str) -> str:
    """Seconds for notebook ``stem`` from the newest CPU (or GPU) record, with its profile."""
    chosen = [r for r in records if str(r.get("device", "")).startswith(("cuda", "mps")) == gpu]
    if not chosen:
        return "not measured yet"
    record = max(chosen, key=lambda r: r.get("created", ""))
    seconds = record["seconds"].get(f"{stem}.ipynb")
    return "—" if seconds is None else f"{seconds:.0f} s ({record['profile']})"


def notebook_table(records: list[dict[str, Any]]) -> str:
    """The notebooks with their measured runtimes and where the runtimes come from."""
    lines = [
        "| # | notebook | topic | paper | CPU runtime | GPU runtime |",
        "|---|---|---|---|---|---|",
    ]
    for stem, title, topic, paper in NOTEBOOKS:
        lines.append(
            f"| {stem[:2]} | [{title}](notebooks/{stem}.ipynb) | {topic} | {paper} "
            f"| {_runtime(records, False, stem)} | {_runtime(records, True, stem)} |"
        )
    lines.append("")
    for record in sorted(records, key=lambda r: r["_file"]):
        synthetic = record.get("fell_back_to_synthetic") or []
        data = (
            f"synthetic data in {', '.join(n.split('_')[0] for n in synthetic)} (no CIFAR on that machine)"
            if synthetic
            else f"{' and '.join(record.get('data_labels') or ['CIFAR'])} where the notebooks load data"
        )
        lines.append(
            f"Runtimes measured by `make tutorial` (`scripts/run_notebooks.py`), `{record['profile']}` profile, on "
            f"{record['device_name']}, torch {record['torch']}, commit {str(record['commit'])[:12]}, {data}; "
            f"{record['total_seconds']:.0f} s in all (`results/{record['_file']}`)."
        )
        lines.append("")
    if not records:
        lines.append("Runtimes: not measured yet (`make tutorial` records them).")
    elif not any(str(r.get("device", "")).startswith(("cuda", "mps")) for r in records):
        lines.append(
            "No GPU runtimes are recorded yet (`make tutorial SENET_PROFILE=class` on a GPU records them)."
        )
    return "\n".join(lines)


def replace_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"README.md has no {start} … {end} markers; add them where the section belongs.")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def build(results: Path, readme: Path, figures: Path, write_figures: bool = True) -> dict[Path, str]:
    """The text every generated file should have: README (notebook table, headline), docs/results.md
    (every training table and curve) and docs/benchmarks.md (every benchmark record)."""
    groups = load_records(results)
    docs = readme.parent / "docs"
    train = groups.get("train", [])
    texts = {readme: readme.read_text(), docs / "results.md": (docs / "results.md").read_text()}
    texts[docs / "benchmarks.md"] = (docs / "benchmarks.md").read_text()
    texts[readme] = replace_section(
        texts[readme], "notebook-table", notebook_table(groups.get("notebook_runtimes", []))
    )
    texts[readme] = replace_section(texts[readme], "headline", headline_table(train))
    texts[readme] = replace_section(texts[readme], "grid", grid_headline(results))
    section = train_section(train, figures, write_figures).replace("](figures/", "](../figures/")
    texts[docs / "results.md"] = replace_section(texts[docs / "results.md"], "results", section)
    texts[docs / "benchmarks.md"] = replace_section(
        texts[docs / "benchmarks.md"], "bench", bench_section(groups.get("benchmark", []))
    )
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--figures", type=Path, default=ROOT / "figures")
    parser.add_argument(
        "--check", action="store_true", help="only check that the generated sections are current"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    texts = build(args.results, args.readme, args.figures.resolve(), write_figures=not args.check)
    stale = [path for path, text in texts.items() if path.read_text() != text]
    if args.check:
        if stale:
            names = ", ".join(str(p.relative_to(args.readme.parent)) for p in stale)
            print(f"{names} out of date with results/: run python scripts/build_results.py")
            return 1
        print("README.md, docs/results.md and docs/benchmarks.md match results/")
        return 0
    for path in stale:
        path.write_text(texts[path])
    print(f"rewrote the generated sections of {', '.join(p.name for p in stale) or 'nothing (all current)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
