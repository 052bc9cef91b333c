#!/usr/bin/env python
"""Execute the notebooks headless, save the executed copies, and record how long each took.

    python scripts/run_notebooks.py --output-dir build/tutorial/notebooks [NOTEBOOK ...]

This is what ``make tutorial`` runs. Folders come from the ``SENET_*`` variables (the Makefile
points them into build/), the profile from ``SENET_PROFILE``. The runtime record
``notebook_runtimes_<profile>_<device>.json`` (device, CPU count, torch version, commit, profile,
data used, seconds per notebook) goes to the results folder; copy it into the repository's
``results/`` and run ``scripts/build_results.py`` to refresh README's runtime table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, required=True, help="where the executed notebooks go")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9][0-9]_*.ipynb")
    args = parser.parse_args(argv)

    import nbformat
    import torch
    from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

    sys.path.insert(0, str(ROOT))
    from senet_lib import env
    from senet_lib.data import data_status

    device = env.get_device()
    profile = env.get_profile(device=device)
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    synthetic: list[str] = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        print(f"running {path.name} ...", flush=True)
        start = time.perf_counter()
        runner = ExecutePreprocessor(timeout=args.timeout, kernel_name="python3")
        try:
            runner.preprocess(nb, {"metadata": {"path": str(path.parent.resolve())}})
        except CellExecutionError:
            nbformat.write(nb, args.output_dir / path.name)
            print(f"{path.name} failed; the executed copy with the error is {args.output_dir / path.name}")
            raise
        times[path.name] = round(time.perf_counter() - start, 1)
        nbformat.write(nb, args.output_dir / path.name)
        if "USING SYNTHETIC DATA" in json.dumps(nb):
            synthetic.append(path.name)
        print(f"{path.name}: {times[path.name]:.1f} s", flush=True)

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
        "seconds": times,
        "total_seconds": round(sum(times.values()), 1),
    }
    results = env.get_paths().results
    out = results / f"notebook_runtimes_{profile}_{device.type}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"runtime record: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
