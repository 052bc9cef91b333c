"""Diagrams and geometry for notebooks 00–02: the SE block (paper Fig. 1), feature-map grids, and
receptive fields (why a 3×3 convolution cannot see global context, §3.1)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle, FancyArrowPatch, Polygon
from matplotlib.ticker import ScalarFormatter
from torch import Tensor, nn

# --------------------------------------------------------------------------- receptive field


@dataclass(frozen=True)
class RFStep:
    """One layer of a receptive-field computation: ``rf`` and ``jump`` in input pixels."""

    name: str
    kernel: int
    stride: int
    rf: int
    jump: int


def receptive_field(layers: Iterable[tuple[str, int, int] | tuple[int, int]]) -> list[RFStep]:
    """The receptive field after each ``(kernel, stride)`` or ``(name, kernel, stride)`` layer:
    ``rf += (kernel − 1)·jump`` then ``jump *= stride``.

    >>> [step.rf for step in receptive_field([(3, 1), (3, 1)])]
    [3, 5]
    """
    steps: list[RFStep] = []
    rf, jump = 1, 1
    for index, layer in enumerate(layers):
        if len(layer) == 3:
            name, kernel, stride = layer  # type: ignore[misc]
        elif len(layer) == 2:
            kernel, stride = layer  # type: ignore[misc]
            name = f"layer{index + 1}"
        else:
            raise ValueError(f"Each layer must be (kernel, stride) or (name, kernel, stride), got {layer!r}.")
        if int(kernel) < 1 or int(stride) < 1:
            raise ValueError(f"kernel and stride must be positive, got {kernel} and {stride} for {name!r}.")
        rf += (int(kernel) - 1) * jump
        jump *= int(stride)
        steps.append(RFStep(str(name), int(kernel), int(stride), rf, jump))
    return steps


def _square(value: int | tuple[int, ...], what: str, name: str) -> int:
    values = (value,) if isinstance(value, int) else tuple(value)
    if len(set(values)) != 1:
        raise ValueError(
            f"{name!r} has a non-square {what} {value}: receptive_field handles square ones only."
        )
    return int(values[0])


def layer_geometry(
    model: nn.Module, skip: Sequence[str] = ("downsample", "shortcut")
) -> list[tuple[str, int, int]]:
    """``(name, kernel, stride)`` of every convolution and pool on ``model``'s main path, in registration
    order, leaving out modules whose name has a part in ``skip`` (the shortcuts)."""
    rows: list[tuple[str, int, int]] = []
    for name, module in model.named_modules():
        if any(part in skip for part in name.split(".")):
            continue
        if isinstance(module, nn.Conv2d):
            k = _square(module.kernel_size, "kernel", name)
            d = _square(module.dilation, "dilation", name)
            rows.append((name, d * (k - 1) + 1, _square(module.stride, "stride", name)))
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            k = _square(module.kernel_size, "kernel", name)
            d = _square(getattr(module, "dilation", 1), "dilation", name)
            stride = module.stride if module.stride is not None else module.kernel_size
            rows.append((name, d * (k - 1) + 1, _square(stride, "stride", name)))
    return rows


def receptive_field_table(model: nn.Module, skip: Sequence[str] = ("downsample", "shortcut")) -> list[RFStep]:
    """:func:`receptive_field` of :func:`layer_geometry`: the receptive field after each layer of ``model``."""
    return receptive_field(layer_geometry(model, skip))


def plot_receptive_fields(
    tables: dict[str, Sequence[RFStep]],
    image_sizes: dict[str, int] | None = None,
    max_layers: int | None = None,
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """Receptive field against depth for each network in ``tables``, the i-th image size drawn as a
    line in the i-th network's colour."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
    else:
        fig = ax.figure
    for label, steps in tables.items():
        steps = list(steps)[:max_layers]
        ax.plot(range(1, len(steps) + 1), [s.rf for s in steps], marker="o", ms=3, label=label)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, size) in enumerate((image_sizes or {}).items()):
        color = colors[i % len(colors)]
        ax.axhline(size, ls="--", lw=1.2, color=color, label=f"{label} image: {size} px")
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("convolution / pool layer along the residual branches")
    ax.set_ylabel("theoretical receptive field (px, log scale)")
    ax.legend(loc="lower right")
    return fig


# --------------------------------------------------------------------------- feature maps


def plot_feature_maps(
    maps: Tensor,
    channels: Sequence[int] | None = None,
    ncols: int = 8,
    cmap: str = "magma",
    size: float = 1.3,
    titles: Sequence[str] | None = None,
) -> plt.Figure:
    """A grid of single-channel images from ``maps`` (``[C, H, W]``), each with its own colour range."""
    if maps.dim() != 3:
        raise ValueError(f"plot_feature_maps expects [C, H, W] maps, got shape {tuple(maps.shape)}.")
    chosen = list(range(maps.shape[0])) if channels is None else list(channels)
    if not chosen:
        raise ValueError("plot_feature_maps needs at least one channel to show.")
    ncols = min(ncols, len(chosen))
    nrows = -(-len(chosen) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.2), squeeze=False)
    data = maps.detach().float().cpu()
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(chosen):
            ax.imshow(data[chosen[i]].numpy(), cmap=cmap)
            ax.set_title(titles[i] if titles is not None else f"$u_{{{chosen[i]}}}$", fontsize=8)
    return fig


# --------------------------------------------------------------------------- Fig. 1


