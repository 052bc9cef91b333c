"""Is a block's excitation class-specific, and how does that change with depth? Decided by resampling.

The measure is the **class separation** (:func:`~.stats.class_separation`, in units of ``s``, sampling
noise removed). A **label-permutation test** per block says whether the gates depend on the class at
all (an untrained network passes it too); a **bootstrap** within each class gives intervals for
separations and their differences, resampled jointly across blocks. Differences are read against
:data:`SMALL` (:func:`compare`); frozen blocks (:data:`FROZEN`) are left out of stage means. Compare
with :func:`untrained_like`: only the excess over random features was learned. Knock-outs
(:func:`knockout_comparison`) ask the same of single channels.
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
#: the gates then hardly depend on the class. Also the margin within which two separations are "alike".
SMALL = 0.02
#: A block whose gate values move less than this (standard deviation over all recorded images, in the
#: channel that moves most) is frozen: a fixed per-channel scale, the same for every image.
FROZEN = 1e-3


def compare(low: float, high: float, margin: float = SMALL) -> str:
    """Read the 95 % interval ``low … high`` of a difference: ``"alike"`` (inside ``± margin``),
    ``"higher"`` (above 0), ``"lower"`` (below 0) or ``"undecided"`` (it straddles 0 and the margin)."""
    if -margin < low and high < margin:
        return "alike"
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    return "undecided"


def binomial_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion ``successes / trials``."""
    from scipy.stats import beta

    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError("Need 0 <= successes <= trials and at least one trial.")
    tail = (1 - level) / 2
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - tail, successes + 1, trials - successes))
    return low, high


def separation_of_samples(s: np.ndarray, labels: np.ndarray, num_classes: int, debias: bool = True) -> float:
    """Class separation of per-image excitations ``s`` (``[N, C]``) under ``labels`` (``[N]``)."""
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=num_classes)
    rows = np.asarray(s, dtype=np.float64)[order]
    return float(_separations(rows, counts, np.arange(len(labels))[None], debias)[0])


def _separations(rows: np.ndarray, counts: np.ndarray, draws: np.ndarray, debias: bool) -> np.ndarray:
    """Separation for each draw: ``rows[draws[r]]`` (sorted by class) read as classes of ``counts`` images."""
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
    spread: float = float("nan")  # std of s over all images, in the channel that moves most

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
        """Beats shuffled labels (``p ≤ ALPHA``): the gates depend on the class at all, however little."""
        return self.p_value <= ALPHA

    @property
    def frozen(self) -> bool:
        """The gates hardly move from image to image (:data:`FROZEN`): a fixed per-channel scale."""
        return bool(self.spread < FROZEN)


@dataclass(frozen=True)
class Difference:
    """A difference between two separations (``a − b``) with its 95 % bootstrap interval and reading."""

    a: str
    b: str
    value: float
    low: float
    high: float

    @property
    def reading(self) -> str:
        """``"alike"``, ``"higher"``, ``"lower"`` or ``"undecided"`` (:func:`compare`)."""
        return compare(self.low, self.high)

    def describe(self) -> str:
        return f"{self.value:+.4f}, 95 % interval {self.low:+.4f} … {self.high:+.4f}"


def _difference(a: str, b: str, value: float, draws: np.ndarray) -> Difference:
    low, high = np.quantile(draws, [0.025, 0.975])
    return Difference(a, b, float(value), float(low), float(high))


