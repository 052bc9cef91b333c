"""Synthetic coloured shapes generated from a seed: the offline stand-in for CIFAR, labelled as not CIFAR."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .dataset import SYNTHETIC_LABEL, DataWarning, ImageDataset, ImageSplit, channel_stats

# --------------------------------------------------------------------------- synthetic shapes
#: (name, hue in [0, 1]); every colour is shared by two shapes and every shape by two colours.
_COLOURS = (("red", 0.0), ("yellow", 0.15), ("green", 0.33), ("blue", 0.62), ("purple", 0.8))

SHAPES = ("disk", "square", "triangle", "cross", "ring")

#: class k = (shape k // 2, colour (k // 2 + k % 2) mod 5): neither colour nor shape alone tells the class.
SYNTHETIC_CLASSES = tuple((s, (s + j) % len(_COLOURS)) for s in range(len(SHAPES)) for j in range(2))


def shape_distance(shape: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed distance (pixels, negative inside) to ``shape`` of size ``r``, at rotated offsets (u, v)."""
    if shape == "disk":
        return np.hypot(u, v) - r
    if shape == "ring":
        return np.abs(np.hypot(u, v) - 0.7 * r) - 0.3 * r
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.8 * r
    if shape == "cross":
        w = 0.3 * r
        return np.minimum(np.maximum(np.abs(u) - r, np.abs(v) - w), np.maximum(np.abs(u) - w, np.abs(v) - r))
    if shape == "triangle":  # equilateral, circumradius r, pointing up (image y grows downwards)
        angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        return np.max([np.cos(a) * u + np.sin(a) * v for a in angles], axis=0) - 0.5 * r
    raise ValueError(f"unknown shape {shape!r}")


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV → RGB, inputs in [0, 1], output ``[..., 3]``."""
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.astype(np.int64) % 6
    rgb = np.select(
        [i[..., None] == k for k in range(6)],
        [np.stack(c, axis=-1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))],
    )
    return rgb


def _draw_shapes(labels: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """uint8 ``[N, 3, size, size]`` images of the shapes and colours of ``labels``."""
    n = len(labels)
    shape_of = np.array([SYNTHETIC_CLASSES[k][0] for k in range(len(SYNTHETIC_CLASSES))])[labels]
    hue_of = np.array([_COLOURS[c][1] for _, c in SYNTHETIC_CLASSES])[labels]
    f32 = np.float32
    # geometry: centre, size and rotation per image
    cx, cy = rng.uniform(10, size - 10, n).astype(f32), rng.uniform(10, size - 10, n).astype(f32)
    radius = rng.uniform(6.0, 10.0, n).astype(f32)
    theta = rng.uniform(-np.pi / 6, np.pi / 6, n).astype(f32)
    grid = np.arange(size, dtype=f32) + f32(0.5)
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    dist = np.empty((n, size, size), dtype=f32)
    for s, shape in enumerate(SHAPES):
        idx = shape_of == s
        dist[idx] = shape_distance(shape, u[idx], v[idx], radius[idx, None, None])
    coverage = np.clip(f32(0.5) - dist, 0.0, 1.0)[:, None]  # anti-aliased edge, [N, 1, H, W]
    # colours: class hue with jitter; background a random dim, weakly tinted grey with a gradient
    hue = (hue_of + rng.normal(0, 0.025, n)) % 1.0
    fg = _hsv_to_rgb(hue, rng.uniform(0.55, 1.0, n), rng.uniform(0.6, 1.0, n)).astype(f32)[:, :, None, None]
    bg = (rng.uniform(0.05, 0.6, (n, 1, 1, 1)) + rng.normal(0, 0.06, (n, 3, 1, 1))).astype(f32)
    centred = grid - f32(size / 2)
    slope = rng.normal(0, 0.006, (n, 2, 1, 1)).astype(f32)
    bg = bg + slope[:, :1] * centred[None, None, None, :] + slope[:, 1:] * centred[None, None, :, None]
    img = rng.standard_normal((n, 3, size, size), dtype=f32)
    img *= f32(0.05)
    img += bg * (1 - coverage) + fg * coverage
    np.clip(img, 0.0, 1.0, out=img)
    img *= 255
    img += f32(0.5)
    return img.astype(np.uint8)


def _synthetic_split(n: int, rng: np.random.Generator) -> ImageSplit:
    labels = rng.permutation(np.arange(n) % len(SYNTHETIC_CLASSES))
    images = _draw_shapes(labels, rng)
    return ImageSplit(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def make_synthetic(n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> ImageDataset:
    """Coloured shapes, 32×32 RGB, in 10 classes; a network must combine shape *and* colour.

    The same ``seed`` gives the same images; train and test come from independent streams, and
    classes are balanced. Labelled ``"synthetic shapes (not CIFAR)"``.
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}.")
    train = _synthetic_split(n_train, np.random.default_rng([seed, 0]))
    test = _synthetic_split(n_test, np.random.default_rng([seed, 1]))
    mean, std = channel_stats(train.images)
    return ImageDataset(
        name="synthetic",
        classes=[f"{_COLOURS[c][0]} {SHAPES[s]}" for s, c in SYNTHETIC_CLASSES],
        train=train,
        test=test,
        mean=mean,
        std=std,
        source=f"procedurally generated (seed {seed})",
        synthetic=True,
        label=SYNTHETIC_LABEL,
    )


# --------------------------------------------------------------------------- entry point
def fallback_to_synthetic(reason: str, synthetic_size: tuple[int, int], seed: int) -> ImageDataset:
    """Say loudly (banner + warning) that synthetic data replaces CIFAR-10, then make it."""
    how = (
        "To use CIFAR-10: connect to the internet and run again, attach a CIFAR-10 dataset on Kaggle, "
        "or place cifar-10-batches-py/ in the data folder (see data/README.md)."
    )
    bar = "=" * 78
    print(
        f"{bar}\nUSING SYNTHETIC DATA, NOT CIFAR-10\n{reason}\n"
        f"Every result below is on {SYNTHETIC_LABEL!r}, not on CIFAR.\n{how}\n{bar}"
    )
    warnings.warn(f"Using synthetic shapes instead of CIFAR-10: {reason} {how}", DataWarning, stacklevel=3)
    return make_synthetic(*synthetic_size, seed=seed)
