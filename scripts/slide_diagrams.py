"""The paper's three module diagrams (Fig. 2, 3 and 5) laid out left to right for a 16:9 slide.

The notebooks draw them top to bottom (``senet_lib.plots.draw_se_module``, ``draw_se_placements``), which
suits a page but not a projector: a column of seven boxes shown 7 inches high leaves its labels at 8 to 10
points. Here every box and label is placed in inches on a figure of the slide's size, so what is written at
16 points is shown at 16 points. Used by ``scripts/build_slides.py``; nothing here is a number.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch  # noqa: E402

COLOURS = {"host": "#c6dbef", "se": "#fdae6b", "scale": "#a1d99b"}
TEXT_PT = 16  # box labels and titles
NOTE_PT = 14.5  # shape labels (grey)
BOX_H = 0.62


def _canvas(width: float, height: float) -> tuple[plt.Figure, plt.Axes]:
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def _box(ax: plt.Axes, x: float, y: float, w: float, label: str, kind: str) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - BOX_H / 2),
            w,
            BOX_H,
            boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=COLOURS[kind],
            edgecolor="0.15",
            linewidth=1.3,
            zorder=3,
        )
    )
    ax.text(x, y, label, ha="center", va="center", fontsize=TEXT_PT, linespacing=1.0, zorder=4)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "lw": 1.5, "color": "0.15"})


def _sum(ax: plt.Axes, x: float, y: float) -> None:
    ax.add_patch(Circle((x, y), 0.2, facecolor="white", edgecolor="0.15", linewidth=1.4, zorder=3))
    ax.text(x, y, "+", ha="center", va="center", fontsize=TEXT_PT, zorder=4)


def draw_module_row(host: str = "Inception", residual: bool = False, width: float = 12.4) -> plt.Figure:
    """Fig. 2 (``residual=False``) or Fig. 3: host → squeeze → excitation → scale (→ + identity), in a row."""
    height = 3.3 if residual else 2.7
    fig, ax = _canvas(width, height)
    y = 1.45 if residual else 1.0
    steps = [
        (host, "host", "H × W × C"),
        ("Global\npooling", "se", "1 × 1 × C"),
        ("FC", "se", "1 × 1 × C/r"),
        ("ReLU", "se", "1 × 1 × C/r"),
        ("FC", "se", "1 × 1 × C"),
        ("Sigmoid", "se", "1 × 1 × C"),
        ("Scale", "scale", "H × W × C"),
    ]
    x0, x_end = 0.2, width - 0.3
    span = (x_end - 0.9 - (0.75 if residual else 0)) - (x0 + 1.05)
    xs = [x0 + 1.05 + span * i / (len(steps) - 1) for i in range(len(steps))]
    w = min(1.3, span / (len(steps) - 1) - 0.28)
    ax.text(x0, y, "X", ha="center", va="center", fontsize=TEXT_PT + 2)
    _arrow(ax, (x0 + 0.15, y), (xs[0] - w / 2, y))
    for i, (label, kind, shape) in enumerate(steps):
        _box(ax, xs[i], y, w, label, kind)
        ax.text(xs[i], y - BOX_H / 2 - 0.12, shape, ha="center", va="top", fontsize=NOTE_PT, color="0.3")
        if i:
            _arrow(ax, (xs[i - 1] + w / 2, y), (xs[i] - w / 2, y))
    # the maps U go around the excitation to be scaled
    top = y + BOX_H / 2 + 0.45
    gap = (xs[1] - xs[0]) / 2
    ax.plot(
        [xs[0] + w / 2 + 0.08, xs[0] + gap, xs[0] + gap, xs[-1], xs[-1]],
        [y, y, top, top, y + BOX_H / 2 + 0.02],
        color="0.15",
        lw=1.5,
    )
    _arrow(ax, (xs[-1], top), (xs[-1], y + BOX_H / 2))
    ax.text(
        (xs[1] + xs[-1]) / 2,
        top + 0.08,
        "the maps U, to be rescaled",
        ha="center",
        va="bottom",
        fontsize=NOTE_PT,
        color="0.3",
    )
    x_out = x_end
    if residual:
        x_sum = xs[-1] + w / 2 + 0.55
        _sum(ax, x_sum, y)
        _arrow(ax, (xs[-1] + w / 2, y), (x_sum - 0.2, y))
        _arrow(ax, (x_sum + 0.2, y), (x_out - 0.2, y))
        low = 0.3
        ax.plot([x0 + 0.3, x0 + 0.3, x_sum, x_sum], [y, low, low, y - 0.2 - 0.03], color="0.15", lw=1.5)
        _arrow(ax, (x_sum, low), (x_sum, y - 0.2))
        ax.text(
            (x0 + x_sum) / 2, low + 0.06, "identity", ha="center", va="bottom", fontsize=NOTE_PT, color="0.3"
        )
    else:
        _arrow(ax, (xs[-1] + w / 2, y), (x_out - 0.2, y))
    ax.text(x_out, y, "X̃", ha="center", va="center", fontsize=TEXT_PT + 2)
    return fig


PLACEMENTS = {
    "plain": ("Residual unit (no SE)", ["Residual"], [], False),
    "standard": ("Standard SE", ["Residual", "SE"], [], False),
    "pre": ("SE-PRE", ["SE", "Residual"], [], False),
    "post": ("SE-POST", ["Residual"], ["SE"], False),
    "identity": ("SE-Identity", ["Residual"], [], True),
}


def draw_placements(notes: dict[str, str], width: float = 12.4) -> plt.Figure:
    """Fig. 5 as rows: where SE goes in a residual unit; ``notes`` (e.g. the paper's errors) at each row's end."""
    rows = {key: 1.45 if spec[3] else 1.0 for key, spec in PLACEMENTS.items()}
    fig, ax = _canvas(width, sum(rows.values()) + 0.05)
    x_title, x_in, w = 0.05, 3.35, 1.3
    y_top = sum(rows.values())
    for key, (title, before, after, on_identity) in PLACEMENTS.items():
        y_top -= rows[key]
        y = y_top + 0.4
        ax.text(x_title, y, title, ha="left", va="center", fontsize=TEXT_PT, weight="bold")
        ax.text(x_in, y, "in", ha="center", va="center", fontsize=TEXT_PT)
        x = x_in + 0.3
        xs = [x + 0.25 + w / 2 + i * (w + 0.35) for i in range(len(before))]
        for i, label in enumerate(before):
            _box(ax, xs[i], y, w, label, "se" if label == "SE" else "host")
            _arrow(ax, (x if i == 0 else xs[i - 1] + w / 2, y), (xs[i] - w / 2, y))
        x_sum = xs[-1] + w / 2 + 0.6
        _sum(ax, x_sum, y)
        _arrow(ax, (xs[-1] + w / 2, y), (x_sum - 0.2, y))
        top = y + (0.72 if on_identity else 0.45)
        ax.plot(
            [x_in + 0.15, x_in + 0.15, x_sum, x_sum], [y + 0.12, top, top, y + 0.22], color="0.15", lw=1.4
        )
        _arrow(ax, (x_sum, top), (x_sum, y + 0.2))
        if on_identity:
            _box(ax, (x_in + x_sum) / 2, top, 0.9, "SE", "se")
        x = x_sum + 0.2
        for label in after:
            x_box = x + 0.35 + w / 2
            _arrow(ax, (x, y), (x_box - w / 2, y))
            _box(ax, x_box, y, w, label, "se")
            x = x_box + w / 2
        x_out = 9.55
        _arrow(ax, (x, y), (x_out - 0.35, y))
        ax.text(x_out, y, "out", ha="center", va="center", fontsize=TEXT_PT)
        if key in notes:
            ax.text(width - 0.05, y, notes[key], ha="right", va="center", fontsize=TEXT_PT)
    return fig
