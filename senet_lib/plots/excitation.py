"""Plots of per-class excitations (paper §7.2, Fig. 6 and Fig. 7) and their analysis.

Every function takes an :class:`~senet_lib.excitation.ExcitationStats` (from
:func:`senet_lib.excitation.class_excitations`) and returns a matplotlib Figure; the caller
saves it with :func:`senet_lib.plots.save_figure`, passing ``stats.provenance()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from ..excitation import (
    ExcitationStats,
    channel_order,
    class_specificity,
    paper_blocks,
    sample_channels,
    saturation,
    similarity,
)
from ..se import PAPER_NAME

__all__ = [
    "plot_class_band",
    "plot_class_excitations",
    "plot_excitation_heatmaps",
    "plot_image_vs_class",
    "plot_saturation",
    "plot_similarity",
    "plot_specificity",
]


def _grid(n: int, ncols: int, width: float = 4.2, height: float = 3.0) -> tuple[plt.Figure, list[plt.Axes]]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def _channel_axis(ax: plt.Axes, ylabel: str) -> None:
    ax.set(xlabel="sampled channel", ylabel=ylabel, ylim=(-0.02, 1.02))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _channel_panels(
    stats: ExcitationStats,
    blocks: Sequence[str],
    n_channels: int,
    seed: int,
    ncols: int,
    ylabel: str,
    draw: Callable[[plt.Axes, str, np.ndarray, np.ndarray], None],
) -> plt.Figure:
    """One panel per block over ``n_channels`` sampled channels: ``draw(ax, block, channels, x)``
    fills it; the title, channel axis and (first panel's) legend are the same for every plot."""
    fig, axes = _grid(len(blocks), ncols)
    for ax, block in zip(axes, blocks, strict=True):
        channels = sample_channels(stats.num_channels(block), n_channels, seed)
        draw(ax, block, channels, np.arange(len(channels)))
        ax.set_title(block)
        _channel_axis(ax, ylabel)
    axes[0].legend(fontsize="small", loc="best")
    return fig


def _blocks(stats: ExcitationStats, blocks: Sequence[str] | None) -> list[str]:
    """``blocks``, else the panels of paper Fig. 6 (:func:`paper_blocks`) where every recorded block has a
    paper name, else every recorded block (torchvision's module paths, hand-named gates)."""
    if blocks is None:
        named = all(PAPER_NAME.match(name) for name in stats.blocks)
        blocks = paper_blocks(stats.blocks) if named and stats.blocks else stats.blocks
    chosen = list(blocks)
    for block in chosen:
        stats.num_channels(block)  # raises a clear error for an unknown block
    return chosen


def _classes(stats: ExcitationStats, classes: Sequence[int | str] | None, default: int = 4) -> list[int]:
    if classes is None:
        return list(range(min(default, stats.num_classes)))
    return [stats.class_index(c) for c in classes]


def plot_class_excitations(
    stats: ExcitationStats,
    blocks: Sequence[str] | None = None,
    classes: Sequence[int | str] | None = None,
    n_channels: int = 50,
    seed: int = 0,
    show_all: bool = True,
    ncols: int = 3,
) -> plt.Figure:
    """Paper Fig. 6: per block, the mean excitation of each chosen class (and of all images)
    over ``n_channels`` uniformly sampled channels. Blocks default to :func:`paper_blocks` (every recorded
    block where they do not have the paper's names)."""
    chosen, indices = _blocks(stats, blocks), _classes(stats, classes)
    palette = sns.color_palette("deep", len(indices))
    styles = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "D", "v", "P"]

    def draw(ax: plt.Axes, block: str, channels: np.ndarray, x: np.ndarray) -> None:
        if show_all:  # underneath, thick and grey, so that no class line hides behind it
            ax.plot(x, stats.all_class_mean(block)[channels], color="0.6", lw=3.0, label="all", zorder=1)
        for i, (color, k) in enumerate(zip(palette, indices, strict=True)):
            ax.plot(
                x,
                stats.mean[block][k, channels],
                color=color,
                lw=1.1,
                ls=styles[i % len(styles)],
                marker=markers[i % len(markers)],
                markersize=2.5,
                alpha=0.9,
                label=stats.classes[k],
                zorder=2 + i,
            )

    fig = _channel_panels(stats, chosen, n_channels, seed, ncols, "mean excitation s", draw)
    fig.suptitle(f"Mean excitation per class (paper Fig. 6)\n({_sample_note(stats)})")
    return fig


