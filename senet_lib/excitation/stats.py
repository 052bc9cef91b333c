"""Per-class excitation statistics (:class:`ExcitationStats`) and their two persistence formats."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch


# --------------------------------------------------------------------------- statistics
@dataclass
class ExcitationStats:
    """Per-class excitation statistics of some SE blocks (plain NumPy arrays).

    Attributes:
        blocks: block names in network order (e.g. ``["SE_2_1", ...]``).
        classes: class names, index ``k`` ↔ label ``k``.
        count: ``[K]`` number of images recorded per class.
        mean: per block, ``[K, C]`` mean excitation of each class and channel.
        std: per block, ``[K, C]`` sample standard deviation (ddof = 1; NaN where a class has
            fewer than two images, and ``mean`` is NaN where it has none).
        high: per block, ``[K, C]`` how many images had ``s > SATURATION_HIGH`` in that channel.
        low: per block, ``[K, C]`` how many images had ``s < SATURATION_LOW``.
        metadata: provenance (model, checkpoint, dataset, split, images per class, seed,
            device, commit, thresholds, ...).
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
        """The provenance dict for :func:`senet_lib.figures.save_figure` (metadata + ``extra``)."""
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
