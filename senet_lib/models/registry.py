"""One factory for every network: :func:`create_model` and :func:`list_models` (timm's style).

Options: ``reduction`` (16, Table 10), ``se_placement`` (standard, pre, post, identity, 3x3; Fig. 5,
Tables 14-15), ``se_stages`` (Table 13), ``se_squeeze`` / ``se_gate`` (Tables 11-12, 16), ``se_bias``,
``se_min_hidden`` (the narrowest bottleneck; 1: C/r as it falls), ``norm``, ``zero_init_residual``; bottleneck
ResNets also ``stem`` (cifar, imagenet). Plain ResNets take only ``norm``, ``zero_init_residual`` and ``stem``.
"""

from __future__ import annotations

import fnmatch
import numbers
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

from torch import nn

from .cifar_resnet import CifarResNet
from .layers import SEConfig
from .resnet import ResNet

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_SE_KEYS = ("reduction", "se_placement", "se_stages", "se_squeeze", "se_gate", "se_bias", "se_min_hidden")


class _ArchRequired(TypedDict):
    name: str
    num_classes: int


class ArchConfig(_ArchRequired, total=False):
    """``model.arch_config``: name, classes and the options given, which checkpoints store."""

    reduction: int
    se_placement: str
    se_stages: list[int] | tuple[int, ...] | None
    se_squeeze: str
    se_gate: str
    se_bias: bool
    se_min_hidden: int
    norm: str
    zero_init_residual: bool
    stem: str


B = TypeVar("B", bound=Callable[..., nn.Module])


def register_model(name: str | B, builder: Callable[..., nn.Module] | None = None) -> Any:
    """Add a builder ``builder(num_classes, **options) -> nn.Module`` under ``name`` (also a decorator)."""
    if callable(name):
        register_model(name.__name__, name)
        return name
    if builder is None:
        raise TypeError(
            "register_model needs a builder: register_model(name, builder), or use it as a decorator."
        )
    if name in _BUILDERS:
        raise ValueError(f"A model named {name!r} is already registered.")
    _BUILDERS[name] = builder
    return builder


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (e.g. ``"se_*"``), sorted."""
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, num_classes: int = 10, **options: Any) -> nn.Module:
    """Build the network ``name`` with ``num_classes`` outputs and its ``arch_config``.

    Raises:
        ValueError: unknown model name (the message lists the valid ones) or option value.
        TypeError: an option this model does not take, or of the wrong type.
    """
    if name not in _BUILDERS:
        raise ValueError(f"Unknown model {name!r}. Valid models: {', '.join(list_models())}.")
    if not _is_int(num_classes) or num_classes < 1:
        raise TypeError(
            f"create_model's num_classes must be a whole number of at least 1 (got {num_classes!r}): "
            "pass e.g. num_classes=10."
        )
    num_classes = int(num_classes)
    for key, value in options.items():
        check = _OPTION_TYPES.get(key)
        if check is not None and not check[0](value):
            raise TypeError(
                f"create_model's option {key} must be {check[1]} (got {type(value).__name__} {value!r}): "
                f"pass e.g. {key}={check[2]}."
            )
    model = _BUILDERS[name](num_classes, **options)
    model.arch_config = ArchConfig(name=name, num_classes=num_classes, **options)
    return model


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_stages(value: Any) -> bool:
    return value is None or (isinstance(value, (list, tuple, range)) and all(_is_int(v) for v in value))


#: option → (accepts the value?, the type it must be, an example value).
_OPTION_TYPES: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "reduction": (lambda v: _is_int(v) and v >= 1, "a whole number of at least 1", "16"),
    "se_placement": (lambda v: isinstance(v, str), "a string", '"standard"'),
    "se_stages": (_is_stages, "None or a list of stage numbers", "[3, 4]"),
    "se_squeeze": (lambda v: isinstance(v, str), "a string", '"avg"'),
    "se_gate": (lambda v: isinstance(v, str), "a string", '"sigmoid"'),
    "se_bias": (lambda v: isinstance(v, bool), "True or False", "True"),
    "se_min_hidden": (lambda v: _is_int(v) and v >= 1, "a whole number of at least 1", "8"),
    "norm": (lambda v: isinstance(v, str), "a string", '"batchnorm"'),
    "zero_init_residual": (lambda v: isinstance(v, bool), "True or False", "False"),
    "stem": (lambda v: isinstance(v, str), "a string", '"cifar"'),
}


def _se_config(enabled: bool, options: dict[str, Any]) -> SEConfig:
    se_opts = {k: options.pop(k) for k in _SE_KEYS if k in options}
    stages = se_opts.get("se_stages")
    return SEConfig(
        enabled=enabled,
        reduction=se_opts.get("reduction", 16),
        placement=se_opts.get("se_placement", "standard"),
        stages=None if stages is None else tuple(stages),
        squeeze=se_opts.get("se_squeeze", "avg"),
        gate=se_opts.get("se_gate", "sigmoid"),
        bias=se_opts.get("se_bias", True),
        min_hidden=se_opts.get("se_min_hidden", 1),
    )


def _reject_unknown(name: str, options: dict[str, Any]) -> None:
    if options:
        raise TypeError(
            f"Model {name!r} does not take option(s) {', '.join(sorted(options))}; it takes "
            f"{', '.join(_SE_KEYS)}, norm, zero_init_residual"
            + (", stem" if "resnet50" in name or "resnet101" in name else "")
            + "."
        )


def _bottleneck(
    name: str, layers: tuple[int, int, int, int], se: bool, num_classes: int, options: dict[str, Any]
) -> nn.Module:
    se_cfg = _se_config(se, options)
    stem = options.pop("stem", "cifar")
    norm = options.pop("norm", "batchnorm")
    zero = options.pop("zero_init_residual", False)
    _reject_unknown(name, options)
    return ResNet(layers, num_classes, stem, se_cfg, norm=norm, zero_init_residual=zero)


def _cifar(
    name: str, depth: int, se: bool, num_classes: int, options: dict[str, Any], preact: bool = False
) -> nn.Module:
    se_cfg = _se_config(se, options)
    norm = options.pop("norm", "batchnorm")
    zero = options.pop("zero_init_residual", False)
    _reject_unknown(name, options)
    return CifarResNet(depth, num_classes, se_cfg, preact=preact, norm=norm, zero_init_residual=zero)


# --------------------------------------------------------------------------- the registered models
@register_model
def resnet50(num_classes: int, **options: Any) -> nn.Module:
    """Bottleneck ResNet-50 (paper Table 1, left)."""
    return _bottleneck("resnet50", (3, 4, 6, 3), False, num_classes, options)


@register_model
def se_resnet50(num_classes: int, **options: Any) -> nn.Module:
    """SE-ResNet-50 (paper Table 1, middle)."""
    return _bottleneck("se_resnet50", (3, 4, 6, 3), True, num_classes, options)


@register_model
def resnet101(num_classes: int, **options: Any) -> nn.Module:
    """Bottleneck ResNet-101."""
    return _bottleneck("resnet101", (3, 4, 23, 3), False, num_classes, options)


@register_model
def se_resnet101(num_classes: int, **options: Any) -> nn.Module:
    """SE-ResNet-101 (paper Table 2)."""
    return _bottleneck("se_resnet101", (3, 4, 23, 3), True, num_classes, options)


@register_model
def resnet20(num_classes: int, **options: Any) -> nn.Module:
    """He et al.'s CIFAR ResNet-20 (3 stages of 3 basic blocks)."""
    return _cifar("resnet20", 20, False, num_classes, options)


