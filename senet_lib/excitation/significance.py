"""Is a block's excitation really class-specific, and does that grow with depth? Decided by the data.

Class means of ``s`` estimated from a few dozen images per class always differ a little, also in a
network that has learned nothing, and a ratio of spreads (:func:`~.analysis.class_specificity`)
can rise just because the spread within a class collapses. This module answers with the absolute
**class separation** (:func:`~.analysis.class_separation`: the root-mean-square distance between two
classes' mean excitations, in units of ``s``, with the sampling noise removed) and two resampling
procedures on the per-image excitations of the same images that :func:`~.recorder.class_excitations`
samples:

* a **label-permutation test** per block: the separation with the class labels shuffled among the
  images (what a block with no class effect at all gives); the block is class-specific when the true
  labels beat the shuffled ones (``p ≤ 0.05``);
* a **bootstrap** over images within each class: an interval for each block's separation and for the
  difference between the last and the first stage (the depth trend), resampled jointly so blocks
  share their images as they do in the network.

Compare the report of a trained network with :func:`untrained_like` (the same architecture at
initialisation): random features separate classes a little too, and only the excess was learned.


Knock-outs ask the same of single channels: test accuracy with a class's most excited channels
forced off, against random choices of as many channels (:func:`knockout_comparison`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ..models import create_model
from ..models.modes import eval_mode
from ..se import override_gate, parse_block_name
from .blocks import select_blocks
from .recorder import image_excitations, index_batches, sample_split, split_tensors
from .stats import ExcitationStats, separation_from_moments, top_channels

if TYPE_CHECKING:
    import pandas as pd

    from ..data import ImageDataset


#: A block is called class-specific when its permutation p-value is at most this.
ALPHA = 0.05
#: A class separation below this (2 % of the gate's range) is called small in verdicts: real, perhaps, but
#: the gates then hardly depend on the class (the 40-epoch SE-ResNet-20 reaches 0.23 in SE_4_2).
SMALL = 0.02


def separation_of_samples(s: np.ndarray, labels: np.ndarray, num_classes: int, debias: bool = True) -> float:
    """Class separation of per-image excitations ``s`` (``[N, C]``) under ``labels`` (``[N]``).

    The same number as :func:`~.analysis.class_separation` on the statistics of these images.
    """
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=num_classes)
    rows = np.asarray(s, dtype=np.float64)[order]
    return float(_separations(rows, counts, np.arange(len(labels))[None], debias)[0])


def _separations(rows: np.ndarray, counts: np.ndarray, draws: np.ndarray, debias: bool) -> np.ndarray:
    """Separation for each draw: ``rows[draws[r]]`` read as classes of ``counts`` images each, in order.

    ``rows`` (``[N, C]``) are sorted by class; a draw (``[N]`` row indices) permutes them (a label
    shuffle) or resamples within each class (a bootstrap). Class sums come from ``np.add.reduceat``,
    so a draw costs N × C, whatever the number of classes.
    """
    present = counts > 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[present]
    n = counts[present].astype(np.float64)
    out = np.empty(len(draws))
    for r, index in enumerate(draws):
        x = rows[index]
        mean = np.add.reduceat(x, starts, axis=0) / n[:, None]
        squares = np.add.reduceat(x * x, starts, axis=0)
        var = np.maximum(squares - n[:, None] * mean**2, 0.0) / np.maximum(n - 1, 1)[:, None]
        out[r] = separation_from_moments(mean, var, n, debias)
    return out


@dataclass(frozen=True)
class BlockSeparation:
    """One block: the observed class separation, its permutation null and its bootstrap."""

    block: str
    observed: float  # debiased separation with the true labels (units of s)
    null: np.ndarray  # [permutations] the same with labels shuffled among the images
    bootstrap: np.ndarray  # [resamples] the same on images resampled within each class

    @property
    def p_value(self) -> float:
        """Share of shuffles at least as separated as the truth (counting the truth itself)."""
        return float((1 + np.sum(self.null >= self.observed)) / (1 + len(self.null)))

    @property
    def threshold(self) -> float:
        """The 95th percentile of the shuffled-label separations: what noise alone reaches."""
        return float(np.quantile(self.null, 1 - ALPHA))

    @property
    def interval(self) -> tuple[float, float]:
        """95 % bootstrap interval (2.5th and 97.5th percentiles) of the separation."""
        low, high = np.quantile(self.bootstrap, [0.025, 0.975])
        return float(low), float(high)

    @property
    def class_specific(self) -> bool:
        return self.p_value <= ALPHA


@dataclass(frozen=True)
class SeparationReport:
    """Separation tests of every recorded block of one network (:func:`separation_report`)."""

    network: str  # a description for titles, e.g. "se_resnet20, 40 epochs, 87.9 % test"
    blocks: dict[str, BlockSeparation]
    groups: dict[str, list[str]]  # depth groups in network order: stage name → blocks
    images_per_class: int

    @property
    def rise(self) -> float:
        """Mean separation of the deepest group minus that of the first (observed)."""
        first, last = self.group_names[0], self.group_names[-1]
        return self.group_mean(last) - self.group_mean(first)

    @property
    def group_names(self) -> list[str]:
        return list(self.groups)

    def group_mean(self, group: str) -> float:
        return float(np.mean([self.blocks[b].observed for b in self.groups[group]]))

    @property
    def rise_bootstrap(self) -> np.ndarray:
        """``[resamples]`` the deepest group's mean separation minus the first's, per bootstrap draw
        (the draws are shared by all blocks, so the difference is taken draw by draw)."""
        return self._group_bootstrap(self.group_names[-1]) - self._group_bootstrap(self.group_names[0])

    @property
    def rise_interval(self) -> tuple[float, float]:
        low, high = np.quantile(self.rise_bootstrap, [0.025, 0.975])
        return float(low), float(high)

    def specific_blocks(self) -> list[str]:
        return [name for name, b in self.blocks.items() if b.class_specific]

    def depth_verdict(self) -> str:
        """One sentence on the depth trend, decided by the bootstrap interval of :attr:`rise`."""
        first, last = self.group_names[0], self.group_names[-1]
        low, high = self.rise_interval
        numbers = (
            f"class separation {self.group_mean(first):.4f} in {first}, {self.group_mean(last):.4f} in "
            f"{last} (difference {self.rise:+.4f}, 95 % interval {low:+.4f} … {high:+.4f})"
        )
        largest = max(b.observed for b in self.blocks.values())
        size = (
            f"; but no block separates the classes by {SMALL} or more (largest {largest:.4f}): "
            "the gates hardly depend on the class anywhere"
            if largest < SMALL
            else ""
        )
        if low > 0:
            return f"{self.network}: separation RISES with depth: {numbers}{size}."
        if high < 0:
            return f"{self.network}: separation FALLS with depth: {numbers}{size}."
        return f"{self.network}: NO CLEAR depth trend (the interval includes 0): {numbers}{size}."

    def learned_beyond(
        self, reference: SeparationReport, group: str | None = None
    ) -> tuple[float, float, float]:
        """(difference, 2.5th, 97.5th percentile) of ``group``'s mean separation here minus in ``reference``.

        The two networks' bootstraps are independent, so their difference is resampled pairwise.
        ``group`` defaults to the deepest one.
        """
        group = group or self.group_names[-1]
        ours, theirs = self._group_bootstrap(group), reference._group_bootstrap(group)
        size = min(len(ours), len(theirs))
        diff = ours[:size] - theirs[:size]
        low, high = np.quantile(diff, [0.025, 0.975])
        return self.group_mean(group) - reference.group_mean(group), float(low), float(high)

    def _group_bootstrap(self, group: str) -> np.ndarray:
        if group not in self.groups:
            raise ValueError(f"No group {group!r} in this report: it has {', '.join(self.groups)}.")
        return np.mean([self.blocks[b].bootstrap for b in self.groups[group]], axis=0)

    def to_frame(self) -> pd.DataFrame:
        """One row per block: separation, its interval, the shuffled-label threshold and p-value."""
        import pandas as pd

        rows = []
        for group, names in self.groups.items():
            for name in names:
                b = self.blocks[name]
                rows.append(
                    {
                        "block": name,
                        "group": group,
                        "separation": b.observed,
                        "ci_low": b.interval[0],
                        "ci_high": b.interval[1],
                        "shuffled_95th": b.threshold,
                        "p_value": b.p_value,
                        "class_specific": b.class_specific,
                    }
                )
        return pd.DataFrame(rows).set_index("block")


def _depth_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """Blocks grouped by stage (paper names), else network order split into thirds."""
    try:
        stages = [parse_block_name(n)[0] for n in names]
    except ValueError:
        thirds = np.array_split(np.arange(len(names)), min(3, len(names)))
        labels = ["first third", "middle third", "last third"][: len(thirds)]
        return {lab: [names[i] for i in part] for lab, part in zip(labels, thirds, strict=True) if len(part)}
    groups: dict[str, list[str]] = {}
    for stage, name in zip(stages, names, strict=True):
        groups.setdefault(f"stage {stage}", []).append(name)
    return groups


def per_image_excitations(
    model: nn.Module,
    data: ImageDataset | tuple[Tensor, Tensor],
    images_per_class: int = 50,
    split: str = "test",
    seed: int = 0,
    blocks: Sequence[str] | None = None,
    batch_size: int = 256,
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """``s`` of every sampled image (the images :func:`class_excitations` samples with this seed),
    per block ``[N, C]``, with their labels ``[N]`` and the number of classes."""
    sample = sample_split(data, split, images_per_class, seed)
    parts: list[dict[str, np.ndarray]] = []
    kept: list[Tensor] = []
    for x, y in sample.batches(batch_size):
        parts.append(image_excitations(model, x, blocks))
        kept.append(y)
    per_block = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    return per_block, torch.cat(kept).numpy(), len(sample.classes)


def separation_report(
    model: nn.Module,
    data: ImageDataset | tuple[Tensor, Tensor],
    images_per_class: int = 50,
    split: str = "test",
    seed: int = 0,
    blocks: Sequence[str] | None = None,
    permutations: int = 199,
    resamples: int = 199,
    network: str | None = None,
    batch_size: int = 256,
) -> SeparationReport:
    """Permutation test and bootstrap of the class separation of every block (module docstring).

    ``permutations`` label shuffles and ``resamples`` bootstrap draws, seeded by ``seed``; the
    shuffles and draws are shared by all blocks. ``network`` describes the model in verdicts.
    """
    per_block, labels, num_classes = per_image_excitations(
        model, data, images_per_class, split, seed, blocks, batch_size
    )
    name = network or getattr(model, "arch_config", {}).get("name", type(model).__name__)
    return report_from_samples(per_block, labels, num_classes, permutations, resamples, seed, name)


def report_from_samples(
    per_block: dict[str, np.ndarray],
    labels: np.ndarray,
    num_classes: int,
    permutations: int = 199,
    resamples: int = 199,
    seed: int = 0,
    network: str = "network",
) -> SeparationReport:
    """:func:`separation_report` on excitations already recorded: ``per_block[name]`` is ``[N, C]``
    (blocks in network order), ``labels`` is ``[N]``."""
    if permutations < 19 or resamples < 19:
        raise ValueError("Use at least 19 permutations and 19 resamples (p-values and intervals at 5 %).")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=num_classes)
    n = len(labels)
    truth = np.arange(n)[None]
    shuffled = np.stack([rng.permutation(n) for _ in range(permutations)])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    boot = np.stack(
        [
            np.concatenate([rng.integers(a, a + c, size=c) for a, c in zip(starts, counts, strict=True)])
            for _ in range(resamples)
        ]
    )
    results = {}
    for name, s in per_block.items():
        rows = np.asarray(s, dtype=np.float64)[order]
        results[name] = BlockSeparation(
            block=name,
            observed=float(_separations(rows, counts, truth, True)[0]),
            null=_separations(rows, counts, shuffled, True),
            bootstrap=_separations(rows, counts, boot, True),
        )
    per_class = int(counts[counts > 0].min()) if n else 0
    return SeparationReport(network, results, _depth_groups(list(results)), per_class)


# --------------------------------------------------------------------------- the reference network
@torch.no_grad()
def untrained_like(
    model: nn.Module,
    data: ImageDataset | None = None,
    seed: int = 0,
    calibration_images: int = 2048,
    batch_size: int = 256,
) -> nn.Module:
    """The same senet_lib architecture at initialisation (seeded), on the model's device.

    With ``data``, BatchNorm's running statistics are measured on ``calibration_images`` training
    images (train-mode forward passes, no gradients), so that in eval mode the untrained network
    normalises its features as a trained one does; without it they keep their initial values (mean
    0, variance 1), which leaves the activations unnormalised.
    """
    arch = getattr(model, "arch_config", None)
    if not arch:
        raise ValueError(
            "untrained_like needs a senet_lib model (made by create_model); for another network, "
            "build the same architecture at initialisation yourself."
        )
    torch.manual_seed(seed)
    fresh = create_model(**dict(arch)).to(next(model.parameters()).device)
    if data is not None:
        norms = [m for m in fresh.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
        generator = torch.Generator().manual_seed(seed)
        count = min(calibration_images, len(data.train.labels))
        index = torch.randperm(len(data.train.labels), generator=generator)[:count]
        fresh.train()
        device = next(fresh.parameters()).device
        for start in range(0, count, batch_size):
            fresh(data.normalize(data.train.images[index[start : start + batch_size]]).to(device))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
    return fresh.eval()


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
    images, labels, _classes, _meta, is_uint8 = split_tensors(data, split)
    normalize = data.normalize if is_uint8 else None  # type: ignore[union-attr]
    block = select_blocks(model, [block_name])[block_name]
    indices = _eval_indices(labels, class_index, max_images, seed)
    index = None if channels is None else torch.as_tensor(np.asarray(channels), dtype=torch.long).reshape(-1)
    if index is not None and index.numel() and (index.min() < 0 or index.max() >= block.channels):
        raise ValueError(f"Channel indices must lie in 0 … {block.channels - 1} for {block_name}.")
    device = next(model.parameters()).device
    correct = 0
    with eval_mode(model):
        for x, y in index_batches(images, labels, indices, batch_size, normalize):
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