def plot_class_band(
    stats: ExcitationStats,
    class_index: int | str,
    blocks: Sequence[str] | None = None,
    n_channels: int = 50,
    seed: int = 0,
    ncols: int = 3,
) -> plt.Figure:
    """Paper Fig. 7: within one class, the mean ± standard deviation of ``s`` per sampled channel."""
    chosen, k = _blocks(stats, blocks), stats.class_index(class_index)

    def draw(ax: plt.Axes, block: str, channels: np.ndarray, x: np.ndarray) -> None:
        mean, std = stats.mean[block][k, channels], np.nan_to_num(stats.std[block][k, channels])
        ax.fill_between(x, mean - std, mean + std, alpha=0.3, label="± 1 std")
        ax.plot(x, mean, lw=1.4, label="mean")

    fig = _channel_panels(stats, chosen, n_channels, seed, ncols, "excitation s", draw)
    fig.suptitle(
        f"Class {stats.classes[k]!r}: mean ± std over its {int(stats.count[k])} images\n({_sample_note(stats)})"
    )
    return fig


def plot_excitation_heatmaps(
    stats: ExcitationStats,
    blocks: Sequence[str] | None = None,
    relative: bool = False,
    ncols: int = 2,
) -> plt.Figure:
    """Classes × channels heatmap of the mean excitation per block, channels ordered by
    :func:`~senet_lib.excitation.channel_order` (clustering with SciPy, else grouped by the
    class that prefers them). ``relative`` shows each class mean minus the all-class mean."""
    chosen = _blocks(stats, blocks)
    fig, axes = _grid(len(chosen), ncols, width=6.0, height=0.25 * min(stats.num_classes, 40) + 1.8)
    show_names = stats.num_classes <= 20
    panels = {}
    for block in chosen:
        values = stats.mean[block]
        if relative:
            values = values - stats.all_class_mean(block)[None, :]
        panels[block] = values[:, channel_order(stats.mean[block])]
    limit = max(float(np.nanmax(np.abs(v))) for v in panels.values()) or 1.0  # one scale for all panels
    for ax, block in zip(axes, chosen, strict=True):
        values = panels[block]
        options = (
            {"cmap": "vlag", "center": 0.0, "vmin": -limit, "vmax": limit}
            if relative
            else {"cmap": "viridis", "vmin": 0.0, "vmax": 1.0}
        )
        sns.heatmap(
            values,
            ax=ax,
            xticklabels=False,
            yticklabels=stats.classes if show_names else False,
            cbar_kws={"label": "s − mean s" if relative else "mean s"},
            **options,
        )
        ax.set(title=block, xlabel=f"channel (reordered, {values.shape[1]})", ylabel="class")
    fig.suptitle(
        "Mean excitation, classes × channels"
        + (" (relative to all classes; one colour scale)" if relative else "")
        + f"\n({_sample_note(stats)})"
    )
    return fig


def plot_similarity(
    stats: ExcitationStats, blocks: Sequence[str] | None = None, method: str = "cosine", ncols: int = 3
) -> plt.Figure:
    """Class-by-class similarity (cosine or correlation) of the mean excitation vectors per block."""
    chosen = _blocks(stats, blocks)
    fig, axes = _grid(len(chosen), ncols, width=4.2, height=3.6)
    names = stats.classes if stats.num_classes <= 20 else False
    matrices = {block: similarity(stats, block, method) for block in chosen}
    low = min(float(np.nanmin(m)) for m in matrices.values())  # one colour scale for all panels
    for ax, block in zip(axes, chosen, strict=True):
        sns.heatmap(
            matrices[block],
            ax=ax,
            vmin=min(low, 0.0) if method == "correlation" else low,
            vmax=1.0,
            cmap="rocket",
            square=True,
            xticklabels=names,
            yticklabels=names,
        )
        ax.set_title(block)
    fig.suptitle(f"{method.capitalize()} similarity between class-mean excitations\n({_sample_note(stats)})")
    return fig


