#!/usr/bin/env python
"""Regenerate every committed figure in figures/ from recorded runs and weights, without training.

    python scripts/make_figures.py            # what `make figures` runs
    python scripts/make_figures.py --plan     # say which step makes which figure, and what is missing

Five steps, each the code that made the committed files (its name is in every figure's ``.json``):

* ``notebooks``: notebooks 00–05 in the quick profile (diagrams, counts, and 05's shipped pair; nothing trained
  for a committed figure): run by
  ``scripts/run_notebooks.py`` with their figures written to ``build/make_figures/``, then only the files
  committed in figures/ are copied over (the device-specific timing plot of notebook 04 is not committed).
* ``06``: ``scripts/figures_06.sh``: notebook 06 on the pretrained SE-ResNet-20 that notebook 06 itself picks
  from ``pretrained/`` (the longest-trained, ``senet_lib.train.runs.pick_pretrained``) and the CIFAR-10 test
  split (needs CIFAR-10 on disk or a download).
* ``07``: notebook 07 in the ``cpu`` profile, which trains nothing there: its ablation-grid and deep-start figures
  from the records in ``results/`` (needs CIFAR-10 on disk for the grid's data split).
* ``results``: ``scripts/build_results.py`` from the run records in ``results/`` (README is left alone).
* ``freeze_gates``: ``scripts/plot_freeze_gates.py`` from the ``freeze_gates_*.json`` records in ``results/``.

A step that cannot run (its weights are missing) or fails (no CIFAR-10 and no internet) is named at the end,
the other steps still run, and the command exits 1.
A figure drawn again from the same data (the same PNG bytes, the same provenance but for its time and commit)
keeps its committed files, so that `make figures` leaves the tree clean where nothing changed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"
BUILD = ROOT / "build" / "make_figures"
PRETRAINED = ROOT / "pretrained"
NOTEBOOKS = ("00", "01", "02", "03", "04", "05")


@dataclass
class Step:
    name: str
    what: str
    command: list[str]
    figures: list[str] = field(default_factory=list)  # committed figure stems this step rewrites
    missing: str | None = None  # why it cannot run here, or None
    note: str = ""  # what to expect (e.g. a download)


def committed() -> list[str]:
    """Stems of the committed figures: every ``figures/<stem>.png`` with its provenance ``.json``."""
    return sorted(p.stem for p in FIGURES.glob("*.png") if p.with_suffix(".json").is_file())


def producer(stem: str) -> str:
    """The step that makes the committed figure ``stem``."""
    if stem.startswith("results_"):
        return "results"
    if stem.startswith("freeze_gates"):
        return "freeze_gates"
    prefix = stem.split("_", 1)[0]
    if prefix in ("06", "07"):
        return prefix
    if prefix in NOTEBOOKS:
        return "notebooks"
    raise SystemExit(f"figures/{stem}.png has no known producer: add it to scripts/make_figures.py.")


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def checkpoint_06() -> Path | None:
    """The SE-ResNet-20 that notebook 06 analyses when CIFAR-10 is on disk: the longest-trained one in
    :data:`PRETRAINED` whose SHA-256 matches its sidecar (``pick_pretrained``), or None."""
    sys.path.insert(0, str(ROOT))
    from senet_lib.train.runs import pick_pretrained

    match = pick_pretrained("se_resnet20", "cifar10", 10, PRETRAINED)
    return None if match is None else match.path


def _cifar10_on_disk() -> bool:
    sys.path.insert(0, str(ROOT))
    from senet_lib.data import find_cifar

    return find_cifar("cifar10") is not None


def plan(python: str) -> list[Step]:
    notebooks = sorted(p for n in NOTEBOOKS for p in (ROOT / "notebooks").glob(f"{n}_*.ipynb"))
    weights_06 = checkpoint_06()
    steps = [
        Step(
            "notebooks",
            "notebooks 00-05, quick profile, figures via build/make_figures/",
            [
                python,
                "scripts/run_notebooks.py",
                "--output-dir",
                str(BUILD / "notebooks"),
                *map(str, notebooks),
            ],
        ),
        Step(
            "06",
            f"notebook 06 on {_shown(weights_06) if weights_06 else 'the pretrained SE-ResNet-20'}",
            ["bash", "scripts/figures_06.sh", *([_shown(weights_06)] if weights_06 else [])],
        ),
        Step(
            "07",
            "notebook 07, cpu profile: the recorded ablation grid and deep-start runs from results/",
            [python, "-m", "papermill", "notebooks/07_ablations.ipynb", str(BUILD / "07_ablations.ipynb")],
        ),
        Step(
            "results",
            "accuracy curves from results/*.json",
            [
                python,
                "scripts/build_results.py",
                "--readme",
                str(BUILD / "README.md"),
                "--figures",
                str(FIGURES),
            ],
        ),
        Step(
            "freeze_gates",
            "frozen-gate accuracy from results/freeze_gates_*.json",
            [python, "scripts/plot_freeze_gates.py", "--figures", str(FIGURES)],
        ),
    ]
    by_name = {s.name: s for s in steps}
    for stem in committed():
        by_name[producer(stem)].figures.append(stem)
    if weights_06 is None:
        by_name["06"].missing = f"no verified SE-ResNet-20 trained on CIFAR-10 in {_shown(PRETRAINED)}"
    elif not _cifar10_on_disk():
        by_name["06"].note = "CIFAR-10 is not on disk: notebook 06 will download it (see data/README.md)"
    if not any((ROOT / "results").glob("ablation_*.json")):
        by_name["07"].missing = "no ablation record in results/ (run bash scripts/ablation_grid_cpu.sh)"
    elif not _cifar10_on_disk():
        by_name["07"].missing = "CIFAR-10 is not on disk (see data/README.md)"
    if not any((ROOT / "results").glob("freeze_gates_*.json")):
        by_name["freeze_gates"].missing = "no freeze_gates record in results/ (run scripts/freeze_gates.py)"
    return steps


def run(step: Step, python: str) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg", "PY": python}
    if step.name in ("notebooks", "07"):  # notebooks run against this checkout, their runs kept in build/
        BUILD.mkdir(parents=True, exist_ok=True)
        env.update(
            SENET_CHECKPOINT_DIR=str(BUILD / "checkpoints"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
    if step.name == "notebooks":
        env.update(
            SENET_PROFILE="quick",
            SENET_FIGURES_DIR=str(BUILD / "figures"),
            SENET_RESULTS_DIR=str(BUILD / "results"),
        )
    if step.name == "07":  # reads the committed records; writes its figures straight into figures/
        env.update(SENET_PROFILE="cpu", SENET_FIGURES_DIR=str(FIGURES))
        env.pop("SENET_RESULTS_DIR", None)
    if step.name == "results":
        BUILD.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "README.md", BUILD / "README.md")
    subprocess.run(step.command, cwd=ROOT, env=env, check=True)
    if step.name == "notebooks":
        for stem in step.figures:
            for made in (BUILD / "figures").glob(f"{stem}.*"):
                shutil.copy(made, FIGURES / made.name)
            if not (BUILD / "figures" / f"{stem}.png").is_file():
                raise SystemExit(
                    f"notebooks 00-05 no longer make figures/{stem}.png: delete it or fix its notebook."
                )


#: Provenance fields that change on every run whatever the data: left out when deciding whether a figure changed.
VOLATILE = ("created", "commit")


def snapshot(folder: Path | None = None) -> dict[str, bytes]:
    """The bytes of every file in ``folder`` (default :data:`FIGURES`), before a step redraws them."""
    folder = folder or FIGURES
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def _provenance(data: bytes | None) -> dict | None:
    try:
        record = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return {k: v for k, v in record.items() if k not in VOLATILE} if isinstance(record, dict) else None


def keep_unchanged(before: dict[str, bytes], folder: Path | None = None) -> list[str]:
    """Put back the committed PNG, PDF and provenance of every figure a step redrew from the same data (the same
    PNG bytes and the same provenance but for :data:`VOLATILE`), so that an unchanged figure leaves the tree
    clean; return their stems. A figure whose image or provenance changed keeps its new files."""
    folder = folder or FIGURES
    kept = []
    for png in sorted(folder.glob("*.png")):
        old = _provenance(before.get(f"{png.stem}.json"))
        json_path = png.with_suffix(".json")
        if old is None or before.get(png.name) != png.read_bytes() or not json_path.is_file():
            continue
        if _provenance(json_path.read_bytes()) != old:
            continue
        for name in (f"{png.stem}.pdf", json_path.name):
            path = folder / name
            if name in before and (not path.is_file() or path.read_bytes() != before[name]):
                path.write_bytes(before[name])
        kept.append(png.stem)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", action="store_true", help="only print the steps, their figures and needs")
    parser.add_argument(
        "--only",
        choices=("notebooks", "06", "07", "results", "freeze_gates"),
        action="append",
        help="run only these",
    )
    args = parser.parse_args(argv)
    python = sys.executable
    steps = [s for s in plan(python) if not args.only or s.name in args.only]
    for step in steps:
        status = f"cannot run: {step.missing}" if step.missing else step.note or "ready"
        print(f"[{step.name}] {step.what} -> {len(step.figures)} figures ({status})")
        print(f"    $ {' '.join(step.command)}")
        print(f"    {', '.join(step.figures)}")
    if args.plan:
        return 0
    skipped = []
    for step in steps:
        if step.missing:
            skipped.append(f"{step.name} ({step.missing})")
            continue
        start = time.perf_counter()
        print(f"== {step.name}: {step.what}", flush=True)
        before = snapshot()
        try:
            run(step, python)
        except subprocess.CalledProcessError as err:
            skipped.append(f"{step.name} (failed with exit status {err.returncode}; its output is above)")
            continue
        finally:
            kept = keep_unchanged(before)
        print(
            f"== {step.name}: done in {time.perf_counter() - start:.0f} s; {len(kept)} figures drawn from unchanged "
            "data keep their committed files",
            flush=True,
        )
    if skipped:
        print(
            "Not regenerated: " + "; ".join(skipped) + ". The committed files of those steps are unchanged."
        )
        return 1
    print(
        f"Regenerated {sum(len(s.figures) for s in steps)} figures in {FIGURES}; review with `git diff --stat`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
