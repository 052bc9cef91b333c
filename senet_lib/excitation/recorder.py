"""Recording excitations with forward hooks: streaming per-class moments and :class:`ExcitationRecorder`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data import balanced_indices
from ..env import git_commit
from ..models.modes import eval_mode
from .blocks import as_channels, gate_of, select_blocks
from .stats import SATURATION_HIGH, SATURATION_LOW, ExcitationStats

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    from ..data import ImageDataset


class _RunningMoments:
    """Per-class count, mean and M2 of ``[N, C]`` batches in float64 (Chan, Golub and LeVeque's update)."""

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

    Inside the block the model is in eval mode; :meth:`update` folds a batch's ``s`` into running
    per-class moments. On exit the hooks are removed and modes restored::

        with ExcitationRecorder(model, num_classes=10) as rec:
            for images, labels in loader:
                rec.update(images, labels)
        stats = rec.stats(classes=dataset.classes)
    """

    def __init__(
        self, model: nn.Module, blocks: Sequence[str] | None = None, num_classes: int | None = None
    ) -> None:
        self.model = model
        self.blocks = select_blocks(model, blocks)
        if num_classes is None:
            num_classes = getattr(model, "arch_config", {}).get(
                "num_classes", getattr(model, "num_classes", None)
            )
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
            self._handles.append(gate_of(block).register_forward_hook(self._make_hook(name)))
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
            s = as_channels(s, name)
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
def split_tensors(
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


def index_batches(
    images: Tensor, labels: Tensor, indices: Tensor, batch_size: int, normalize: Any | None
) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        x = images[idx]
        yield (normalize(x) if normalize is not None else x.float()), labels[idx]


@dataclass(frozen=True)
class _Sample:
    """The images of one split that :func:`class_excitations` (and the resampling tests of
    :mod:`.significance`) look at: ``images_per_class`` of each class, drawn with ``seed``."""

    images: Tensor
    labels: Tensor
    indices: Tensor
    classes: list[str]
    meta: dict[str, Any]
    normalize: Any | None

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        return index_batches(self.images, self.labels, self.indices, batch_size, self.normalize)


def sample_split(
    data: ImageDataset | tuple[Tensor, Tensor], split: str, images_per_class: int, seed: int
) -> _Sample:
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be at least 1, got {images_per_class}.")
    images, labels, classes, meta, is_uint8 = split_tensors(data, split)
    normalize = data.normalize if is_uint8 else None  # type: ignore[union-attr]
    indices = _sample_per_class(labels, images_per_class, seed)
    return _Sample(images, labels, indices, classes, meta, normalize)


def _sample_per_class(labels: Tensor, images_per_class: int, seed: int) -> Tensor:

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
    network: str | None = None,
) -> ExcitationStats:
    """Per-class excitation statistics from ``images_per_class`` images of each class of ``split``
    (paper: 50), sampled with ``seed``. ``data`` is an :class:`~senet_lib.data.ImageDataset` or
    ``(images, labels)`` already normalised; ``checkpoint`` and ``network`` are provenance."""
    sample = sample_split(data, split, images_per_class, seed)
    if device is not None:
        model = model.to(device)
    run_device = next(model.parameters()).device
    metadata = {
        "model": getattr(model, "arch_config", {}).get("name", type(model).__name__),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        **({} if network is None else {"network": network}),
        **sample.meta,
        "split": split,
        "images_per_class": images_per_class,
        "num_images": len(sample.indices),
        "seed": seed,
        "device": str(run_device),
        "commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with ExcitationRecorder(model, blocks, num_classes=len(sample.classes)) as rec:
        for x, y in sample.batches(batch_size):
            rec.update(x, y)
    return rec.stats(sample.classes, metadata)


def image_excitations(
    model: nn.Module, images: Tensor, blocks: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The excitations ``s`` (``[N, C]`` per block) of a few normalised images, kept in full."""
    chosen = select_blocks(model, blocks)
    out: dict[str, np.ndarray] = {}

    def keep(name: str) -> Callable[[nn.Module, tuple, Tensor], None]:
        def hook(_module: nn.Module, _inputs: tuple, s: Tensor) -> None:
            out[name] = as_channels(s, name).detach().float().cpu().numpy()

        return hook

    handles = [gate_of(block).register_forward_hook(keep(name)) for name, block in chosen.items()]
    try:
        with eval_mode(model), torch.no_grad():
            model(images.to(next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return out


@torch.no_grad()
def hidden_unit_activity(
    model: nn.Module, images: Tensor, blocks: Sequence[str] | None = None, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """The share of ``images`` on which each SE bottleneck unit's pre-activation is above 0 (``[C/r]``
    per block); 0 is a dead unit. Needs senet_lib blocks."""
    chosen = select_blocks(model, blocks)
    layers = {}
    for name, block in chosen.items():
        fc1 = getattr(getattr(block, "excitation", None), "fc1", None)
        if fc1 is None:
            raise ValueError(f"{name} has no excitation.fc1: hidden_unit_activity reads senet_lib SE blocks.")
        layers[name] = fc1
    active = {name: torch.zeros(fc1.out_features, dtype=torch.float64) for name, fc1 in layers.items()}

    def count(name: str) -> Callable[[nn.Module, tuple, Tensor], None]:
        def hook(_module: nn.Module, _inputs: tuple, out: Tensor) -> None:
            active[name] += (out.detach().flatten(1) > 0).sum(0).cpu().double()

        return hook

    handles = [fc1.register_forward_hook(count(name)) for name, fc1 in layers.items()]
    device = next(model.parameters()).device
    try:
        with eval_mode(model):
            for start in range(0, len(images), batch_size):
                model(images[start : start + batch_size].to(device))
    finally:
        for handle in handles:
            handle.remove()
    return {name: (a / max(len(images), 1)).numpy() for name, a in active.items()}
