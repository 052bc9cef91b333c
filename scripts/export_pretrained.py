#!/usr/bin/env python
"""Export a finished training run as a small fp16 weights file with a sidecar, for the repository.

    python scripts/export_pretrained.py checkpoints/<run folder> [--out pretrained/]

Writes ``<model>_<dataset>_<epochs>ep_seed<N>.pt`` (fp16 state dict, architecture, metadata) and
``.json`` beside it (recipe, data, final and best test accuracy, per-epoch history, device, precision,
run commit, SHA-256), via
:func:`senet_lib.checkpoint.export_weights`. Load it with ``senet_lib.checkpoint.load_checkpoint``
or give it to notebook 06 as ``CHECKPOINT``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder with checkpoint.pt and record.json")
    parser.add_argument("--out", type=Path, default=ROOT / "pretrained")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from senet_lib.checkpoint import export_weights, load_checkpoint, verify_weights
    from senet_lib.train import CHECKPOINT_NAME, RECORD_NAME

    record_path = args.run / RECORD_NAME
    if not record_path.is_file():
        raise SystemExit(f"{args.run} has no {RECORD_NAME}: give the folder of a finished training run.")
    record = json.loads(record_path.read_text())
    model, _ = load_checkpoint(args.run / CHECKPOINT_NAME)
    if record.get("epochs") != record.get("recipe", {}).get("epochs"):
        raise SystemExit(
            f"{args.run} is not finished ({record.get('epochs')} epochs recorded): resume it first."
        )
    name = (
        f"{record['model']['name']}_{record['dataset']['name']}_{record['epochs']}ep_seed{record['seed']}.pt"
    )
    meta = {
        "recipe": record["recipe"],
        "data": record["dataset"],
        "accuracy": {"final_test_acc": record["final_test_acc"], "best_test_acc": record["best_test_acc"]},
        "commit": record.get("commit"),
        "device_name": record.get("device_name"),
        "wall_time_s": record.get("wall_time_s"),
        "precision": record.get("precision"),
        "environment": record.get("environment"),
        "run": args.run.name,
        "history": record.get("history", []),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = export_weights(model, args.out / name, meta)
    sidecar = verify_weights(path)
    print(
        f"wrote {path} ({sidecar['bytes'] / 1024:.0f} KiB, sha256 {sidecar['sha256'][:12]}…) and its sidecar"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
