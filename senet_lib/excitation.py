"""Per-class excitation statistics of a trained SE network (paper §7.2, Fig. 6 and Fig. 7).

The paper feeds 50 validation images of each class through SE-ResNet-50 and plots, per SE
block, the mean excitation ``s`` of each class over 50 sampled channels (Fig. 6) and, within one
class, the mean ± standard deviation (Fig. 7). This module computes those numbers:

* :class:`ExcitationRecorder` hooks the gate of every SE block (or the chosen ones) and
  accumulates, per class, the count, mean and spread of ``s`` while batches stream through the
  model. It keeps running float64 moments (Chan et al.'s pairwise update of Welford's
  algorithm), never the activations themselves, so memory does not grow with the data.
* :func:`class_excitations` samples ``images_per_class`` images of each class and returns an
  :class:`ExcitationStats`: plain NumPy arrays that save to and load from ``.npz`` or ``.pt``.
* Analysis numbers: :func:`class_specificity`, :func:`saturation`, :func:`similarity`,
  :func:`summary_table`, and the paper's panel choice :func:`paper_blocks`.
* Channel importance: :func:`top_channels`, :func:`accuracy_with_channels_off` and
  :func:`knockout_comparison` (switch off the most excited channels of a class vs random ones).

Blocks are named as in the paper, ``SE_<stage>_<block>`` with stages numbered as in Table 1
(conv2_x is stage 2) and blocks counted from 1.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from .env import git_commit
from .se import SqueezeExcitation, override_gate, se_blocks

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    import pandas as pd

    from .data import ImageDataset

#: Gates above ``SATURATION_HIGH`` count as "open" (≈ 1), below ``SATURATION_LOW`` as "shut" (≈ 0).
SATURATION_LOW = 0.05
SATURATION_HIGH = 0.95

_PAPER_NAME = re.compile(r"^SE_(\d+)_(\d+)$")


# --------------------------------------------------------------------------- block names
def parse_block_name(name: str) -> tuple[int, int]:
    """``"SE_4_6"`` → ``(4, 6)`` (stage as in paper Table 1, block counted from 1)."""
    match = _PAPER_NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a paper block name: expected SE_<stage>_<block>, e.g. 'SE_4_6'.")
    return int(match.group(1)), int(match.group(2))


def paper_blocks(names: Sequence[str]) -> list[str]:
    """The panels of paper Fig. 6: the last block of each stage plus every block of the last stage.

    For SE-ResNet-50 this is ``SE_2_3, SE_3_4, SE_4_6, SE_5_1, SE_5_2, SE_5_3``; for a CIFAR
    SE-ResNet-20 (stages 2–4, three blocks each) ``SE_2_3, SE_3_3, SE_4_1, SE_4_2, SE_4_3``.
    The result is in network order.
    """
    if not names:
        raise ValueError("paper_blocks needs at least one block name (see senet_lib.se.se_blocks(model)).")
    parsed = sorted((parse_block_name(n), n) for n in names)
    last_stage = parsed[-1][0][0]
    last_of_stage: dict[int, str] = {}
    for (stage, _block), name in parsed:
        last_of_stage[stage] = name
    chosen = {name for (stage, _b), name in parsed if stage == last_stage} | set(last_of_stage.values())
    return [name for _key, name in parsed if name in chosen]


def select_blocks(model: nn.Module, blocks: Sequence[str] | None = None) -> dict[str, SqueezeExcitation]:
    """The SE blocks of ``model`` named in ``blocks`` (all when None), in network order."""
    available = se_blocks(model)
    if not available:
        raise ValueError(
            "This model has no SE blocks: use an SE model such as 'se_resnet20' or 'se_resnet50'."
        )
    if blocks is None:
        return available
    unknown = [b for b in blocks if b not in available]
    if unknown:
        raise ValueError(f"Unknown SE block(s) {', '.join(unknown)}: this model has {', '.join(available)}.")
    wanted = set(blocks)
    return {name: block for name, block in available.items() if name in wanted}


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode; restore every module's own train/eval flag afterwards."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes.items():
            module.training = training


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


class _RunningMoments:
    """Per-class count, mean and M2 (sum of squared deviations) of ``[N, C]`` batches, in float64.

    Each batch's per-class moments are merged into the running ones with the pairwise update
    of Chan, Golub and LeVeque (1979), which is stable even for long streams.
    """

    def __init__(self, num_classes: int, channels: int) -> None:
        self.count = torch.zeros(num_classes, dtype=torch.float64)
        self.mean = torch.zeros(num_classes, channels, dtype=torch.float64)
        self.m2 = torch.zeros(num_classes, channels, dtype=torch.float64)
        self.high = torch.zeros(num_classes, channels, dtype=torch.int64)
        self.low = torch.zeros(num_classes, channels, dtype=torch.int64)

    def update(self, s: Tensor, labels: Tensor) -> None:
        s = s.detach().to("cpu", torch.float64)
        n_b = torch.bincount(labels, minlength=self.count.numel()).to(torch.float64)
        sum_b = torch.zeros_like(self.mean).index_add_(0, labels, s)
        mean_b = sum_b / n_b.clamp(min=1)[:, None]
        m2_b = torch.zeros_like(self.m2).index_add_(0, labels, (s - mean_b[labels]) ** 2)
        total = self.count + n_b
        delta = mean_b - self.mean
        weight = (n_b / total.clamp(min=1))[:, None]
        self.mean += delta * weight
        self.m2 += m2_b + delta**2 * (self.count[:, None] * weight)
        self.count = total
        self.high.index_add_(0, labels, (s > SATURATION_HIGH).long())
        self.low.index_add_(0, labels, (s < SATURATION_LOW).long())

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = self.count[:, None]
        mean = torch.where(n > 0, self.mean, torch.nan)
        std = torch.where(n > 1, (self.m2 / (n - 1).clamp(min=1)).sqrt(), torch.nan)
        return self.count.long().numpy(), mean.numpy(), std.numpy(), self.high.numpy(), self.low.numpy()


class ExcitationRecorder:
    """Context manager that accumulates per-class excitation statistics of SE blocks.

    Inside the ``with`` block the model is in eval mode; each :meth:`update` runs one batch
    under ``torch.no_grad`` and folds the excitations ``s`` of every hooked gate into running
    per-class moments (nothing per image is kept). On exit — also after an exception — the hooks
    are removed and every module's train/eval mode is restored. Works on any device: the small
    ``[N, C]`` excitations are moved to the CPU and accumulated in float64.

    Example::

        with ExcitationRecorder(model, num_classes=10) as rec:
            for images, labels in loader:
                rec.update(images, labels)
        stats = rec.stats(classes=dataset.classes)

    Args:
        model: a network with :class:`~senet_lib.se.SqueezeExcitation` blocks.
        blocks: paper names of the blocks to record (default: all).
        num_classes: K (default: ``model.arch_config["num_classes"]``).
    """

    def __init__(
        self, model: nn.Module, blocks: Sequence[str] | None = None, num_classes: int | None = None
    ) -> None:
        self.model = model
        self.blocks = select_blocks(model, blocks)
        if num_classes is None:
            num_classes = getattr(model, "arch_config", {}).get("num_classes")
        if num_classes is None or int(num_classes) < 1:
            raise ValueError("Pass num_classes= to ExcitationRecorder: it cannot be read from this model.")
        self.num_classes = int(num_classes)
        self._moments: dict[str, _RunningMoments] = {}
        self._labels: Tensor | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._mode: contextlib.AbstractContextManager | None = None

    # ----------------------------------------------------------------- context
    def __enter__(self) -> ExcitationRecorder:
        self._mode = eval_mode(self.model)
        self._mode.__enter__()
        for name, block in self.blocks.items():
            self._handles.append(block.gate.register_forward_hook(self._make_hook(name)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        self._labels = None

    def _make_hook(self, name: str) -> Callable[[nn.Module, tuple, Tensor], None]:
        def hook(_module: nn.Module, _inputs: tuple, s: Tensor) -> None:
            if self._labels is None:
                raise RuntimeError(
                    "The model ran inside ExcitationRecorder without labels: call recorder.update(images, labels)."
                )
            s = s.reshape(s.shape[0], -1)
            if name not in self._moments:
                self._moments[name] = _RunningMoments(self.num_classes, s.shape[1])
            self._moments[name].update(s, self._labels)

        return hook

    # ----------------------------------------------------------------- recording
    @torch.no_grad()
    def update(self, images: Tensor, labels: Tensor) -> Tensor:
        """Run one batch through the model, record its excitations, and return the logits."""
        if not self._handles:
            raise RuntimeError("ExcitationRecorder.update() works only inside its 'with' block.")
        labels = torch.as_tensor(labels).reshape(-1).to("cpu", torch.long)
        if labels.numel() != images.shape[0]:
            raise ValueError(
                f"Got {images.shape[0]} images but {labels.numel()} labels: pass one label per image."
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"Labels must lie in 0 … {self.num_classes - 1}; got {labels.min()} … {labels.max()}."
            )
        device = next(self.model.parameters()).device
        self._labels = labels
        try:
            return self.model(images.to(device))
        finally:
            self._labels = None

    def stats(
        self, classes: Sequence[str] | None = None, metadata: dict[str, Any] | None = None
    ) -> ExcitationStats:
        """The accumulated statistics (callable inside or after the ``with`` block)."""
        if not self._moments:
            raise RuntimeError(
                "No excitations were recorded: call recorder.update(images, labels) at least once."
            )
        classes = list(classes) if classes is not None else [str(k) for k in range(self.num_classes)]
        if len(classes) != self.num_classes:
            raise ValueError(f"Got {len(classes)} class names for a {self.num_classes}-class recorder.")
        names = [n for n in self.blocks if n in self._moments]
        results = {n: self._moments[n].result() for n in names}
        count = results[names[0]][0]
        meta = {"saturation_low": SATURATION_LOW, "saturation_high": SATURATION_HIGH, **(metadata or {})}
        return ExcitationStats(
            blocks=names,
            classes=classes,
            count=count,
            mean={n: r[1] for n, r in results.items()},
            std={n: r[2] for n, r in results.items()},
            high={n: r[3] for n, r in results.items()},
            low={n: r[4] for n, r in results.items()},
            metadata=meta,
        )


# --------------------------------------------------------------------------- data helpers
def _split_tensors(
    data: ImageDataset | tuple[Tensor, Tensor], split: str
) -> tuple[Tensor, Tensor, list[str], dict[str, Any], bool]:
    """(images, labels, class names, dataset metadata, images_are_uint8) from either input form."""
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError("Pass data as an ImageDataset or as an (images, labels) pair.")
        images, labels = torch.as_tensor(data[0]), torch.as_tensor(data[1]).long()
        if images.dtype == torch.uint8:
            raise ValueError(
                "Images in an (images, labels) pair must be normalised floats: pass the ImageDataset."
            )
        num_classes = int(labels.max()) + 1 if labels.numel() else 0
        return images, labels, [str(k) for k in range(num_classes)], {"dataset": "tensors"}, False
    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r}: use 'train' or 'test'.")
    part = getattr(data, split)
    meta = {"dataset": data.label, "synthetic": bool(data.synthetic), "source": data.source}
    return part.images, part.labels.long(), list(data.classes), meta, True


def _batches(
    images: Tensor, labels: Tensor, indices: Tensor, batch_size: int, normalize: Any | None
) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        x = images[idx]
        yield (normalize(x) if normalize is not None else x.float()), labels[idx]


def _sample_per_class(labels: Tensor, images_per_class: int, seed: int) -> Tensor:
    from .data import balanced_indices

    counts = torch.bincount(labels)
    short = [k for k, c in enumerate(counts.tolist()) if c < images_per_class]
    if short:
        raise ValueError(
            f"Class(es) {short} have fewer than {images_per_class} images in this split "
            f"(smallest: {int(counts.min())}): lower images_per_class."
        )
    return torch.as_tensor(np.asarray(balanced_indices(labels, images_per_class, seed)), dtype=torch.long)


def class_excitations(
    model: nn.Module,
    data: ImageDataset | tuple[Tensor, Tensor],
    images_per_class: int = 50,
    split: str = "test",
    batch_size: int = 256,
    device: torch.device | str | None = None,
    seed: int = 0,
    blocks: Sequence[str] | None = None,
    checkpoint: str | Path | None = None,
) -> ExcitationStats:
    """Per-class excitation statistics from ``images_per_class`` images of each class (paper: 50).

    Args:
        model: a trained SE network (left on its device unless ``device`` is given).
        data: an :class:`~senet_lib.data.ImageDataset` (its ``split`` is used and normalised),
            or an ``(images, labels)`` pair of already-normalised float images.
        images_per_class: images sampled per class with ``balanced_indices(…, seed)``.
        split: ``"test"`` (the paper uses validation images) or ``"train"``.
        batch_size: images per forward pass.
        device: where to run (default: the model's device).
        seed: the sampling seed.
        blocks: paper names of the blocks to record (default: all).
        checkpoint: the checkpoint the weights came from, recorded for provenance.
    """
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be at least 1, got {images_per_class}.")
    images, labels, classes, data_meta, is_uint8 = _split_tensors(data, split)
    normalize = data.normalize if is_uint8 else None  # type: ignore[union-attr]
    indices = _sample_per_class(labels, images_per_class, seed)
    if device is not None:
        model = model.to(device)
    run_device = next(model.parameters()).device
    metadata = {
        "model": getattr(model, "arch_config", {}).get("name", type(model).__name__),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        **data_meta,
        "split": split,
        "images_per_class": images_per_class,
        "num_images": len(indices),
        "seed": seed,
        "device": str(run_device),
        "commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with ExcitationRecorder(model, blocks, num_classes=len(classes)) as rec:
        for x, y in _batches(images, labels, indices, batch_size, normalize):
            rec.update(x, y)
    return rec.stats(classes, metadata)


def image_excitations(
    model: nn.Module, images: Tensor, blocks: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The excitations ``s`` (``[N, C]`` per block) of a few normalised images, kept in full.

    Meant for a handful of images (e.g. one image against its class mean); use
    :class:`ExcitationRecorder` for datasets. The model runs in eval mode under no_grad; its
    modes are restored afterwards.
    """
    chosen = select_blocks(model, blocks)
    out: dict[str, np.ndarray] = {}

    def keep(name: str) -> Callable[[nn.Module, tuple, Tensor], None]:
        def hook(_module: nn.Module, _inputs: tuple, s: Tensor) -> None:
            out[name] = s.detach().float().cpu().reshape(s.shape[0], -1).numpy()

        return hook

    handles = [block.gate.register_forward_hook(keep(name)) for name, block in chosen.items()]
    try:
        with eval_mode(model), torch.no_grad():
            model(images.to(next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return out


# --------------------------------------------------------------------------- analysis
def class_specificity(stats: ExcitationStats, block: str, debias: bool = True) -> float:
    """How far apart the classes' mean excitations are, in within-class standard deviations.

    Definition (μ_kc, σ_kc: mean and standard deviation of channel c's excitation over the n_k
    images of class k; averages over all class pairs i < j and all channels c)::

        D² = mean_{i<j} mean_c [ (μ_ic − μ_jc)² − (σ²_ic / n_i + σ²_jc / n_j) ]   (debias=True)
        specificity = sqrt(max(D², 0)) / sqrt(mean_{k,c} σ²_kc)

    The numerator is the root-mean-square distance between two classes' mean excitations, the
    denominator the root-mean-square spread within a class. 0 means every class excites the
    block alike (the paper's early layers); larger values mean class-specific excitations (its
    deeper layers); a value of 1 means two class means typically differ by one within-class
    standard deviation per channel. ``debias`` subtracts what sampling noise alone adds to a
    squared distance (σ²/n per class), so a block with no class effect scores ≈ 0 whatever
    ``images_per_class`` is; without it, pure noise scores about ``sqrt(2 / n)``.

    Returns NaN when fewer than two classes have two or more images, and ``inf`` when class
    means differ but no image varies from its class mean.
    """
    mean, std = stats._check_block(block), stats.std[block]
    keep = stats.count > 1
    if keep.sum() < 2:
        return float("nan")
    mean, var, n = mean[keep], std[keep] ** 2, stats.count[keep].astype(np.float64)
    diff2 = ((mean[:, None, :] - mean[None, :, :]) ** 2).mean(-1)
    if debias:
        noise = (var / n[:, None]).mean(-1)
        diff2 = diff2 - (noise[:, None] + noise[None, :])
    i, j = np.triu_indices(len(mean), k=1)
    numerator = float(np.sqrt(max(diff2[i, j].mean(), 0.0)))
    denominator = float(np.sqrt(var.mean()))
    if denominator == 0.0:
        return 0.0 if numerator == 0.0 else float("inf")
    return numerator / denominator


def saturation(stats: ExcitationStats, block: str, per_class: bool = False) -> dict[str, Any]:
    """Share of gate values that are saturated, over all recorded images and channels.

    Counted per image during streaming: ``high`` is the share of (image, channel) pairs with
    ``s > SATURATION_HIGH`` (0.95, gate open: the block passes that channel unchanged),
    ``low`` with ``s < SATURATION_LOW`` (0.05, gate shut). The paper reports SE_5_2 of
    SE-ResNet-50 as saturated: most of its gates ≈ 1, so the block is nearly an identity.

    Returns ``{"high": float, "low": float}``, plus ``"high_per_class"`` and ``"low_per_class"``
    (``[K]`` arrays) when ``per_class``.
    """
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
    """``[K, K]`` similarity of the classes' mean excitation vectors in ``block``.

    ``cosine``: cosine of the angle between the class-mean vectors (1 = same direction, which
    also holds for vectors equal up to a scale, as the paper sees in SE_5_3). ``correlation``:
    Pearson correlation across channels (also ignores a common offset).
    """
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
    """An order of the channels (columns of ``[K, C]`` class means) that groups similar ones.

    With SciPy installed: the leaf order of average-linkage hierarchical clustering on the
    correlation distance between channels' class profiles. Without it: channels grouped by the
    class that excites them most relative to the other classes, strongest first within a group.
    """
    mean = np.nan_to_num(np.asarray(mean, dtype=np.float64))
    profile = mean - mean.mean(0, keepdims=True)
    try:
        from scipy.cluster.hierarchy import leaves_list, linkage
    except ImportError:
        preferred = profile.argmax(0)
        strength = profile.max(0)
        return np.lexsort((-strength, preferred))
    if mean.shape[1] < 2:
        return np.arange(mean.shape[1])
    z = np.nan_to_num(profile / np.where(profile.std(0) > 0, profile.std(0), 1.0))
    return leaves_list(linkage(z.T, method="average", metric="euclidean"))


# --------------------------------------------------------------------------- channel importance
def top_channels(
    stats: ExcitationStats, block: str, class_index: int | str, k: int, relative: bool = False
) -> np.ndarray:
    """The ``k`` channels of ``block`` that class ``class_index`` excites most, strongest first.

    With ``relative`` the ranking uses the class mean minus the all-class mean (the channels
    most specific to this class) instead of the class mean itself.
    """
    mean = stats._check_block(block)
    if not 1 <= k <= mean.shape[1]:
        raise ValueError(f"k must lie in 1 … {mean.shape[1]} for block {block}, got {k}.")
    score = mean[stats.class_index(class_index)]
    if relative:
        score = score - stats.all_class_mean(block)
    return np.argsort(-score, kind="stable")[:k]


def _eval_indices(labels: Tensor, class_index: int | None, max_images: int | None, seed: int) -> Tensor:
    indices = (
        torch.arange(len(labels)) if class_index is None else torch.nonzero(labels == class_index).flatten()
    )
    if len(indices) == 0:
        raise ValueError(f"No images of class {class_index} in this split: choose another class.")
    if max_images is not None and len(indices) > max_images:
        generator = torch.Generator().manual_seed(seed)
        indices = indices[torch.randperm(len(indices), generator=generator)[:max_images]].sort().values
    return indices


@torch.no_grad()
def accuracy_with_channels_off(
    model: nn.Module,
    data: ImageDataset | tuple[Tensor, Tensor],
    block_name: str,
    channels: Sequence[int] | Tensor | np.ndarray | None,
    class_index: int | None = None,
    split: str = "test",
    batch_size: int = 256,
    max_images: int | None = None,
    seed: int = 0,
) -> float:
    """Top-1 accuracy while the excitations of ``channels`` in ``block_name`` are forced to 0.

    Uses :func:`senet_lib.se.override_gate` (``value=0``), so the switched-off channels are
    multiplied by 0 in that block's residual branch. ``channels=None`` or empty switches nothing
    off (the plain accuracy). Measured on the images of ``class_index`` (all images when None)
    of ``split``, at most ``max_images`` of them (a seeded random subset).
    """
    images, labels, _classes, _meta, is_uint8 = _split_tensors(data, split)
    normalize = data.normalize if is_uint8 else None  # type: ignore[union-attr]
    block = select_blocks(model, [block_name])[block_name]
    indices = _eval_indices(labels, class_index, max_images, seed)
    index = None if channels is None else torch.as_tensor(np.asarray(channels), dtype=torch.long).reshape(-1)
    if index is not None and index.numel() and (index.min() < 0 or index.max() >= block.channels):
        raise ValueError(f"Channel indices must lie in 0 … {block.channels - 1} for {block_name}.")
    device = next(model.parameters()).device
    correct = 0
    with eval_mode(model):
        for x, y in _batches(images, labels, indices, batch_size, normalize):
            if index is None or index.numel() == 0:
                logits = model(x.to(device))
            else:
                with override_gate(block, 0.0, index):
                    logits = model(x.to(device))
            correct += int((logits.argmax(1).cpu() == y).sum())
    return correct / len(indices)


@dataclass(frozen=True)
class KnockoutResult:
    """Accuracy of one class with its top-k channels off vs k random channels off."""

    block: str
    class_index: int
    k: int
    top_channels: list[int]
    baseline: float  # nothing switched off
    top_off: float  # the class's k most excited channels off
    random_off: list[float]  # one accuracy per random draw of k channels

    @property
    def random_mean(self) -> float:
        return float(np.mean(self.random_off))

    @property
    def random_std(self) -> float:
        return float(np.std(self.random_off, ddof=1)) if len(self.random_off) > 1 else 0.0


def knockout_comparison(
    model: nn.Module,
    data: ImageDataset | tuple[Tensor, Tensor],
    stats: ExcitationStats,
    block: str,
    class_index: int | str,
    k: int,
    draws: int = 5,
    seed: int = 0,
    relative: bool = False,
    **eval_options: Any,
) -> KnockoutResult:
    """Switch off the ``k`` channels of ``block`` that ``class_index`` excites most (from
    ``stats``) and, separately, ``draws`` sets of ``k`` random channels; measure that class's
    accuracy each time (``eval_options`` go to :func:`accuracy_with_channels_off`)."""
    cls = stats.class_index(class_index)
    top = top_channels(stats, block, cls, k, relative=relative)
    rng = np.random.default_rng(seed)
    channels = stats.num_channels(block)

    def acc(chs: Sequence[int] | None) -> float:
        return accuracy_with_channels_off(model, data, block, chs, class_index=cls, **eval_options)

    return KnockoutResult(
        block=block,
        class_index=cls,
        k=k,
        top_channels=[int(c) for c in top],
        baseline=acc(None),
        top_off=acc(top),
        random_off=[acc(rng.choice(channels, size=k, replace=False)) for _ in range(draws)],
    )
