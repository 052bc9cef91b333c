"""Is a gate's input-dependence worth anything? Each SE block's excitation replaced by a constant.

An SE block multiplies channel ``c`` of its branch by ``s_c(x)``, which depends on the image (Eq. 3–4):
the paper's claim is that this input-dependent recalibration is what helps (§1, §3). A network that
needed only a learned per-channel scale would lose nothing when ``s(x)`` is replaced by its mean over
the training images, ``E_x[s_c(x)]`` (:func:`mean_gates`). Two references tell the two readings apart:

* ``"mean"``: the per-channel mean gate, the same for every image: what the block does on average;
* ``"shuffled"``: the same means permuted across the block's channels (:func:`shuffled_gates`, seeded):
  the block's own values, on the wrong channels. It asks whether the per-channel scale itself was learned;
* ``"one"``: ``s = 1``, the block removed (its branch unscaled).

:func:`frozen_gate_accuracy` measures test accuracy with each variant applied to one block at a time,
to each stage (paper block names, :func:`freeze_groups`) and to all blocks at once, against the intact
network, through :meth:`senet_lib.train.Trainer.evaluate` and :func:`senet_lib.se.override_gate`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..se import SqueezeExcitation, override_gate, parse_block_name, se_blocks
from ..train import TrainConfig, Trainer
from .recorder import ExcitationRecorder

#: The constants a gate is replaced by (module docstring).
VARIANTS = ("mean", "shuffled", "one")


def mean_gates(model: nn.Module, loader: Iterable, blocks: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The per-channel mean excitation of every SE block (or of ``blocks``) over every image of ``loader``.

    ``loader`` yields ``(x, y)`` batches as the model takes them (normalised images, labels); the gates
    are recorded by :class:`~.recorder.ExcitationRecorder` in float64 (eval mode, no gradients) and the
    mean is taken over all images, whatever their class. Returns float64 ``[C]`` tensors by block name.
    """
    with ExcitationRecorder(model, blocks=blocks) as recorder:
        for x, y in loader:
            recorder.update(x, y)
    stats = recorder.stats()
    count = stats.count.astype(np.float64)
    return {
        name: torch.from_numpy((np.nan_to_num(stats.mean[name]) * count[:, None]).sum(axis=0) / count.sum())
        for name in stats.blocks
    }


def shuffled_gates(gates: Mapping[str, Tensor], seed: int = 0) -> dict[str, Tensor]:
    """Each block's gates permuted across its channels: one ``torch.randperm`` per block, drawn in
    block order from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return {name: s[torch.randperm(len(s), generator=generator)] for name, s in gates.items()}


def freeze_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """What is frozen together: each block alone, each stage (``"stage 2"``: blocks named
    ``SE_2_*``; none where the blocks have no paper names) and ``"all"``, in that order."""
    groups = {name: [name] for name in names}
    try:
        stages = [parse_block_name(n)[0] for n in names]
    except ValueError:
        stages = []
    for stage, name in zip(stages, names, strict=False):
        groups.setdefault(f"stage {stage}", []).append(name)
    groups["all"] = list(names)
    return groups


@contextlib.contextmanager
def frozen_gates(
    blocks: Mapping[str, SqueezeExcitation], gates: Mapping[str, Tensor | float], names: Sequence[str]
) -> Iterator[None]:
    """Inside the ``with`` block, the gate of each block in ``names`` is ``gates[name]`` (a ``[C]``
    tensor or one number) for every image (:func:`senet_lib.se.override_gate`)."""
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(override_gate(blocks[name], gates[name]))
        yield


@dataclass(frozen=True)
class FreezeResult:
    """Test accuracy of the intact network and with gates frozen, per variant and group."""

    intact: float
    accuracy: dict[str, dict[str, float]]  # variant → group → accuracy
    groups: dict[str, list[str]]  # group → blocks frozen together
    images: int  # test images each accuracy is measured on

    def drop(self, variant: str, group: str) -> float:
        """Intact accuracy minus the accuracy with ``group`` frozen to ``variant`` (a fraction)."""
        return self.intact - self.accuracy[variant][group]

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a JSON record."""
        return {
            "images": self.images,
            "intact": self.intact,
            "groups": self.groups,
            "accuracy": self.accuracy,
            "drop": {v: {g: self.drop(v, g) for g in self.groups} for v in self.accuracy},
        }


@torch.no_grad()
def frozen_gate_accuracy(
    model: nn.Module,
    test_loader: Iterable,
    gates: Mapping[str, Tensor],
    seed: int = 0,
    variants: Sequence[str] = VARIANTS,
    groups: Mapping[str, Sequence[str]] | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    device: str | torch.device | None = None,
    progress: Callable[[str, str, float], None] | None = None,
) -> FreezeResult:
    """Accuracy over ``test_loader`` with each variant's constant gates in each group of blocks.

    ``gates`` are the mean gates (:func:`mean_gates`, usually over training images); ``"shuffled"``
    permutes them with ``seed`` (:func:`shuffled_gates`). ``groups`` defaults to
    :func:`freeze_groups`. Each pass is :meth:`senet_lib.train.Trainer.evaluate` in ``precision``
    on ``device`` (default: the model's); ``progress(variant, group, accuracy)`` is called after each.
    """
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"Unknown variants {unknown}: use {', '.join(VARIANTS)}.")
    blocks = se_blocks(model)
    missing = [name for name in gates if name not in blocks]
    if missing or not gates:
        raise ValueError(
            f"No SE blocks named {missing or 'at all'} in this model: it has {', '.join(blocks)}."
        )
    groups = {g: list(m) for g, m in (groups or freeze_groups(list(gates))).items()}
    constants: dict[str, Mapping[str, Tensor | float]] = {
        "mean": gates,
        "shuffled": shuffled_gates(gates, seed),
        "one": dict.fromkeys(gates, 1.0),
    }
    config = TrainConfig(
        epochs=1, batch_size=1, precision=precision, channels_last=channels_last, compile=False, seed=seed
    )
    trainer = Trainer(model, config, device or next(model.parameters()).device, steps_per_epoch=1)
    intact = trainer.evaluate(test_loader)[1]
    seen = getattr(test_loader, "num_samples", None) or sum(len(y) for _x, y in test_loader)
    accuracy: dict[str, dict[str, float]] = {}
    for variant in variants:
        accuracy[variant] = {}
        for group, names in groups.items():
            with frozen_gates(blocks, constants[variant], names):
                accuracy[variant][group] = trainer.evaluate(test_loader)[1]
            if progress is not None:
                progress(variant, group, accuracy[variant][group])
    return FreezeResult(intact=intact, accuracy=accuracy, groups=groups, images=seen)
