"""Plots that put an excitation reading beside what chance gives: the class separation of every block
against shuffled labels and an untrained network, and a channel knock-out against random channels.

The numbers come from :mod:`senet_lib.excitation.significance` and
:func:`senet_lib.excitation.knockout_comparison`; each function returns a matplotlib Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..excitation import KnockoutResult
from ..excitation.significance import SeparationReport

__all__ = ["plot_knockout", "plot_separation"]


def plot_separation(
    report: SeparationReport, reference: SeparationReport | None = None, data_label: str = ""
) -> plt.Figure:
    """Class separation per block (units of ``s``) with its 95 % bootstrap interval, the 95th
    percentile of the shuffled-label separations (what noise alone reaches), and ``reference``
    (e.g. :func:`~senet_lib.excitation.significance.untrained_like`) drawn the same way."""
    names = list(report.blocks)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.5, 0.6 * len(names) + 2.5), 4.4), layout="constrained")
    series = [(report, "tab:blue", "o", 0.0)]
    if reference is not None:
        series.append((reference, "tab:green", "x", 0.15))
    for rep, color, marker, shift in series:
        blocks = [rep.blocks[n] for n in names]
        values = np.array([b.observed for b in blocks])
        low, high = np.array([b.interval for b in blocks]).T
        ax.errorbar(
            x + shift,
            values,
            yerr=[np.maximum(values - low, 0), np.maximum(high - values, 0)],
            color=color,
            marker=marker,
            capsize=3,
            lw=1.2,
            label=f"{rep.network} (95 % bootstrap interval)",
        )
        ax.plot(
            x + shift,
            [b.threshold for b in blocks],
            color=color,
            ls=":",
            lw=1.0,
            label=f"{rep.network}: 95th percentile with shuffled labels",
        )
    for boundary in np.cumsum([len(g) for g in report.groups.values()])[:-1]:
        ax.axvline(boundary - 0.5, color="0.85", lw=0.8, zorder=0)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set(xlabel="SE block (network order)", ylabel="class separation\n(RMS gap of class means)")
    ax.set_ylim(bottom=0)
    fig.legend(fontsize="x-small", loc="outside lower center", ncol=2)
    note = f", {data_label}" if data_label else ""
    fig.suptitle(  # the figure's title: constrained layout keeps it clear of the y-label
        f"How far the classes' mean gates lie apart, by depth\n({report.network}{note}, "
        f"{report.images_per_class} images/class)",
        fontsize="medium",
    )
    return fig


def plot_knockout(result: KnockoutResult, class_name: str | None = None, network: str = "") -> plt.Figure:
    """Class accuracy with nothing off and with the class's top-k channels off (bars), and with k
    random channels off: every draw as a dot, their 95 % range as a band."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6), layout="constrained")
    ax.bar([0, 1], [result.baseline, result.top_off], color=["tab:grey", "tab:red"], width=0.6)
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, len(result.random_off))
    ax.scatter(2 + jitter, result.random_off, s=10, color="tab:blue", alpha=0.7, zorder=3)
    low, high = result.random_interval
    ax.fill_between([1.65, 2.35], low, high, color="tab:blue", alpha=0.15, lw=0)
    ax.hlines(result.random_mean, 1.65, 2.35, color="tab:blue", lw=1.5)
    ax.set_xticks([0, 1, 2], ["nothing off", f"top {result.k} off", f"random {result.k} off"])
    ax.set(ylim=(0, 1.05), ylabel="accuracy on the class's test images")
    name = class_name if class_name is not None else f"class {result.class_index}"
    who = f"{network}, " if network else ""
    p_low, p_high = result.p_interval
    fig.suptitle(
        f"{who}{result.block}: switching off channels, {name}\n(random: {len(result.random_off)} draws, "
        f"band = 95 % of them; p = {result.p_value:.3f}, with unlimited draws {p_low:.3f} … {p_high:.3f})",
        fontsize="medium",
    )
    return fig
