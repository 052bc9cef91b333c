#!/usr/bin/env python
"""The frozen-gate figure from the records of scripts/freeze_gates.py: accuracy lost per block and per stage.

    python scripts/plot_freeze_gates.py --figures figures     # what `make figures` runs

One panel per network (rows) and data copy (columns): for each SE block alone, each stage and all blocks
at once, the intact test accuracy minus the accuracy with the gates frozen to their per-channel mean over
training images, to those means shuffled across channels, and to 1 (the blocks removed), in points. The
newest ``kind: freeze_gates`` record of each network in ``--results`` is used; the provenance file names
the records, their commits and devices.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAME = "freeze_gates_accuracy_drop"
LABELS = {
    "mean": "mean gate (per channel)",
    "shuffled": "means shuffled across channels",
    "one": "s = 1 (SE removed)",
}


def newest_runs(results: Path) -> tuple[list[dict], list[str]]:
    """The newest record's row of each network (sorted by training epochs), each with its record
    (``_record``) and file name (``_file``), and the record files used."""
    newest: dict[str, dict] = {}
    for path in sorted(results.glob("freeze_gates_*.json")):
        record = json.loads(path.read_text())
        if record.get("kind") != "freeze_gates":
            continue
        for row in record["networks"]:
            known = newest.get(row["weights"])
            if known is None or record["created"] >= known["_record"]["created"]:
                newest[row["weights"]] = {**row, "_record": record, "_file": path.name}
    if not newest:
        raise SystemExit(f"No freeze_gates record in {results}: run scripts/freeze_gates.py first.")
    rows = sorted(newest.values(), key=lambda r: (r.get("epochs") or 0, r["weights"]))
    return rows, sorted({r["_file"] for r in rows})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "results")
    p.add_argument("--figures", type=Path, help="default: the figures folder of senet_lib.env.get_paths()")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from senet_lib.plots import save_figure, set_style

    rows, files = newest_runs(args.results)
    copies = [run["data"] for run in rows[0]["runs"]]
    set_style()
    fig, axes = plt.subplots(
        len(rows), len(copies), figsize=(6.5 * len(copies), 0.9 + 3.2 * len(rows)), squeeze=False, sharey=True
    )
    variants = list(rows[0]["runs"][0]["accuracy"])
    colours = dict(zip(variants, ["tab:blue", "tab:orange", "tab:red"], strict=False))
    for r, row in enumerate(rows):
        for c, run in enumerate(row["runs"]):
            ax = axes[r][c]
            groups = list(run["groups"])
            x = np.arange(len(groups)) + np.array(
                [0.6 if g.startswith("stage") or g == "all" else 0 for g in groups]
            )
            width = 0.8 / len(variants)
            for k, variant in enumerate(variants):
                drops = [100 * run["drop"][variant][g] for g in groups]
                ax.bar(
                    x + (k - 1) * width,
                    drops,
                    width,
                    color=colours[variant],
                    label=LABELS.get(variant, variant),
                )
            ax.axhline(0, color="black", lw=0.8)
            ax.set_yscale("symlog", linthresh=1.0)
            ax.set_xticks(x, [g.replace("stage ", "st. ") for g in groups], rotation=60, fontsize=8)
            epochs = f"{row['epochs']} epochs" if row.get("epochs") else row["weights"]
            ax.set_title(
                f"{row['model']}, {epochs}: intact {100 * run['intact']:.2f} %\n"
                f"{run['data']}, {run['test_images']:,} test images",
                fontsize=9,
            )
            if c == 0:
                ax.set_ylabel("accuracy lost (points)\nsymlog, linear within ±1")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=len(variants),
        fontsize=9,
        bbox_to_anchor=(0.5, 1 - 0.55 / fig.get_figheight()),
    )
    means = sorted({f"{run['means_from']['images']:,}" for row in rows for run in row["runs"]})
    fig.suptitle(
        "SE gates frozen to constants, shipped SE-ResNet-20s on CIFAR-10: intact test accuracy minus frozen, per "
        f"block, per stage and all\n(means over {' / '.join(means)} training images of the same copy; "
        f"records {', '.join(files)})",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.85 / fig.get_figheight()))
    record = rows[0]["_record"]
    provenance = {
        "dataset": copies,
        "networks": [row["weights"] for row in rows],
        "records": files,
        "run_commits": sorted({row["_record"]["environment"]["commit"] for row in rows}),
        "devices": sorted({row["_record"]["environment"]["device_name"] for row in rows}),
        "seed": record["seed"],
        "variants": record["variants"],
        "built_by": "scripts/plot_freeze_gates.py",
    }
    written = save_figure(fig, NAME, provenance=provenance, folder=args.figures)
    plt.close(fig)
    print(f"wrote {written['png']} from {', '.join(files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