def plot_specificity(
    stats: ExcitationStats, blocks: Sequence[str] | None = None, reference: ExcitationStats | None = None
) -> plt.Figure:
    """Class specificity (see :func:`~senet_lib.excitation.class_specificity`) against depth;
    ``reference`` (e.g. the same network untrained) is drawn beside it."""
    chosen = list(blocks) if blocks is not None else stats.blocks
    values = [class_specificity(stats, b) for b in chosen]
    raw = [class_specificity(stats, b, debias=False) for b in chosen]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(chosen) + 2), 3.4), layout="constrained")
    x = np.arange(len(chosen))
    ax.plot(x, values, marker="o", label="debiased (noise floor removed)")
    ax.plot(x, raw, marker=".", ls=":", color="grey", label="raw")
    if reference is not None:
        ref = [class_specificity(reference, b) for b in chosen]
        ax.plot(x, ref, marker="x", ls="--", color="tab:green", label=_network(reference) + ", debiased")
    ax.set_xticks(x, chosen, rotation=45, ha="right")
    ax.set(xlabel="SE block (network order)", ylabel="class specificity\n(between / within class)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    fig.suptitle(f"Class specificity by depth\n({_sample_note(stats)})", fontsize="medium")
    return fig


def plot_saturation(stats: ExcitationStats, blocks: Sequence[str] | None = None) -> plt.Figure:
    """Share of gate values above 0.95 (open) and below 0.05 (shut) per block, stacked bars."""
    chosen = list(blocks) if blocks is not None else stats.blocks
    shares = [saturation(stats, b) for b in chosen]
    high, low = np.array([s["high"] for s in shares]), np.array([s["low"] for s in shares])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(chosen) + 2), 3.4), layout="constrained")
    x = np.arange(len(chosen))
    ax.bar(x, high, label=f"s > {stats.metadata.get('saturation_high', 0.95)}", color="tab:orange")
    ax.bar(x, low, bottom=high, label=f"s < {stats.metadata.get('saturation_low', 0.05)}", color="tab:blue")
    ax.set_xticks(x, chosen, rotation=45, ha="right")
    ax.set(ylim=(0, 1), ylabel="share of gates\n(image × channel)", xlabel="SE block (network order)")
    if not (high.any() or low.any()):
        ax.text(
            0.5,
            0.5,
            "no gate value above 0.95 or below 0.05 in any block:\nno channel is passed unchanged or shut",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize="small",
        )
    ax.legend(fontsize="small")
    fig.suptitle(f"Saturated gates per block\n({_sample_note(stats)})", fontsize="medium")
    return fig


def plot_image_vs_class(
    stats: ExcitationStats,
    image_s: dict[str, np.ndarray],
    class_index: int | str,
    blocks: Sequence[str] | None = None,
    n_channels: int = 50,
    seed: int = 0,
    ncols: int = 3,
    title: str | None = None,
) -> plt.Figure:
    """One image's excitation (``image_s[block]``: ``[C]`` or ``[1, C]``, e.g. from
    :func:`~senet_lib.excitation.image_excitations`) against its class mean ± std."""
    chosen, k = _blocks(stats, blocks), stats.class_index(class_index)
    fig, axes = _grid(len(chosen), ncols)
    for ax, block in zip(axes, chosen, strict=True):
        if block not in image_s:
            raise ValueError(f"image_s has no excitation for {block}: record the same blocks as the stats.")
        channels = sample_channels(stats.num_channels(block), n_channels, seed)
        x = np.arange(len(channels))
        mean, std = stats.mean[block][k, channels], np.nan_to_num(stats.std[block][k, channels])
        ax.fill_between(x, mean - std, mean + std, alpha=0.25, label=f"{stats.classes[k]} mean ± std")
        ax.plot(x, mean, lw=1.2)
        ax.plot(
            x, np.asarray(image_s[block]).reshape(-1)[channels], color="black", lw=1.2, label="this image"
        )
        ax.set_title(block)
        _channel_axis(ax, "excitation s")
    axes[0].legend(fontsize="small", loc="best")
    fig.suptitle(
        title or f"One image of class {stats.classes[k]!r} against its class\n({_sample_note(stats)})"
    )
    return fig


def _network(stats: ExcitationStats) -> str:
    """The model's name and, when recorded, how it was trained: "se_resnet20 (40 epochs, 87.9 % test)"."""
    model, network = stats.metadata.get("model", "model"), stats.metadata.get("network")
    return f"{model} ({network})" if network else str(model)


def _sample_note(stats: ExcitationStats) -> str:
    dataset = stats.metadata.get("dataset", "?")
    per_class = stats.metadata.get("images_per_class", int(stats.count.max()) if stats.count.size else 0)
    return f"{_network(stats)}, {dataset}, {per_class} images/class"
