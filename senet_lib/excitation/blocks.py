"""Choosing SE blocks by name, in senet_lib's networks and in anyone else's: senet_lib's, timm's and
torchvision's SE modules are found by type, any other by module path. Blocks are named as in the paper,
``SE_<stage>_<block>``, where the network's layout shows it, else by module path."""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.ops import SqueezeExcitation as TorchvisionSE

from ..se import SqueezeExcitation, paper_name, parse_block_name

#: timm's SE module classes (found by name so timm stays optional and is never imported here).
TIMM_SE_CLASSES = ("SEModule", "SqueezeExcite", "EffectiveSEModule")
#: Where the gate of an SE module lives: senet_lib and timm (``gate``), torchvision
#: (``scale_activation``), timm's port of the original Caffe SENets (``sigmoid``).
GATE_ATTRIBUTES = ("gate", "scale_activation", "sigmoid")
#: A ResNet unit's SE module path (``layer3.5.se``): stage ``layer<N>`` is the paper's conv<N+1>_x.
RESNET_PATH = re.compile(r"^(?:.*\.)?layer(\d+)\.(\d+)\.(?:se|se_module|attn)$")


# --------------------------------------------------------------------------- block names
def paper_blocks(names: Sequence[str]) -> list[str]:
    """The panels of paper Fig. 6, in network order: the last block of each stage plus every block of
    the last stage."""
    if not names:
        raise ValueError("paper_blocks needs at least one block name (see senet_lib.se.se_blocks(model)).")
    parsed = sorted((parse_block_name(n), n) for n in names)
    last_stage = parsed[-1][0][0]
    last_of_stage: dict[int, str] = {}
    for (stage, _block), name in parsed:
        last_of_stage[stage] = name
    chosen = {name for (stage, _b), name in parsed if stage == last_stage} | set(last_of_stage.values())
    return [name for _key, name in parsed if name in chosen]


def is_se_module(module: nn.Module) -> bool:
    """Whether ``module`` is an SE block of senet_lib, timm or torchvision."""
    if isinstance(module, SqueezeExcitation | TorchvisionSE):
        return True
    cls = type(module)
    return cls.__module__.startswith("timm.") and cls.__name__ in TIMM_SE_CLASSES


def gate_of(block: nn.Module) -> nn.Module:
    """The submodule whose output is the excitation ``s`` of ``block`` (``block`` itself if it has none)."""
    for attribute in GATE_ATTRIBUTES:
        gate = getattr(block, attribute, None)
        if isinstance(gate, nn.Module):
            return gate
    return block


def as_channels(s: Tensor, name: str) -> Tensor:
    """A gate's output as ``[N, C]``; a spatial map means the named module is not an SE gate."""
    if s.ndim > 2 and any(size != 1 for size in s.shape[2:]):
        raise ValueError(
            f"Module {name!r} outputs a {tuple(s.shape)} map, not one excitation per channel: "
            "name an SE module or its gate (the module whose output is s)."
        )
    return s.reshape(s.shape[0], -1)


def block_name(path: str, module: nn.Module) -> str:
    """The paper's name of the SE block at ``path`` when known, else the module path."""
    if getattr(module, "paper_name", None):
        return module.paper_name
    match = RESNET_PATH.match(path)
    if match is not None and not isinstance(module, SqueezeExcitation):
        return paper_name(int(match.group(1)) + 1, int(match.group(2)) + 1)
    return path


def find_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """Every SE block of ``model`` (senet_lib, timm, torchvision), keyed by :func:`block_name`, in order."""
    found: dict[str, nn.Module] = {}
    for path, module in model.named_modules():
        if is_se_module(module):
            found[block_name(path, module)] = module
    return found


def select_blocks(model: nn.Module, blocks: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """The SE blocks of ``model`` named in ``blocks`` (all when None; block names or module paths), in
    network order."""
    available = find_blocks(model)
    if blocks is None:
        if not available:
            raise ValueError(
                "Found no SE blocks in this model (senet_lib, timm or torchvision types): use an SE model "
                "such as 'se_resnet20', or pass blocks=[<module path>, ...] naming its SE modules."
            )
        return _with_squeeze(available)
    wanted = list(dict.fromkeys(blocks))
    chosen: dict[str, nn.Module] = {}
    for path, module in model.named_modules():
        name = block_name(path, module) if is_se_module(module) else None
        if name in wanted or path in wanted:
            chosen[name if name in wanted else path] = module
    unknown = [b for b in wanted if b not in chosen]
    if unknown:
        listed = ", ".join(available) or "no SE blocks of a known type"
        raise ValueError(
            f"Unknown SE block(s) {', '.join(unknown)}: this model has {listed}; "
            "a module path from model.named_modules() also works."
        )
    return _with_squeeze(chosen)


def _with_squeeze(blocks: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """``blocks`` unchanged, unless one has no squeeze (``se_squeeze="none"``, paper Table 16)."""
    if any(getattr(getattr(b, "squeeze", None), "mode", None) == "none" for b in blocks.values()):
        raise ValueError(
            "This model's SE blocks have no squeeze (se_squeeze='none'): their excitation is a [N, C, H, W] "
            "map, not one value per channel, so per-channel excitation statistics do not apply; analyse a "
            "model with a squeeze (avg, max or avgmax)."
        )
    return blocks
