"""Block diagrams of where an SE block goes: :func:`draw_se_placements` (paper Fig. 5) and
:func:`draw_se_module` (Fig. 2 and 3). Schematic; figures are returned, not saved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

#: Panel order and titles of :func:`draw_se_placements` (the keys are ``se_placement`` values,
#: plus ``"plain"`` for the unit without SE).
PLACEMENT_TITLES = {
    "plain": "Residual unit\n(no SE)",
    "standard": "Standard SE",
    "pre": "SE-PRE",
    "post": "SE-POST",
    "identity": "SE-Identity",
}

COLORS = {"host": "#c6dbef", "se": "#fdae6b", "scale": "#a1d99b", "sum": "#ffffff"}
_BOX_W, _BOX_H = 1.7, 0.75
_WIDE = 2.3


def _box(ax: plt.Axes, x: float, y: float, label: str, kind: str = "host", width: float = _BOX_W) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - _BOX_H / 2),
            width,
            _BOX_H,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            fc=COLORS[kind],
            ec="k",
            lw=1.0,
        )
    )
    ax.text(x, y, label, ha="center", va="center", fontsize=10)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, lw=1.2, color="k"))


def _line(ax: plt.Axes, xs: Sequence[float], ys: Sequence[float]) -> None:
    ax.plot(xs, ys, color="k", lw=1.2, solid_capstyle="round")


def _sum(ax: plt.Axes, x: float, y: float, r: float = 0.22) -> None:
    ax.add_patch(Circle((x, y), r, fc=COLORS["sum"], ec="k", lw=1.2, zorder=3))
    ax.text(x, y, "+", ha="center", va="center", fontsize=13, zorder=4)


def _placement_layout(
    placement: str,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """(branch boxes, shortcut boxes, boxes after the sum) of one placement, top to bottom."""
    residual, se = ("Residual", "host"), ("SE", "se")
    layouts = {
        "plain": ([residual], [], []),
        "standard": ([residual, se], [], []),
        "pre": ([se, residual], [], []),
        "post": ([residual], [], [se]),
        "identity": ([residual], [se], []),
    }
    if placement not in layouts:
        raise ValueError(f"Unknown placement {placement!r}: use one of {', '.join(layouts)}.")
    return layouts[placement]


def _draw_unit(ax: plt.Axes, placement: str) -> None:
    branch, shortcut, after = _placement_layout(placement)
    x_main, x_skip = 1.2, 3.25
    y_in, y_split, y_sum, y_out = 9.4, 8.6, 3.0, 0.3
    ax.text(x_main, y_in + 0.25, "input", ha="center", va="bottom", fontsize=10)
    _line(ax, [x_main, x_main], [y_in, y_split])
    # branch: boxes spread evenly between the split and the sum
    slots = [y_split - (i + 1) * (y_split - y_sum) / (len(branch) + 1) for i in range(len(branch))]
    y_prev = y_split
    for (label, kind), y in zip(branch, slots, strict=True):
        _arrow(ax, (x_main, y_prev), (x_main, y + _BOX_H / 2))
        _box(ax, x_main, y, label, kind)
        y_prev = y - _BOX_H / 2
    _arrow(ax, (x_main, y_prev), (x_main, y_sum + 0.22))
    # shortcut: right, down (through its box if any), back left into the sum
    _line(ax, [x_main, x_skip], [y_split, y_split])
    if shortcut:
        y_box = (y_split + y_sum) / 2
        _line(ax, [x_skip, x_skip], [y_split, y_box + _BOX_H / 2 + 0.15])
        _arrow(ax, (x_skip, y_box + _BOX_H / 2 + 0.2), (x_skip, y_box + _BOX_H / 2))
        _box(ax, x_skip, y_box, shortcut[0][0], shortcut[0][1], width=1.1)
        _line(ax, [x_skip, x_skip], [y_box - _BOX_H / 2, y_sum])
    else:
        _line(ax, [x_skip, x_skip], [y_split, y_sum])
    _arrow(ax, (x_skip, y_sum), (x_main + 0.22, y_sum))
    y_label = (y_split + 3 * y_sum) / 4 if shortcut else (y_split + y_sum) / 2
    ax.text(
        x_skip + 0.12, y_label, "identity", rotation=-90, ha="left", va="center", fontsize=8, color="0.35"
    )
    _sum(ax, x_main, y_sum)
    # after the sum
    y_prev = y_sum - 0.22
    for label, kind in after:
        y = y_sum - 1.3
        _arrow(ax, (x_main, y_prev), (x_main, y + _BOX_H / 2))
        _box(ax, x_main, y, label, kind)
        y_prev = y - _BOX_H / 2
    _arrow(ax, (x_main, y_prev), (x_main, y_out + 0.2))
    ax.text(x_main, y_out, "output", ha="center", va="top", fontsize=10)


def draw_se_placements(
    captions: Mapping[str, str] | None = None,
    placements: Sequence[str] = ("plain", "standard", "pre", "post", "identity"),
    panel_width: float = 2.6,
) -> plt.Figure:
    """Draw a residual unit and the SE placements of paper Fig. 5 side by side, ``captions`` under each
    (keyed ``"plain"``, ``"standard"``, ``"pre"``, ``"post"``, ``"identity"``)."""
    captions = dict(captions or {})
    fig, axes = plt.subplots(1, len(placements), figsize=(panel_width * len(placements), 5.4), squeeze=False)
    for ax, placement in zip(axes[0], placements, strict=True):
        _draw_unit(ax, placement)
        ax.set_title(PLACEMENT_TITLES.get(placement, placement), fontsize=12, fontweight="bold")
        ax.set_xlim(0, 4.2)
        ax.set_ylim(-1.9 if captions else -0.6, 10.2)
        ax.set_aspect("equal")
        ax.axis("off")
        if placement in captions:
            ax.text(2.1, -0.75, captions[placement], ha="center", va="top", fontsize=9)
    fig.tight_layout()
    return fig


def draw_se_module(
    host: str = "Inception",
    residual: bool = False,
    channels: str = "C",
    reduction: str = "r",
    size: str = "H × W",
) -> plt.Figure:
    """Draw a module without and with SE, step by step: paper Fig. 2, or Fig. 3 with ``residual=True``;
    ``channels``, ``reduction``, ``size`` are how C, r and H × W are written."""
    c, r, hw = channels, reduction, size
    se_steps = [
        ("Global pooling", "se", f"1 × 1 × {c}"),
        ("FC", "se", f"1 × 1 × {c}/{r}"),
        ("ReLU", "se", f"1 × 1 × {c}/{r}"),
        ("FC", "se", f"1 × 1 × {c}"),
        ("Sigmoid", "se", f"1 × 1 × {c}"),
    ]
    fig, (ax_plain, ax_se) = plt.subplots(1, 2, figsize=(8.4, 7.2), gridspec_kw={"width_ratios": [1, 1.55]})
    for ax, with_se in ((ax_plain, False), (ax_se, True)):
        x, x_skip, x_side = 1.6, 3.5, 3.6
        y = 11.2
        ax.text(x, y + 0.2, f"X   ({hw} × {c})", ha="center", va="bottom", fontsize=10)
        y_split = y - 0.3
        y_host = y - 1.3
        _arrow(ax, (x, y), (x, y_host + _BOX_H / 2))
        _box(ax, x, y_host, host, width=_WIDE)
        y_prev = y_host - _BOX_H / 2
        if with_se:
            y_u = y_host - 1.0  # where U branches off to the scale
            _line(ax, [x, x], [y_prev, y_u])
            _line(ax, [x, x_side + 0.9], [y_u, y_u])
            ax.text(x - 0.12, y_u + 0.05, f"{hw} × {c}", ha="right", va="center", fontsize=8, color="0.35")
            y_prev = y_u
            y_step = y_u - 0.9
            for label, kind, shape in se_steps:
                _arrow(ax, (x, y_prev), (x, y_step + _BOX_H / 2))
                _box(ax, x, y_step, label, kind, width=_WIDE)
                ax.text(x + _WIDE / 2 + 0.1, y_step, shape, ha="left", va="center", fontsize=8, color="0.35")
                y_prev = y_step - _BOX_H / 2
                y_step -= 1.1
            y_scale = y_step
            _arrow(ax, (x, y_prev), (x, y_scale + _BOX_H / 2))
            _box(ax, x, y_scale, "Scale", "scale", width=_WIDE)
            _line(ax, [x_side + 0.9, x_side + 0.9], [y_u, y_scale])
            _arrow(ax, (x_side + 0.9, y_scale), (x + _WIDE / 2, y_scale))
            ax.text(
                x + _WIDE / 2 + 0.1,
                y_scale - 0.45,
                f"{hw} × {c}",
                ha="left",
                va="center",
                fontsize=8,
                color="0.35",
            )
            y_prev = y_scale - _BOX_H / 2
        y_end = (y_prev - 1.0) if not residual else (y_prev - 0.9)
        if residual:
            skip = x_skip + (1.6 if with_se else 0)
            _line(ax, [x, skip], [y_split, y_split])
            _line(ax, [skip, skip], [y_split, y_end])
            _arrow(ax, (skip, y_end), (x + 0.22, y_end))
            _arrow(ax, (x, y_prev), (x, y_end + 0.22))
            _sum(ax, x, y_end)
            y_prev, y_end = y_end - 0.22, y_end - 1.0
        _arrow(ax, (x, y_prev), (x, y_end))
        ax.text(x, y_end - 0.1, f"X̃   ({hw} × {c})", ha="center", va="top", fontsize=10)
        name = f"{'SE-' if with_se else ''}{host}" + (" module" if not residual else " unit")
        ax.set_title(name, fontsize=12, fontweight="bold")
        ax.set_xlim(-0.6, 5.6 if with_se else 4.0)
        ax.set_aspect("equal")
        ax.axis("off")
        bottom = y_end - 0.8 if with_se else None
    for ax in (ax_plain, ax_se):
        ax.set_ylim(bottom, 12.2)
    fig.tight_layout()
    return fig