@register_model
def se_resnet20(num_classes: int, **options: Any) -> nn.Module:
    """CIFAR SE-ResNet-20."""
    return _cifar("se_resnet20", 20, True, num_classes, options)


@register_model
def resnet32(num_classes: int, **options: Any) -> nn.Module:
    """CIFAR ResNet-32."""
    return _cifar("resnet32", 32, False, num_classes, options)


@register_model
def se_resnet32(num_classes: int, **options: Any) -> nn.Module:
    """CIFAR SE-ResNet-32."""
    return _cifar("se_resnet32", 32, True, num_classes, options)


@register_model
def resnet44(num_classes: int, **options: Any) -> nn.Module:
    """CIFAR ResNet-44."""
    return _cifar("resnet44", 44, False, num_classes, options)


@register_model
def se_resnet44(num_classes: int, **options: Any) -> nn.Module:
    """CIFAR SE-ResNet-44."""
    return _cifar("se_resnet44", 44, True, num_classes, options)


@register_model
def resnet56(num_classes: int, **options: Any) -> nn.Module:
    """CIFAR ResNet-56."""
    return _cifar("resnet56", 56, False, num_classes, options)


@register_model
def se_resnet56(num_classes: int, **options: Any) -> nn.Module:
    """CIFAR SE-ResNet-56."""
    return _cifar("se_resnet56", 56, True, num_classes, options)


@register_model
def resnet110(num_classes: int, **options: Any) -> nn.Module:
    """CIFAR ResNet-110."""
    return _cifar("resnet110", 110, False, num_classes, options)


@register_model
def se_resnet110(num_classes: int, **options: Any) -> nn.Module:
    """CIFAR SE-ResNet-110 (paper Table 4)."""
    return _cifar("se_resnet110", 110, True, num_classes, options)


@register_model
def preact_resnet164(num_classes: int, **options: Any) -> nn.Module:
    """Pre-activation ResNet-164 (He et al. 2016b, bottleneck units)."""
    return _cifar("preact_resnet164", 164, False, num_classes, options, preact=True)


@register_model
def se_preact_resnet164(num_classes: int, **options: Any) -> nn.Module:
    """SE-PreAct-ResNet-164 (paper Table 4)."""
    return _cifar("se_preact_resnet164", 164, True, num_classes, options, preact=True)
