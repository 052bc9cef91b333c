"""Knock-outs: test accuracy with chosen channels' excitations forced off, against random choices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ..models.modes import eval_mode
from ..se import override_gate
from .analysis import top_channels
from .blocks import select_blocks
from .recorder import _batches, _split_tensors
from .stats import ExcitationStats

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    from ..data import ImageDataset


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

    @property
    def random_interval(self) -> tuple[float, float]:
        """The 2.5th and 97.5th percentiles of the random draws' accuracies."""
        low, high = np.quantile(self.random_off, [0.025, 0.975])
        return float(low), float(high)

    @property
    def p_value(self) -> float:
        """How often k random channels off hurt at least as much as the top k (one-sided, counting
        the top-k choice itself: with ``draws`` random draws the smallest possible value is
        ``1 / (draws + 1)``)."""
        worse = sum(a <= self.top_off for a in self.random_off)
        return (1 + worse) / (1 + len(self.random_off))

    def verdict(self, alpha: float = 0.05) -> str:
        """One sentence: did the top-k channels hurt the class more than random ones?"""
        low, high = self.random_interval
        numbers = (
            f"top {self.k} off {100 * self.top_off:.1f} %, random {self.k} off {100 * self.random_mean:.1f} % "
            f"(95 % of {len(self.random_off)} draws in {100 * low:.1f} … {100 * high:.1f} %), p = {self.p_value:.3f}"
        )
        if len(self.random_off) < round(1 / alpha) - 1:
            return f"Too few random draws to decide at {alpha:.0%} (use at least {round(1 / alpha) - 1}): {numbers}."
        if self.p_value <= alpha:
            return f"The class's most excited channels hurt it MORE than random ones: {numbers}."
        return f"The class's most excited channels did NOT hurt it clearly more than random ones: {numbers}."


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
