"""Per-class excitation statistics (:class:`ExcitationStats`), their files, and what is read from
them: class separation and specificity, saturation, similarity, channel orders and tables."""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd


# --------------------------------------------------------------------------- statistics
@dataclass
class ExcitationStats:
    """Per-class excitation statistics of some SE blocks (NumPy arrays).

    ``count`` is ``[K]`` images per class; per block, ``mean``, ``std`` (ddof 1; NaN below two images),
    ``high`` and ``low`` (images with ``s`` above ``SATURATION_HIGH`` / below ``SATURATION_LOW``) are
    ``[K, C]``; ``metadata`` is provenance.
    """

    blocks: list[str]
    classes: list[str]
    count: np.ndarray
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    low: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- lookups
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def num_channels(self, block: str) -> int:
        """C, the number of channels of ``block``."""
        return int(self._check_block(block).shape[1])

    def class_index(self, cls: int | str) -> int:
        """The index of a class given by name or index."""
        if isinstance(cls, str):
            if cls not in self.classes:
                raise ValueError(f"Unknown class {cls!r}: the classes are {', '.join(self.classes)}.")
            return self.classes.index(cls)
        if not 0 <= int(cls) < self.num_classes:
            raise ValueError(f"Class index {cls} is out of range: use 0 … {self.num_classes - 1}.")
        return int(cls)

    def _check_block(self, block: str) -> np.ndarray:
        if block not in self.mean:
            raise ValueError(f"No statistics for block {block!r}: these stats have {', '.join(self.blocks)}.")
        return self.mean[block]

    # ----------------------------------------------------------------- all-class summaries
    def all_class_mean(self, block: str) -> np.ndarray:
        """``[C]`` mean excitation over all recorded images (the paper's "all" line)."""
        mean = self._check_block(block)
        n = self.count.astype(np.float64)
        seen = n > 0
        return (n[seen, None] * mean[seen]).sum(0) / n.sum()

    def all_class_std(self, block: str) -> np.ndarray:
        """``[C]`` sample standard deviation over all recorded images (law of total variance)."""
        mean, std = self._check_block(block), self.std[block]
        n = self.count.astype(np.float64)
        seen = n > 0
        within = ((n[seen, None] - 1) * np.nan_to_num(std[seen]) ** 2).sum(0)
        between = (n[seen, None] * (mean[seen] - self.all_class_mean(block)) ** 2).sum(0)
        return np.sqrt((within + between) / max(n.sum() - 1, 1))

    # ----------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain values: lists, NumPy arrays and the metadata dict."""
        return {
            "blocks": list(self.blocks),
            "classes": list(self.classes),
            "count": self.count,
            "mean": dict(self.mean),
            "std": dict(self.std),
            "high": dict(self.high),
            "low": dict(self.low),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExcitationStats:
        """Inverse of :meth:`to_dict`."""
        try:
            blocks = [str(b) for b in data["blocks"]]
            return cls(
                blocks=blocks,
                classes=[str(c) for c in data["classes"]],
                count=np.asarray(data["count"], dtype=np.int64),
                **{
                    key: {b: np.asarray(data[key][b]) for b in blocks}
                    for key in ("mean", "std", "high", "low")
                },
                metadata=dict(data.get("metadata", {})),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"These are not excitation statistics (missing {err}): save them with ExcitationStats.save()."
            ) from err

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (``.npz``: NumPy arrays + JSON metadata; ``.pt``: ``torch.save``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".pt":
            data = self.to_dict()
            data["count"] = torch.from_numpy(self.count)
            for key in ("mean", "std", "high", "low"):
                data[key] = {b: torch.from_numpy(v) for b, v in data[key].items()}
            data["metadata"] = json.dumps(self.metadata, default=str)
            torch.save(data, path)
        elif path.suffix == ".npz":
            arrays: dict[str, np.ndarray] = {
                "blocks": np.array(self.blocks),
                "classes": np.array(self.classes),
                "count": self.count,
                "metadata": np.array(json.dumps(self.metadata, default=str)),
            }
            for key in ("mean", "std", "high", "low"):
                for block in self.blocks:
                    arrays[f"{key}/{block}"] = getattr(self, key)[block]
            np.savez_compressed(path, **arrays)
        else:
            raise ValueError(
                f"Cannot save excitation statistics as {path.name!r}: use a .npz or .pt file name."
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ExcitationStats:
        """Read statistics written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"No excitation statistics at {path}: compute them with class_excitations()."
            )
        if path.suffix not in (".pt", ".npz"):
            raise ValueError(f"Cannot read {path.name!r}: excitation statistics are .npz or .pt files.")
        try:
            if path.suffix == ".pt":
                data = torch.load(path, map_location="cpu", weights_only=True)
                data["metadata"] = json.loads(data["metadata"])
                return cls.from_dict(data)
            with np.load(path, allow_pickle=False) as f:
                data: dict[str, Any] = {
                    "blocks": f["blocks"].tolist(),
                    "classes": f["classes"].tolist(),
                    "count": f["count"],
                    "metadata": json.loads(str(f["metadata"])),
                }
                for key in ("mean", "std", "high", "low"):
                    data[key] = {b: f[f"{key}/{b}"] for b in data["blocks"]}
            return cls.from_dict(data)
        except (
            OSError,
            EOFError,
            KeyError,
            TypeError,
            ValueError,
            RuntimeError,
            pickle.UnpicklingError,
        ) as err:
            raise ValueError(
                f"{path} is not a readable excitation-statistics file ({err}); delete it and recompute."
            ) from err

    def provenance(self, **extra: Any) -> dict[str, Any]:
        """The provenance dict for :func:`senet_lib.plots.save_figure` (metadata + ``extra``)."""
        keys = (
            "model",
            "network",
            "checkpoint",
            "dataset",
            "synthetic",
            "split",
            "images_per_class",
            "num_images",
            "seed",
            "device",
            "commit",
        )
        record = {k: self.metadata[k] for k in keys if k in self.metadata}
        record["blocks"] = list(self.blocks)
        record["source"] = "senet_lib.excitation (paper §7.2, Fig. 6/7, arXiv 1709.01507 v4)"
        record.update(extra)
        return record


#: Gates above ``SATURATION_HIGH`` count as "open" (≈ 1), below ``SATURATION_LOW`` as "shut" (≈ 0).
SATURATION_LOW = 0.05

SATURATION_HIGH = 0.95


# --------------------------------------------------------------------------- analysis
def class_specificity(stats: ExcitationStats, block: str, debias: bool = True) -> float:
    """How far apart the classes' mean excitations are, in within-class standard deviations::

        D² = mean_{i<j} mean_c [ (μ_ic − μ_jc)² − (σ²_ic / n_i + σ²_jc / n_j) ]   (debias=True)
        specificity = sqrt(max(D², 0)) / sqrt(mean_{k,c} σ²_kc)

    ``debias`` removes what sampling noise adds, so a block with no class effect scores ≈ 0. NaN
    with fewer than two classes of two or more images, ``inf`` when no image varies.
    """
    numerator = class_separation(stats, block, debias)
    if np.isnan(numerator):
        return numerator
    denominator = float(np.sqrt((stats.std[block][stats.count > 1] ** 2).mean()))
    if denominator == 0.0:
        return 0.0 if numerator == 0.0 else float("inf")
    return numerator / denominator


def class_separation(stats: ExcitationStats, block: str, debias: bool = True) -> float:
    """The numerator of :func:`class_specificity`, ``sqrt(max(D², 0))``, in units of ``s``: how much the
    gates move with the class (NaN with fewer than two classes of two or more images)."""
    mean, std = stats._check_block(block), stats.std[block]
    keep = stats.count > 1
    if keep.sum() < 2:
        return float("nan")
    return separation_from_moments(mean[keep], std[keep] ** 2, stats.count[keep], debias)


def separation_from_moments(mean: np.ndarray, var: np.ndarray, n: np.ndarray, debias: bool = True) -> float:
    """``sqrt(max(D², 0))`` from class means and variances (``[K, C]``) and counts (``[K]``), in K × C."""
    mean = np.asarray(mean, dtype=np.float64)
    k, channels = mean.shape
    if k < 2:
        return float("nan")
    pairs = k * (k - 1) / 2
    d2 = (k * float((mean**2).sum()) - float((mean.sum(0) ** 2).sum())) / (pairs * channels)
    if debias:
        noise = (np.asarray(var, dtype=np.float64) / np.asarray(n, dtype=np.float64)[:, None]).mean(-1)
        d2 -= 2.0 * float(noise.mean())
    return float(np.sqrt(max(d2, 0.0)))


def saturation(stats: ExcitationStats, block: str, per_class: bool = False) -> dict[str, Any]:
    """Share of (image, channel) gate values above ``SATURATION_HIGH`` (``"high"``) and below
    ``SATURATION_LOW`` (``"low"``), plus ``[K]`` ``*_per_class`` arrays when ``per_class``."""
    stats._check_block(block)
    channels = stats.num_channels(block)
    total = stats.count.sum() * channels
    if total == 0:
        raise ValueError("These statistics contain no images: record some before asking for saturation.")
    high, low = stats.high[block], stats.low[block]
    result: dict[str, Any] = {"high": float(high.sum() / total), "low": float(low.sum() / total)}
    if per_class:
        denom = np.maximum(stats.count, 1) * channels
        result["high_per_class"] = high.sum(1) / denom
        result["low_per_class"] = low.sum(1) / denom
    return result


def similarity(stats: ExcitationStats, block: str, method: str = "cosine") -> np.ndarray:
    """``[K, K]`` similarity of the classes' mean excitation vectors in ``block`` (``cosine`` or
    ``correlation`` across channels)."""
    mean = stats._check_block(block).astype(np.float64)
    if method == "correlation":
        mean = mean - mean.mean(1, keepdims=True)
    elif method != "cosine":
        raise ValueError(f"Unknown similarity {method!r}: use 'cosine' or 'correlation'.")
    norm = np.linalg.norm(mean, axis=1, keepdims=True)
    unit = mean / np.where(norm > 0, norm, np.nan)
    return unit @ unit.T


def summary_table(stats: ExcitationStats, blocks: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per block: channels, class specificity, saturation, mean and spread of ``s``."""
    import pandas as pd

    rows = []
    for block in blocks or stats.blocks:
        sat = saturation(stats, block)
        rows.append(
            {
                "block": block,
                "channels": stats.num_channels(block),
                "class_specificity": class_specificity(stats, block),
                "class_separation": class_separation(stats, block),
                "share_s>0.95": sat["high"],
                "share_s<0.05": sat["low"],
                "mean_s": float(stats.all_class_mean(block).mean()),
                "std_between_classes": float(np.nanstd(stats.mean[block], axis=0).mean()),
                "std_within_class": float(np.nanmean(stats.std[block])),
            }
        )
    return pd.DataFrame(rows).set_index("block")


def sample_channels(num_channels: int, n: int = 50, seed: int = 0) -> np.ndarray:
    """``n`` channel indices drawn uniformly without replacement, sorted (paper Fig. 6 plots 50)."""
    if n >= num_channels:
        return np.arange(num_channels)
    return np.sort(np.random.default_rng(seed).choice(num_channels, size=n, replace=False))


def channel_order(mean: np.ndarray) -> np.ndarray:
    """An order of the channels (columns of ``[K, C]`` class means) that groups similar ones: the leaf
    order of average-linkage clustering of the channels' standardised class profiles."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    mean = np.nan_to_num(np.asarray(mean, dtype=np.float64))
    profile = mean - mean.mean(0, keepdims=True)
    if mean.shape[1] < 2:
        return np.arange(mean.shape[1])
    z = np.nan_to_num(profile / np.where(profile.std(0) > 0, profile.std(0), 1.0))
    return leaves_list(linkage(z.T, method="average", metric="euclidean"))
    return leaves_list(linkage(z.T, method="average", metric="euclidean"))


# --------------------------------------------------------------------------- channel importance
def top_channels(
    stats: ExcitationStats, block: str, class_index: int | str, k: int, relative: bool = False
) -> np.ndarray:
    """The ``k`` channels of ``block`` that class ``class_index`` excites most (``relative``: most above
    the all-class mean), strongest first."""
    mean = stats._check_block(block)
    if not 1 <= k <= mean.shape[1]:
        raise ValueError(f"k must lie in 1 … {mean.shape[1]} for block {block}, got {k}.")
    score = mean[stats.class_index(class_index)]
    if relative:
        score = score - stats.all_class_mean(block)
    return np.argsort(-score, kind="stable")[:k]