def _cuboid(
    ax: plt.Axes,
    x: float,
    y: float,
    width: float,
    height: float,
    depth: float,
    colors: Sequence | None = None,
    face: str = "#d9d9d9",
    slices: int = 1,
) -> None:
    """A box in oblique projection, its width cut into ``colors`` (or ``slices`` grey) channel slices."""
    dx, dy = 0.6 * depth, 0.45 * depth
    n = slices if colors is None else len(colors)
    fills = [face] * n if colors is None else list(colors)
    step = width / n
    for i, color in enumerate(fills):
        x0 = x + i * step
        ax.add_patch(
            Polygon(
                [(x0, y), (x0 + step, y), (x0 + step, y + height), (x0, y + height)], fc=color, ec="k", lw=0.6
            )
        )
        ax.add_patch(
            Polygon(
                [
                    (x0, y + height),
                    (x0 + step, y + height),
                    (x0 + step + dx, y + height + dy),
                    (x0 + dx, y + height + dy),
                ],
                fc=color,
                ec="k",
                lw=0.6,
            )
        )
    side = fills[-1]
    ax.add_patch(
        Polygon(
            [
                (x + width, y),
                (x + width + dx, y + dy),
                (x + width + dx, y + height + dy),
                (x + width, y + height),
            ],
            fc=side,
            ec="k",
            lw=0.6,
            alpha=0.85,
        )
    )


def _arrow(
    ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], label: str = "", offset=(0, 0.25)
) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, lw=1.4, color="k"))
    if label:
        mid = ((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1])
        ax.text(*mid, label, ha="center", va="bottom", fontsize=12)


def draw_se_block(
    s: Sequence[float] | Tensor | None = None,
    channels: int = 12,
    cmap: str = "viridis",
    seed: int = 0,
    ax: plt.Axes | None = None,
    colorbar: bool = True,
) -> plt.Figure:
    """Draw the Squeeze-and-Excitation block as in paper Fig. 1, channels coloured by ``s`` (default:
    ``channels`` pseudo-random values from ``seed``)."""
    if s is None:
        weights = np.random.default_rng(seed).uniform(0.05, 1.0, channels)
    else:
        weights = torch.as_tensor(s).detach().float().cpu().numpy().ravel()
        if weights.size < 1:
            raise ValueError("draw_se_block needs at least one channel weight in s.")
    colormap = plt.get_cmap(cmap)
    colors = [colormap(float(np.clip(w, 0, 1))) for w in weights]
    if ax is None:
        fig, ax = plt.subplots(figsize=(11, 4.2))
    else:
        fig = ax.figure

    # main row: X → U → (×) → X̃
    _cuboid(ax, 0.0, 0.0, 1.1, 1.6, 1.2)
    ax.text(0.55, -0.35, "$X$", ha="center", fontsize=14)
    ax.text(0.55, -0.7, "$C' \\times H' \\times W'$", ha="center", fontsize=10)
    _arrow(ax, (2.0, 0.8), (3.2, 0.8), "$F_{tr}$")
    _cuboid(ax, 3.4, 0.0, 1.6, 1.6, 1.2, slices=len(colors))
    ax.text(4.2, -0.35, "$U$", ha="center", fontsize=14)
    ax.text(4.2, -0.7, "$C \\times H \\times W$", ha="center", fontsize=10)
    _cuboid(ax, 9.6, 0.0, 1.6, 1.6, 1.2, colors=colors)
    ax.text(10.4, -0.35, "$\\widetilde{X}$", ha="center", fontsize=14)
    ax.text(10.4, -0.7, "$C \\times H \\times W$", ha="center", fontsize=10)
    ax.add_patch(Circle((8.3, 0.8), 0.22, fc="white", ec="k", lw=1.2))
    ax.text(8.3, 0.8, "$\\times$", ha="center", va="center", fontsize=13)
    _arrow(ax, (5.8, 0.8), (8.06, 0.8))
    _arrow(ax, (8.54, 0.8), (9.55, 0.8))

    # upper row: U → F_sq → 1×1×C → F_ex → 1×1×C (coloured) → F_scale
    _arrow(ax, (4.9, 2.2), (5.5, 3.0), "$F_{sq}(\\cdot)$", offset=(-0.55, 0.05))
    _cuboid(ax, 5.6, 2.95, 1.6, 0.22, 0.22, slices=len(colors))
    ax.text(6.4, 2.6, "$1 \\times 1 \\times C$  ($z$)", ha="center", fontsize=10)
    _arrow(ax, (7.35, 3.06), (7.95, 3.06), "$F_{ex}(\\cdot, W)$", offset=(0, 0.35))
    _cuboid(ax, 8.05, 2.95, 1.6, 0.22, 0.22, colors=colors)
    ax.text(8.85, 2.6, "$1 \\times 1 \\times C$  ($s$)", ha="center", fontsize=10)
    _arrow(ax, (8.5, 2.45), (8.34, 1.05), "$F_{scale}(\\cdot, \\cdot)$", offset=(-0.95, -0.2))

    ax.set_xlim(-0.3, 12.2)
    ax.set_ylim(-0.95, 3.9)
    ax.set_aspect("equal")
    ax.axis("off")
    if colorbar:
        mappable = plt.cm.ScalarMappable(norm=plt.Normalize(0, 1), cmap=colormap)
        bar = fig.colorbar(mappable, ax=ax, fraction=0.02, pad=0.01, shrink=0.6)
        bar.set_label("excitation $s_c$")
    return fig
