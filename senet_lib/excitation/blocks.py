"""Choosing SE blocks by name: the paper's Fig. 6 panels and a model's blocks (``SE_<stage>_<block>``)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..se import SqueezeExcitation, parse_block_name, se_blocks


# --------------------------------------------------------------------------- block names
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
    """The SE blocks of ``model`` named in ``blocks`` (all when None), in network order.

    Raises ``ValueError`` for a model without SE blocks, an unknown name, or blocks without a
    squeeze (``se_squeeze="none"``, paper Table 16), whose excitation is a map, not one value
    per channel."""
    available = se_blocks(model)
    if not available:
        raise ValueError(
            "This model has no SE blocks: use an SE model such as 'se_resnet20' or 'se_resnet50'."
        )
    if any(block.squeeze.mode == "none" for block in available.values()):
        raise ValueError(
            "This model's SE blocks have no squeeze (se_squeeze='none'): their excitation is a [N, C, H, W] "
            "map, not one value per channel, so per-channel excitation statistics do not apply; analyse a "
            "model with a squeeze (avg, max or avgmax)."
        )
    if blocks is None:
        return available
    unknown = [b for b in blocks if b not in available]
    if unknown:
        raise ValueError(f"Unknown SE block(s) {', '.join(unknown)}: this model has {', '.join(available)}.")
    wanted = set(blocks)
    return {name: block for name, block in available.items() if name in wanted}
