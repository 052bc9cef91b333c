"""An ablation grid as a figure: accuracy per variant beside its cost (:func:`senet_lib.train.summarize`)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["plot_ablation"]


def plot_ablation(
    summary: pd.DataFrame,
    title: str = "",
    paper_error: Mapping[str, float] | None = None,
    data_label: str = "",
) -> plt.Figure:
    """Accuracy per variant (± std over seeds) and its parameters and MACs relative to the first row;
    ``paper_error`` (the paper's ImageNet top-1 error, %) is written under each label."""
    if summary.empty:
        raise ValueError("The summary has no rows: run the grid first (senet_lib.train.run_ablation).")
    labels = list(summary["variant"])
    x = np.arange(len(labels))
    mean = summary["final_acc_mean"].to_numpy(dtype=float)
    std = np.nan_to_num(summary["final_acc_std"].to_numpy(dtype=float))
    fig, (acc_ax, cost_ax) = plt.subplots(1, 2, figsize=(max(8.0, 2.2 * len(labels) + 4), 4.2))
    acc_ax.errorbar(x, mean, yerr=std, fmt="o", capsize=5, color="tab:blue")
    for xi, (m, n) in enumerate(zip(mean, summary["seeds"], strict=True)):
        acc_ax.annotate(f"{m:.1f}\n(n={n})", (xi, m), textcoords="offset points", xytext=(10, -4), fontsize=8)
    ticks = labels
    if paper_error:
        ticks = [
            f"{v}\npaper: {paper_error[v]:.2f} % err." if v in paper_error else f"{v}\npaper: —"
            for v in labels
        ]
    acc_ax.set_xticks(x, ticks, fontsize=8)
    acc_ax.set_xlim(-0.5, len(labels) - 0.5)
    acc_ax.set_ylabel("final test accuracy (%), mean ± std")
    acc_ax.set_title(f"ours{': ' + data_label if data_label else ''}", fontsize=10)
    base_params, base_macs = float(summary["params"].iloc[0]), float(summary["macs"].iloc[0])
    width = 0.38
    cost_ax.bar(x - width / 2, 100 * (summary["params"] / base_params - 1), width, label="parameters")
    cost_ax.bar(x + width / 2, 100 * (summary["macs"] / base_macs - 1), width, label="multiply-accumulates")
    cost_ax.axhline(0, color="black", linewidth=0.8)
    cost_ax.set_xticks(x, labels, fontsize=8)
    cost_ax.set_ylabel(f"cost relative to {labels[0]!r} (%)")
    cost_ax.set_title("cost", fontsize=10)
    cost_ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
