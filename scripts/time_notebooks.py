#!/usr/bin/env python
"""Execute every notebook headless and record how long each took.

    python scripts/time_notebooks.py [--profile quick] [--out results/]

Writes ``notebook_runtimes_<profile>_<device>.json`` (device, CPU count, torch version, commit,
profile, seconds per notebook) into the results folder; ``scripts/build_results.py`` turns it
into README's runtime table. Figures and checkpoints go to a temporary folder, not figures/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=["quick", "class", "paper"])
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="senet-times-"))
    os.environ["SENET_PROFILE"] = args.profile
    os.environ.setdefault("MPLBACKEND", "Agg")
    for var, sub in [
        ("SENET_FIGURES_DIR", "figures"),
        ("SENET_CHECKPOINT_DIR", "checkpoints"),
        ("SENET_RESULTS_DIR", "results"),
    ]:
        os.environ[var] = str(scratch / sub)

    import nbformat
    import torch
    from nbconvert.preprocessors import ExecutePreprocessor

    sys.path.insert(0, str(ROOT))
    from senet_lib import env

    device = env.get_device()
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    times: dict[str, float] = {}
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        ExecutePreprocessor(timeout=3600, kernel_name="python3").preprocess(
            nb, {"metadata": {"path": str(path.parent)}}
        )
        times[path.name] = round(time.perf_counter() - start, 1)
        print(f"{path.name}: {times[path.name]:.1f} s", flush=True)

    record = {
        "kind": "notebook_runtimes",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "profile": args.profile,
        "device": str(device),
        "device_name": env.device_name(device),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "commit": env.git_commit(),
        "data": "whatever load_dataset('auto') found (see each notebook's output); CI has no CIFAR, so synthetic",
        "seconds": times,
        "total_seconds": round(sum(times.values()), 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"notebook_runtimes_{args.profile}_{device.type}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
