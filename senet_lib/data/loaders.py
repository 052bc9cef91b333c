"""The two input pipelines, :class:`DeviceLoader` and :class:`TorchLoader`, built by :func:`make_loaders`,
and the device pipeline's tensor augmentations (random crop, Cutout)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any
import torch
from .dataset import PIPELINES, ImageDataset, ImageSplit, scale_images, stats_tensors
from dataclasses import dataclass
import torch.nn.functional as F


# --------------------------------------------------------------------------- loaders
class _LoaderBase:
    """What both pipelines share: arguments, batch counting, epochs and output placement.

    Augmentation (crop ``padding``, ``flip``, ``cutout``) is drawn from ``seed`` and the epoch. With
    ``world_size`` > 1 (:class:`DeviceLoader` only) each training batch is rank ``rank``'s
    ``batch_size // world_size`` slice of the global batch; a test loader holds the rank's part.
    """

    def __init__(
        self,
        split: ImageSplit,
        batch_size: int,
        device: torch.device | str,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        train: bool = False,
        cutout: int = 0,
        cutout_count: int = 1,
        channels_last: bool = False,
        seed: int = 0,
        padding: int = 4,
        flip: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size) (got rank {rank}, world_size {world_size}).")
        if batch_size % world_size:
            raise ValueError(
                f"The batch size {batch_size} does not split evenly over {world_size} processes: use a "
                f"multiple of {world_size} (the global batch; each process takes batch_size / {world_size})."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if train and batch_size > len(split):
            raise ValueError(
                f"batch_size {batch_size} is larger than the {len(split)} training samples, so an epoch "
                "would have no full batch: use a smaller batch_size or more data."
            )
        if cutout < 0 or cutout_count < 1 or padding < 0:
            raise ValueError(
                f"cutout must be >= 0, cutout_count >= 1 and padding >= 0 (got {cutout}, {cutout_count}, {padding})."
            )
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.mean, self.std = tuple(mean), tuple(std)
        self.train = train
        self.cutout, self.cutout_count = cutout, cutout_count
        self.padding, self.flip = padding, flip
        self.channels_last = channels_last
        self.seed = seed
        self.epoch = 0
        self.num_samples = len(split)
        self.rank, self.world_size = rank, world_size
        self.local_batch = batch_size // world_size
        if not train and world_size > 1:  # evaluation: this rank's contiguous part of the split
            split = split.take(
                torch.arange(rank * len(split) // world_size, (rank + 1) * len(split) // world_size)
            )
        self.local_samples = len(split)
        self._load(split)

    def _load(self, split: ImageSplit) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        if self.train:
            return self.num_samples // self.batch_size
        return math.ceil(self.local_samples / self.local_batch)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its shuffle and augmentations)."""
        self.epoch = epoch

    def _next_epoch(self) -> int:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return epoch

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class DeviceLoader(_LoaderBase):
    """Batches from a uint8 split copied to the device once, augmented there (crop, flip, Cutout) with
    draws made on the CPU from ``(seed, epoch)``; test loaders only normalise, in order."""

    def _load(self, split: ImageSplit) -> None:
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self._mean, self._std = stats_tensors(self.mean, self.std, self.device)  # built once, not per batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._next_epoch()
        draws = None
        if self.train:
            size = (self.images.shape[2], self.images.shape[3])
            draws = _EpochDraws.draw(
                self.num_samples, size, self.padding, self.cutout_count, self.seed, epoch
            ).to(self.device)
        for b in range(len(self)):
            start = b * self.batch_size + self.rank * self.local_batch if self.train else b * self.local_batch
            span = slice(start, start + self.local_batch)
            if draws is None:
                x, y = self.images[span], self.labels[span]
            else:
                idx = draws.order[span]
                x, y = self.images[idx], self.labels[idx]
                x = random_crop(x, draws.offsets[span], self.padding)
                if self.flip:
                    x = torch.where(draws.flips[span, None, None, None], x.flip(3), x)
                x = cutout(x, draws.centres[span], self.cutout)
            yield self._finish(scale_images(x, self._mean, self._std)), y


class _TransformedSplit(torch.utils.data.Dataset):
    """Map-style dataset: PIL image → ``transforms.v2`` → cutout → normalised tensor, seeded per
    ``(seed, epoch, index)`` so results do not depend on the number of workers."""

    def __init__(self, loader: TorchLoader, split: ImageSplit) -> None:
        from torchvision.transforms import v2

        self.hwc = split.images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = split.labels
        self.train, self.seed, self.epoch = loader.train, loader.seed, 0
        self.cutout, self.cutout_count = loader.cutout, loader.cutout_count
        size = self.hwc.shape[1:3]
        augment = [v2.RandomCrop(size, padding=loader.padding)] if loader.padding else []
        augment += [v2.RandomHorizontalFlip()] if loader.flip else []
        self.augment = v2.Compose([*augment, v2.PILToTensor()])
        self.to_float = v2.Compose(
            [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(loader.mean), list(loader.std))]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        if not self.train:
            x = torch.from_numpy(self.hwc[index]).permute(2, 0, 1)
            return self.to_float(x), self.labels[index]
        with torch.random.fork_rng(devices=[]):
            gen = torch.default_generator.manual_seed(_mix(self.seed, self.epoch, index))
            x = self.augment(Image.fromarray(self.hwc[index]))
            h, w = x.shape[1:]
            centres = torch.stack(
                [
                    torch.randint(0, h, (self.cutout_count,), generator=gen),
                    torch.randint(0, w, (self.cutout_count,), generator=gen),
                ],
                dim=-1,
            )
        x = cutout(x[None], centres[None], self.cutout)[0]
        return self.to_float(x), self.labels[index]


