"""Image datasets as tensors: :class:`ImageSplit`, :class:`ImageDataset`, normalisation, balanced subsets."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

DATASETS = ("cifar10", "cifar100", "synthetic")

PIPELINES = ("auto", "device", "torch")

SYNTHETIC_LABEL = "synthetic shapes (not CIFAR)"


class DataWarning(UserWarning):
    """Data that is usable but not what was asked for (altered CIFAR copy, synthetic fallback)."""


# --------------------------------------------------------------------------- containers
@dataclass(repr=False)
class ImageSplit:
    """One split: ``images`` uint8 ``[N, 3, H, W]`` (NCHW, CPU) and ``labels`` int64 ``[N]``;
    ``coarse_labels`` int64 ``[N]`` where the dataset has superclasses (CIFAR-100's 20), else None."""

    images: torch.Tensor
    labels: torch.Tensor
    coarse_labels: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 [N, 3, H, W], got {self.images.dtype} {list(self.images.shape)}: "
                "convert them with (x * 255).round().to(torch.uint8) and permute to NCHW."
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must have shape [{self.images.shape[0]}] to match the images, "
                f"got {list(self.labels.shape)}: pass one label per image."
            )
        self.labels = self.labels.to(torch.int64)
        if self.coarse_labels is not None:
            if self.coarse_labels.shape != self.labels.shape:
                raise ValueError(
                    f"coarse_labels must have shape [{len(self.labels)}] like the labels, got "
                    f"{list(self.coarse_labels.shape)}: pass one superclass per image, or None."
                )
            self.coarse_labels = self.coarse_labels.to(torch.int64)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return f"ImageSplit(images=uint8{list(self.images.shape)}, labels=int64[{len(self)}])"

    def take(self, indices: torch.Tensor) -> ImageSplit:
        """The samples at ``indices``, in that order."""
        coarse = None if self.coarse_labels is None else self.coarse_labels[indices]
        return ImageSplit(self.images[indices], self.labels[indices], coarse)


@dataclass(repr=False)
class ImageDataset:
    """A dataset with both splits, its class names, normalisation statistics and provenance."""

    name: str  # "cifar10" | "cifar100" | "synthetic"
    classes: list[str]
    train: ImageSplit
    test: ImageSplit
    mean: tuple[float, float, float]  # per channel, [0, 1] units, from the training split
    std: tuple[float, float, float]
    source: str  # folder read from, or "procedurally generated (seed N)"
    synthetic: bool
    label: str  # for figures and records, e.g. "CIFAR-10" or "synthetic shapes (not CIFAR)"
    notes: list[str] = field(default_factory=list)  # e.g. checksum mismatches, subset sizes
    coarse_classes: list[str] | None = None  # superclass names (CIFAR-100's 20), indexing coarse_labels

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.label!r}: {self.num_classes} classes, train {len(self.train)}, "
            f"test {len(self.test)}, source={self.source!r})"
        )

    def subset(self, train: int | None, test: int | None, seed: int = 0) -> ImageDataset:
        """A class-balanced, deterministic subset of ``train`` / ``test`` samples (None keeps the split);
        a smaller one with the same seed lies in a larger one. Normalisation stays the full split's."""
        splits = []
        for split_name, split, n in (("train", self.train, train), ("test", self.test, test)):
            if n is None:
                splits.append(split)
                continue
            splits.append(split.take(_balanced_subset(split.labels, n, self.num_classes, seed, split_name)))
        return ImageDataset(
            name=self.name,
            classes=list(self.classes),
            train=splits[0],
            test=splits[1],
            mean=self.mean,
            std=self.std,
            source=self.source,
            synthetic=self.synthetic,
            label=self.label,
            notes=[*self.notes, f"class-balanced subset (train {train}, test {test}, seed {seed})"],
            coarse_classes=None if self.coarse_classes is None else list(self.coarse_classes),
        )

    def superclass_of(self) -> dict[str, str] | None:
        """Each class's superclass name (CIFAR-100: fine → coarse, read from the training labels),
        or None when the dataset has no superclasses."""
        split = self.train
        if self.coarse_classes is None or split.coarse_labels is None:
            return None
        pairs = torch.unique(torch.stack([split.labels, split.coarse_labels], dim=1), dim=0).tolist()
        return {self.classes[fine]: self.coarse_classes[coarse] for fine, coarse in pairs}

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, 3, H, W]`` on any device → float32 ``(x / 255 - mean) / std`` on the same device."""
        return normalize_images(images, self.mean, self.std)


def normalize_images(
    images: torch.Tensor, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` → float32 ``(x / 255 - mean) / std`` per channel, on the images' device."""
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {images.dtype}: pass the raw uint8 pixels.")
    m, s = stats_tensors(mean, std, images.device)
    return scale_images(images, m, s)


def stats_tensors(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` as float32 ``[1, C, 1, 1]`` tensors on ``device``."""
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return m, s


def scale_images(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0).sub_(mean).div_(std)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population standard deviation of uint8 images in [0, 1] units (from histograms)."""
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        p = counts / counts.sum()
        mean = (p * values).sum()
        var = (p * (values - mean).square()).sum()
        means.append(round(float(mean) / 255, 6))
        stds.append(round(float(var.sqrt()) / 255, 6))
    return tuple(means), tuple(stds)


# --------------------------------------------------------------------------- class balance
def balanced_indices(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Sorted indices of ``per_class`` random samples (``seed``) of every class in ``labels``; a smaller
    ``per_class`` picks a subset of a larger one.

    Raises:
        ValueError: a class has fewer than ``per_class`` samples.
    """
    return _balanced_subset(labels, None, None, seed, "labels", per_class=per_class)


def _balanced_subset(
    labels: torch.Tensor,
    n: int | None,
    num_classes: int | None,
    seed: int,
    what: str,
    per_class: int | None = None,
) -> torch.Tensor:
    """Sorted indices of a class-balanced subset: ``per_class`` each, or ``n`` in total."""
    labels = labels.cpu()
    classes = torch.arange(num_classes) if num_classes is not None else torch.unique(labels)
    gen = torch.Generator().manual_seed(seed)
    if per_class is None:
        assert n is not None
        if not 0 < n <= len(labels):
            raise ValueError(
                f"Cannot take {n} {what} samples from a split of {len(labels)}: choose 1..{len(labels)}."
            )
        counts = torch.full((len(classes),), n // len(classes), dtype=torch.int64)
        counts[torch.randperm(len(classes), generator=gen)[: n % len(classes)]] += 1
    else:
        if per_class < 1:
            raise ValueError(f"per_class must be at least 1, got {per_class}.")
        counts = torch.full((len(classes),), per_class, dtype=torch.int64)
    picked = []
    for cls, count in zip(classes.tolist(), counts.tolist(), strict=True):
        members = torch.nonzero(labels == cls).flatten()
        if count > len(members):
            raise ValueError(
                f"Class {cls} has only {len(members)} {what} samples but {count} were asked for: "
                "ask for a smaller subset."
            )
        order = torch.randperm(len(members), generator=torch.Generator().manual_seed(seed * 1_000_003 + cls))
        picked.append(members[order[:count]])
    return torch.sort(torch.cat(picked)).values