@dataclass(frozen=True)
class SeparationReport:
    """Separation tests of every recorded block of one network (:func:`separation_report`)."""

    network: str  # a description for titles, e.g. "se_resnet20, 40 epochs, 87.9 % test"
    blocks: dict[str, BlockSeparation]
    groups: dict[str, list[str]]  # depth groups in network order: stage name → blocks
    images_per_class: int

    @property
    def group_names(self) -> list[str]:
        return list(self.groups)

    def frozen_blocks(self) -> list[str]:
        """Blocks whose gates do not move (:attr:`BlockSeparation.frozen`), in network order."""
        return [name for name, b in self.blocks.items() if b.frozen]

    def specific_blocks(self) -> list[str]:
        """Blocks that beat shuffled labels: any class dependence at all (not: learned, or large)."""
        return [name for name, b in self.blocks.items() if b.class_specific]

    def _members(self, group: str, exclude: Sequence[str] = ()) -> list[str]:
        if group not in self.groups:
            raise ValueError(f"No group {group!r} in this report: it has {', '.join(self.groups)}.")
        members = [b for b in self.groups[group] if b not in exclude]
        if not members:
            raise ValueError(f"Every block of {group} is left out: nothing to average.")
        return members

    def group_mean(self, group: str, exclude: Sequence[str] = ()) -> float:
        """Mean separation of ``group``'s blocks, leaving out ``exclude``."""
        return float(np.mean([self.blocks[b].observed for b in self._members(group, exclude)]))

    def _group_bootstrap(self, group: str, exclude: Sequence[str] = ()) -> np.ndarray:
        return np.mean([self.blocks[b].bootstrap for b in self._members(group, exclude)], axis=0)

    def _kept_groups(self, exclude: Sequence[str]) -> list[str]:
        return [g for g in self.group_names if any(b not in exclude for b in self.groups[g])]

    def stage_steps(self, exclude: Sequence[str] | None = None) -> list[Difference]:
        """Each group's mean separation minus the previous group's, draw by draw (``exclude``
        defaults to the frozen blocks)."""
        exclude = self.frozen_blocks() if exclude is None else list(exclude)
        kept = self._kept_groups(exclude)
        return [
            _difference(
                later,
                earlier,
                self.group_mean(later, exclude) - self.group_mean(earlier, exclude),
                self._group_bootstrap(later, exclude) - self._group_bootstrap(earlier, exclude),
            )
            for earlier, later in zip(kept[:-1], kept[1:], strict=True)
        ]

    def peak(self, exclude: Sequence[str] | None = None) -> tuple[str, float]:
        """The block with the largest separation and the share of bootstrap draws in which it is largest."""
        exclude = self.frozen_blocks() if exclude is None else list(exclude)
        names = [n for n in self.blocks if n not in exclude]
        best = max(names, key=lambda n: self.blocks[n].observed)
        draws = np.stack([self.blocks[n].bootstrap for n in names])
        return best, float(np.mean(draws.argmax(axis=0) == names.index(best)))

    def block_difference(self, a: str, b: str) -> Difference:
        """Block ``a``'s separation minus block ``b``'s, draw by draw."""
        first, second = self.blocks[a], self.blocks[b]
        return _difference(a, b, first.observed - second.observed, first.bootstrap - second.bootstrap)

    def depth_verdict(self) -> str:
        """What the per-block curve shows, stage after stage, each reading decided by an interval."""
        frozen = self.frozen_blocks()
        steps = self.stage_steps(frozen)
        peak, share = self.peak(frozen)
        last = [n for n in self.blocks if n not in frozen][-1]
        parts = [f"{s.a} vs {s.b}: {s.reading.upper()} ({s.describe()})" for s in steps]
        parts.append(
            f"largest in {peak} ({self.blocks[peak].observed:.4f}; the largest in {100 * share:.0f} % of "
            "bootstrap draws)"
        )
        fall = None
        if last != peak:
            fall = self.block_difference(last, peak)
            parts.append(f"the last block {last} vs {peak}: {fall.reading.upper()} ({fall.describe()})")
        readings = [s.reading for s in steps]
        if "undecided" in readings:
            shape = (
                f"with {self.images_per_class} images per class some steps are undecided: their intervals "
                f"straddle both 0 and ±{SMALL}; more images per class would decide them"
            )
        elif all(r == "higher" for r in readings):
            shape = "it rises stage by stage"
        elif all(r == "alike" for r in readings):
            shape = f"no stage differs from the one before by {SMALL} or more"
        else:
            shape = "not a steady rise: " + ", then ".join(
                f"{s.a} {'like' if s.reading == 'alike' else s.reading + ' than'} {s.b}" for s in steps
            )
        if fall is not None and fall.reading == "lower":
            shape += f"; the last block falls back below {peak}"
        largest = max(b.observed for b in self.blocks.values())
        size = (
            f"; no block separates the classes by {SMALL} or more (largest {largest:.4f}): "
            "the gates hardly depend on the class anywhere"
            if largest < SMALL
            else ""
        )
        left_out = f" ({', '.join(frozen)} left out: frozen)" if frozen else ""
        return f"{self.network}, per block{left_out}: " + "; ".join(parts) + f". So {shape}{size}."

    def learned_beyond(
        self, reference: SeparationReport, group: str | None = None, exclude: Sequence[str] | None = None
    ) -> tuple[float, float, float]:
        """(difference, 2.5th, 97.5th percentile) of ``group``'s mean separation here minus in ``reference``
        (same seed, so draws pair up; ``group`` defaults to the deepest)."""
        exclude = self.frozen_blocks() if exclude is None else list(exclude)
        group = group or self._kept_groups(exclude)[-1]
        ours, theirs = self._group_bootstrap(group, exclude), reference._group_bootstrap(group, exclude)
        size = min(len(ours), len(theirs))
        low, high = np.quantile(ours[:size] - theirs[:size], [0.025, 0.975])
        return self.group_mean(group, exclude) - reference.group_mean(group, exclude), float(low), float(high)

    def learned_by_stage(
        self, reference: SeparationReport, exclude: Sequence[str] | None = None
    ) -> list[Difference]:
        """Every group's mean separation here minus in ``reference`` (e.g. :func:`untrained_like`)."""
        exclude = self.frozen_blocks() if exclude is None else list(exclude)
        out = []
        for group in self._kept_groups(exclude):
            value, low, high = self.learned_beyond(reference, group, exclude)
            out.append(Difference(group, reference.network, value, low, high))
        return out

    def learned_verdict(self, reference: SeparationReport) -> str:
        """One sentence per stage: how much more class-specific the gates are than in ``reference``."""
        frozen = self.frozen_blocks()
        rows = self.learned_by_stage(reference, frozen)
        words = {
            "higher": "MORE",
            "lower": "LESS",
            "alike": f"ALIKE (within ±{SMALL})",
            "undecided": "UNDECIDED",
        }
        parts = [f"{d.a} {words[d.reading]} ({d.describe()})" for d in rows]
        left_out = f", {', '.join(frozen)} left out (frozen)" if frozen else ""
        largest = max(reference.blocks.values(), key=lambda b: b.observed)
        return (
            f"{self.network} minus {reference.network}, stage by stage{left_out}: "
            + "; ".join(parts)
            + f". The reference's largest block separation is {largest.observed:.4f} ({largest.block})."
        )

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
                        "frozen": b.frozen,
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
    """``s`` of every sampled image per block ``[N, C]``, their labels ``[N]`` and the number of classes."""
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
    """Permutation test and bootstrap of the class separation of every block, seeded by ``seed``."""
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
    """:func:`separation_report` on recorded excitations: ``per_block[name]`` ``[N, C]``, ``labels`` ``[N]``."""
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
            spread=float(rows.std(axis=0).max()) if len(rows) else float("nan"),
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
    """The same senet_lib architecture at initialisation (seeded), on the model's device; with ``data``,
    BatchNorm's running statistics are measured on ``calibration_images`` training images."""
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
    """Top-1 accuracy while ``block_name``'s excitations of ``channels`` are forced to 0.

    On the images of ``class_index`` (all when None) of ``split``, at most ``max_images`` (seeded subset).
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
    images: int | None = None  # how many of the class's images each accuracy is measured on

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
    def worse_draws(self) -> int:
        """How many random draws hurt the class at least as much as its top-k channels."""
        return int(sum(a <= self.top_off for a in self.random_off))

    @property
    def p_value(self) -> float:
        """How often k random channels off hurt at least as much as the top k (one-sided, counting the top k)."""
        return (1 + self.worse_draws) / (1 + len(self.random_off))

    @property
    def p_interval(self) -> tuple[float, float]:
        """95 % exact binomial interval of the p-value with unlimited draws."""
        return binomial_interval(self.worse_draws, len(self.random_off))

    def verdict(self, alpha: float = 0.05) -> str:
        """One sentence: did the top-k channels hurt the class more than random ones (decided by :attr:`p_interval`)?"""
        low, high = self.random_interval
        p_low, p_high = self.p_interval
        on = f" on {self.images} images ({100 / self.images:.1f} points each)" if self.images else ""
        numbers = (
            f"top {self.k} off {100 * self.top_off:.1f} %, random {self.k} off {100 * self.random_mean:.1f} % "
            f"(95 % of {len(self.random_off)} draws in {100 * low:.1f} … {100 * high:.1f} %){on}; "
            f"{self.worse_draws} of {len(self.random_off)} random draws hurt as much, p = {self.p_value:.3f}, "
            f"and with unlimited draws p would lie in {p_low:.3f} … {p_high:.3f}"
        )
        if len(self.random_off) < round(1 / alpha) - 1:
            return f"Too few random draws to decide at {alpha:.0%} (use at least {round(1 / alpha) - 1}): {numbers}."
        if p_high <= alpha:
            return f"The class's most excited channels hurt it MORE than random ones: {numbers}."
        if p_low > alpha:
            return f"The class's most excited channels did NOT hurt it more than random ones: {numbers}."
        needed = next(n for n in range(1, 100_000) if binomial_interval(0, n)[1] <= alpha)
        return (
            f"UNDECIDED at {alpha:.0%}: {numbers}, on both sides of {alpha}. More draws would decide "
            f"(at least {needed} before 'more' can be decided at all)."
        )


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
    """``class_index``'s accuracy with the ``k`` channels of ``block`` it excites most switched off, and
    with ``draws`` random sets of ``k`` (``eval_options`` go to :func:`accuracy_with_channels_off`)."""
    cls = stats.class_index(class_index)
    top = top_channels(stats, block, cls, k, relative=relative)
    rng = np.random.default_rng(seed)
    channels = stats.num_channels(block)

    def acc(chs: Sequence[int] | None) -> float:
        return accuracy_with_channels_off(model, data, block, chs, class_index=cls, **eval_options)

    labels = split_tensors(data, eval_options.get("split", "test"))[1]
    images = len(_eval_indices(labels, cls, eval_options.get("max_images"), eval_options.get("seed", 0)))
    return KnockoutResult(
        block=block,
        class_index=cls,
        k=k,
        top_channels=[int(c) for c in top],
        baseline=acc(None),
        top_off=acc(top),
        random_off=[acc(rng.choice(channels, size=k, replace=False)) for _ in range(draws)],
        images=images,
    )