class TorchLoader(_LoaderBase):
    """The textbook pipeline: ``torchvision.transforms.v2`` on PIL images in a ``DataLoader``, same
    augmentations and output as :class:`DeviceLoader`."""

    def __init__(self, split: ImageSplit, *args: Any, num_workers: int = 0, **kwargs: Any) -> None:
        """The arguments of :class:`_LoaderBase`, and ``num_workers`` ``DataLoader`` processes."""
        if kwargs.get("world_size", 1) > 1:
            raise ValueError(
                "The torch pipeline does not shard batches across processes: use pipeline='device' "
                "(--pipeline device) for multi-process training."
            )
        self.num_workers = num_workers
        super().__init__(split, *args, **kwargs)

    def _load(self, split: ImageSplit) -> None:
        self.dataset = _TransformedSplit(self, split)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._next_epoch()
        self.dataset.epoch = epoch
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=self.train,
            drop_last=self.train,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(_mix(self.seed, epoch)),
        )
        non_blocking = self.device.type == "cuda"
        for x, y in loader:
            yield (
                self._finish(x.to(self.device, non_blocking=non_blocking)),
                y.to(self.device, non_blocking=non_blocking),
            )


def _default_workers(device: torch.device) -> int:
    """0 on the CPU (workers would compete with training for the same cores), else up to 4."""
    if device.type == "cpu":
        return 0
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def make_loaders(
    data: ImageDataset,
    batch_size: int,
    device: torch.device,
    pipeline: str = "auto",
    cutout: int = 0,
    cutout_count: int = 1,
    channels_last: bool = False,
    num_workers: int | None = None,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[DeviceLoader | TorchLoader, DeviceLoader | TorchLoader]:
    """(train loader, test loader) for ``data`` on ``device``, yielding normalised float32 ``x`` and int64 ``y``.

    The train loader reshuffles per epoch, augments (4-pixel pad + crop, flip, optional Cutout) and
    drops the last partial batch. ``pipeline``: ``"device"``, ``"torch"`` or ``"auto"`` (device
    everywhere); ``num_workers`` is for the torch pipeline.
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"Unknown pipeline {pipeline!r}: use one of {', '.join(PIPELINES)}.")
    device = torch.device(device)
    if pipeline == "auto":
        pipeline = "device"
    common = {
        "batch_size": batch_size,
        "device": device,
        "mean": data.mean,
        "std": data.std,
        "channels_last": channels_last,
        "seed": seed,
        "rank": rank,
        "world_size": world_size,
    }
    augment = {"cutout": cutout, "cutout_count": cutout_count}
    if pipeline == "device":
        return (
            DeviceLoader(data.train, train=True, **augment, **common),
            DeviceLoader(data.test, train=False, **common),
        )
    workers = _default_workers(device) if num_workers is None else num_workers
    return (
        TorchLoader(data.train, train=True, num_workers=workers, **augment, **common),
        TorchLoader(data.test, train=False, num_workers=workers, **common),
    )


# --------------------------------------------------------------------------- augmentation
def random_crop(images: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop every image of ``[B, C, H, W]`` at its own ``offsets`` (``[B, 2]`` in ``0..2*padding``) from a
    zero-padded copy, in one gather."""
    if padding == 0:
        return images
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)  # [B, H]
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)  # [B, W]
    bi = torch.arange(b, device=images.device)[:, None, None, None]
    ci = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def cutout(images: torch.Tensor, centres: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a ``size``×``size`` square (clipped) around each of ``centres`` (``[B, K, 2]``, row and column)."""
    if size <= 0:
        return images
    h, w = images.shape[-2:]
    top_left = centres - size // 2  # [B, K, 2]
    r = torch.arange(h, device=images.device)
    c = torch.arange(w, device=images.device)
    in_rows = (r >= top_left[..., :1]) & (r < top_left[..., :1] + size)  # [B, K, H]
    in_cols = (c >= top_left[..., 1:]) & (c < top_left[..., 1:] + size)  # [B, K, W]
    mask = (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1)  # [B, H, W]
    return images.masked_fill(mask[:, None], 0)


def _mix(*values: int) -> int:
    """A deterministic 63-bit seed from integers (seed, epoch, index, ...)."""
    out = 0x9E3779B97F4A7C15
    for v in values:
        out = (out * 6364136223846793005 + int(v) + 1442695040888963407) % (1 << 63)
    return out


@dataclass(frozen=True)
class _EpochDraws:
    """All random choices of one training epoch, drawn on the CPU (identical on every device)."""

    order: torch.Tensor  # [N] sample order
    offsets: torch.Tensor  # [N, 2] crop offsets
    flips: torch.Tensor  # [N] bool
    centres: torch.Tensor  # [N, K, 2] cutout centres

    @classmethod
    def draw(
        cls, n: int, size: tuple[int, int], padding: int, holes: int, seed: int, epoch: int
    ) -> _EpochDraws:
        gen = torch.Generator().manual_seed(_mix(seed, epoch))
        h, w = size
        return cls(
            order=torch.randperm(n, generator=gen),
            offsets=torch.randint(0, 2 * padding + 1, (n, 2), generator=gen),
            flips=torch.rand(n, generator=gen) < 0.5,
            centres=torch.stack(
                [
                    torch.randint(0, h, (n, holes), generator=gen),
                    torch.randint(0, w, (n, holes), generator=gen),
                ],
                dim=-1,
            ),
        )

    def to(self, device: torch.device) -> _EpochDraws:
        return _EpochDraws(*(t.to(device) for t in (self.order, self.offsets, self.flips, self.centres)))
