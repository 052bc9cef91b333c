"""Batch augmentation as tensor operations (random crop, Cutout) and the per-epoch random draws behind them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


# --------------------------------------------------------------------------- augmentation
def random_crop(images: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop every image of ``[B, C, H, W]`` at its own offset from a zero-padded copy.

    ``offsets`` is ``[B, 2]`` (row, column) in ``0..2*padding``; offset ``(padding, padding)``
    returns the image unchanged. One gather, no loop over samples.
    """
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
    """Zero a ``size``×``size`` square (clipped at the border) around each of ``centres``.

    ``centres`` is ``[B, K, 2]`` (row, column): K holes per image (Cutout, DeVries & Taylor 2017).
    """
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
