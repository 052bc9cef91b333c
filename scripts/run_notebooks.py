#!/usr/bin/env python
"""Execute the notebooks headless with papermill, save the executed copies, and record how long each took.

    python scripts/run_notebooks.py --output-dir build/tutorial/notebooks [NOTEBOOK ...]

This is what ``make tutorial`` runs. papermill shows a live progress bar per notebook (``--log-output``
also streams every cell's output) and stores each cell's duration in the executed copy; the slowest
cells of each notebook are printed and kept in the record. Folders come from the ``SENET_*`` variables (the Makefile
points them into build/), the profile from ``SENET_PROFILE``. The runtime record
``notebook_runtimes_<profile>_<device>.json`` (device, CPU count, torch version, commit, profile,
data used, seconds per notebook) goes to the results folder; copy it into the repository's
``results/`` and run ``scripts/build_results.py`` to refresh README's runtime table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cell_times(nb: dict) -> list[tuple[str, float]]:
    """``(cell label, seconds)`` of every code cell papermill timed, slowest first."""
    timed = []
    for index, cell in enumerate(nb["cells"]):
        seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell["cell_type"] == "code" and seconds is not None:
            first = next((line for line in cell["source"].splitlines() if line.strip()), "")
            timed.append((f"#{index} `{first[:40]}`", round(float(seconds), 2)))
    return sorted(timed, key=lambda item: -item[1])


def data_labels(nb: dict | str) -> list[str]:
    """The dataset labels a notebook printed (``ImageDataset('CIFAR-10 (JPEG q75 copy)': …``), in order.

    ``nb`` is the executed notebook or its JSON text (pass the text when it is already serialised).
    """
    text = nb if isinstance(nb, str) else json.dumps(nb)
    return list(dict.fromkeys(re.findall(r"ImageDataset\('([^']+)'", text)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, required=True, help="where the executed notebooks go")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--log-output", action="store_true", help="stream every cell's output as it runs")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9][0-9]_*.ipynb")
    args = parser.parse_args(argv)

    import papermill
    import torch

    sys.path.insert(0, str(ROOT))
    from senet_lib import env
    from senet_lib.data import data_status

    device = env.get_device()
    profile = env.get_profile(device=device)
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    slowest: dict[str, list[tuple[str, float]]] = {}
    synthetic: list[str] = []
    labels: dict[str, None] = {}  # every dataset label the notebooks printed, first seen first
    for number, path in enumerate(notebooks, 1):
        out = args.output_dir / path.name
        print(f"[{number}/{len(notebooks)}] running {path.name} -> {out}", flush=True)
        start = time.perf_counter()
        try:
            nb = papermill.execute_notebook(
                str(path),
                str(out),
                cwd=str(path.parent.resolve()),
                kernel_name="python3",
                execution_timeout=args.timeout,
                log_output=args.log_output,
                progress_bar=True,
            )
        except papermill.PapermillExecutionError as error:
            print(f"{path.name} failed in cell {error.exec_count}: {error.ename}: {error.evalue}")
            print(f"the executed copy with the error is {out}")
            raise SystemExit(1) from None
        times[path.name] = round(time.perf_counter() - start, 1)
        slowest[path.name] = cell_times(nb)[:3]
        text = json.dumps(nb)  # serialised once for both searches
        labels.update(dict.fromkeys(data_labels(text)))
        if "USING SYNTHETIC DATA" in text:
            synthetic.append(path.name)
        cells = ", ".join(f"{label} {sec:.1f} s" for label, sec in slowest[path.name])
        print(f"{path.name}: {times[path.name]:.1f} s (slowest cells: {cells})", flush=True)

    record = {
        "kind": "notebook_runtimes",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "profile": profile,
        "device": str(device),
        "device_name": env.device_name(device),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "commit": env.git_commit(),
        "data": data_status(),
        "fell_back_to_synthetic": synthetic,
        "data_labels": list(labels),
        "seconds": times,
        "slowest_cells": {name: [list(c) for c in cells] for name, cells in slowest.items()},
        "total_seconds": round(sum(times.values()), 1),
    }
    results = env.get_paths().results
    out = results / f"notebook_runtimes_{profile}_{device.type}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"runtime record: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
