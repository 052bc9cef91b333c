"""One factory for every network: :func:`create_model` and :func:`list_models` (timm's style).

Each registered builder takes ``num_classes`` and keyword options. Options shared by all:

``reduction`` (16)            SE bottleneck ratio r (paper Table 10)
``se_placement``              ``standard`` | ``pre`` | ``post`` | ``identity`` (paper Fig. 5, Table 14)
``se_stages`` (all)           which stages get SE, paper numbering (conv2_x is 2; Table 13)
``se_squeeze`` / ``se_gate``  the block's squeeze and gate (Tables 11 and 12)
``se_bias`` (True)            FC biases in the SE block (the paper's §6 ablations have none)
``norm``                      ``batchnorm`` | ``groupnorm`` | ``groupnorm_ws``
``zero_init_residual``        start each residual branch at zero

Bottleneck ResNet-50/101 also take ``stem`` = ``cifar`` (default) | ``imagenet``.
The options are ignored (except ``norm``, ``zero_init_residual`` and ``stem``) by plain ResNets.
"""

from __future__ import annotations

import fnmatch
import numbers
from collections.abc import Callable
from typing import Any

from torch import nn

from .cifar_resnet import CifarResNet
from .layers import SEConfig
from .resnet import ResNet

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_SE_KEYS = ("reduction", "se_placement", "se_stages", "se_squeeze", "se_gate", "se_bias")


def register_model(name: str, builder: Callable[..., nn.Module]) -> None:
    """Add a builder ``builder(num_classes, **options) -> nn.Module`` under ``name``."""
    if name in _BUILDERS:
        raise ValueError(f"A model named {name!r} is already registered.")
    _BUILDERS[name] = builder


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (e.g. ``"se_*"``), sorted."""
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, num_classes: int = 10, **options: Any) -> nn.Module:
    """Build the network ``name`` with ``num_classes`` outputs.

    The returned module has an ``arch_config`` attribute (its name, classes and options: plain
    values) that checkpoints store so that loading can name a mismatched architecture.

    Raises:
        ValueError: unknown model name (the message lists the valid ones) or option value.
        TypeError: an option this model does not take, or an option of the wrong type (one
            sentence naming the option and the type it takes).
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
    model.arch_config = {"name": name, "num_classes": num_classes, **options}
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
    )


def _reject_unknown(name: str, options: dict[str, Any]) -> None:
    if options:
        raise TypeError(
            f"Model {name!r} does not take option(s) {', '.join(sorted(options))}; it takes "
            f"{', '.join(_SE_KEYS)}, norm, zero_init_residual"
            + (", stem" if "resnet50" in name or "resnet101" in name else "")
            + "."
        )


def _bottleneck_builder(name: str, layers: tuple[int, int, int, int], se: bool) -> Callable[..., nn.Module]:
    def build(num_classes: int, **options: Any) -> nn.Module:
        se_cfg = _se_config(se, options)
        stem = options.pop("stem", "cifar")
        norm = options.pop("norm", "batchnorm")
        zero = options.pop("zero_init_residual", False)
        _reject_unknown(name, options)
        return ResNet(layers, num_classes, stem, se_cfg, norm=norm, zero_init_residual=zero)

    return build


def _cifar_builder(name: str, depth: int, se: bool, preact: bool) -> Callable[..., nn.Module]:
    def build(num_classes: int, **options: Any) -> nn.Module:
        se_cfg = _se_config(se, options)
        norm = options.pop("norm", "batchnorm")
        zero = options.pop("zero_init_residual", False)
        _reject_unknown(name, options)
        return CifarResNet(depth, num_classes, se_cfg, preact=preact, norm=norm, zero_init_residual=zero)

    return build


for _name, _layers in {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}.items():
    register_model(_name, _bottleneck_builder(_name, _layers, se=False))
    register_model("se_" + _name, _bottleneck_builder("se_" + _name, _layers, se=True))
for _depth in (20, 32, 44, 56, 110):
    register_model(f"resnet{_depth}", _cifar_builder(f"resnet{_depth}", _depth, se=False, preact=False))
    register_model(f"se_resnet{_depth}", _cifar_builder(f"se_resnet{_depth}", _depth, se=True, preact=False))
register_model("preact_resnet164", _cifar_builder("preact_resnet164", 164, se=False, preact=True))
register_model("se_preact_resnet164", _cifar_builder("se_preact_resnet164", 164, se=True, preact=True))
