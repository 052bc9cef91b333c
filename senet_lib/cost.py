"""What a network costs: parameters, multiply-accumulates, feature-map sizes and time (notebook 04,
the paper's Table 1 and §4).

:func:`count_macs` reports MACs = ``torch.utils.flop_counter`` FLOPs / 2 (the paper's "GFLOPs" are
MACs; 3.86 for ResNet-50), for convolutions and matrix products only: SE's channel-wise scale is
counted by :func:`se_scale_multiplies`. The counters also work on a model built on the meta device.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .env import synchronize
from .models.modes import eval_mode, module_mode
from .se import SqueezeExcitation, parse_block_name, se_blocks

__all__ = [
    "MacCount",
    "PAPER_ROWS",
    "count_macs",
    "count_parameters",
    "default_stage_modules",
    "parameters_by_child",
    "se_parameters_by_stage",
    "se_scale_multiplies",
    "stage_output_sizes",
    "time_forward_backward",
]

_STAGE_NAME = re.compile(r"^layer(\d+)$")


# --------------------------------------------------------------------------- parameters
def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``module`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameters_by_child(model: nn.Module) -> dict[str, int]:
    """Parameters per top-level child (``conv1``, ``bn1``, ``layer1`` … ``fc``) with any, in model order."""
    counts = {name: count_parameters(child) for name, child in model.named_children()}
    return {name: n for name, n in counts.items() if n > 0}


def _stage_of(name: str) -> int:
    try:
        return parse_block_name(name)[0]
    except ValueError:
        raise ValueError(
            f"SE block {name!r} has no paper name SE_<stage>_<block>: build the model with "
            "senet_lib.create_model so that its blocks are named."
        ) from None


def se_parameters_by_stage(model: nn.Module) -> dict[int, int]:
    """Parameters of the SE blocks per stage, numbered as in the paper's Table 1 (conv2_x = 2); ``{}`` without SE."""
    counts: dict[int, int] = {}
    for name, block in se_blocks(model).items():
        stage = _stage_of(name)
        counts[stage] = counts.get(stage, 0) + count_parameters(block)
    return dict(sorted(counts.items()))


# --------------------------------------------------------------------------- helpers
def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _example_input(model: nn.Module, input_size: Sequence[int]) -> torch.Tensor:
    if len(input_size) != 4:
        raise ValueError(f"input_size must be (N, C, H, W), got {tuple(input_size)}.")
    return torch.randn(*input_size, device=_model_device(model))


def _forward_once(
    model: nn.Module,
    input_size: Sequence[int],
    hooks: Sequence[tuple[nn.Module, Callable[..., None]]] = (),
    mode: contextlib.AbstractContextManager | None = None,
) -> None:
    """One gradient-free eval-mode forward pass on a random input with temporary hooks, inside ``context``;
    mode and hooks are restored."""
    x = _example_input(model, input_size)
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        with eval_mode(model), contextlib.nullcontext() if mode is None else mode, torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------- MACs
@dataclass(frozen=True)
class MacCount:
    """Multiply-accumulates of one forward pass: ``total``, ``by_operator``, ``by_module`` and ``input_size``."""

    total: int
    by_operator: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)
    input_size: tuple[int, ...] = ()

    @property
    def per_image(self) -> float:
        """MACs for one image (``total / N``)."""
        return self.total / self.input_size[0]

    @property
    def giga(self) -> float:
        """MACs per image in units of 10⁹ (the paper's "GFLOPs")."""
        return self.per_image / 1e9


def count_macs(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> MacCount:
    """Count the multiply-accumulates of one forward pass of ``model`` on a random input (module docstring)."""
    counter = FlopCounterMode(display=False)
    _forward_once(model, input_size, mode=counter)
    flops = counter.get_flop_counts()
    by_module = {name: sum(ops.values()) // 2 for name, ops in flops.items() if name != "Global"}
    by_operator = {str(op): n // 2 for op, n in flops.get("Global", {}).items()}
    return MacCount(
        total=counter.get_total_flops() // 2,
        by_operator=by_operator,
        by_module=by_module,
        input_size=tuple(int(v) for v in input_size),
    )


def se_scale_multiplies(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> int:
    """Element-wise multiplications of all SE scale steps (Eq. 4) in one forward pass (``C × H × W`` each),
    which :func:`count_macs` does not see."""
    total = 0

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        nonlocal total
        total += inputs[0].numel()

    blocks = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
    _forward_once(model, input_size, hooks=[(b, hook) for b in blocks])
    return total


# --------------------------------------------------------------------------- Table 1
#: The paper's Table 1 row names for the torchvision-style module names.
PAPER_ROWS = {
    "conv1": "conv1",
    "maxpool": "pool",
    "layer1": "conv2_x",
    "layer2": "conv3_x",
    "layer3": "conv4_x",
    "layer4": "conv5_x",
    "fc": "fc",
}


def default_stage_modules(model: nn.Module) -> list[str]:
    """The top-level children whose outputs make Table 1: ``conv1``, ``maxpool`` (when it is a
    real pooling layer) and ``layer1`` … ``layerN``."""
    names = []
    for name, child in model.named_children():
        is_pool = name == "maxpool" and not isinstance(child, nn.Identity)
        if name == "conv1" or is_pool or _STAGE_NAME.match(name):
            names.append(name)
    return names


def stage_output_sizes(
    model: nn.Module,
    input_size: Sequence[int] = (1, 3, 224, 224),
    modules: Sequence[str] | None = None,
) -> dict[str, tuple[int, ...]]:
    """The output shape ``(C, H, W)`` of each of ``modules`` (default :func:`default_stage_modules`), in
    execution order, from one forward pass with hooks."""
    names = list(modules) if modules is not None else default_stage_modules(model)
    lookup = dict(model.named_modules())
    missing = [n for n in names if n not in lookup]
    if missing:
        raise ValueError(f"The model has no module(s) {', '.join(missing)}.")
    shapes: dict[str, tuple[int, ...]] = {}

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            shapes[name] = tuple(output.shape[1:])

        return hook

    _forward_once(model, input_size, hooks=[(lookup[n], make_hook(n)) for n in names])
    return shapes


# --------------------------------------------------------------------------- timing
def time_forward_backward(
    model: nn.Module,
    batch_size: int,
    image_size: int = 224,
    repeats: int = 5,
    warmup: int = 2,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    num_classes: int | None = None,
) -> dict:
    """Time one training step's forward + backward pass of ``model`` (no optimiser step).

    ``warmup`` untimed steps first; every timed step is bracketed by device synchronisation.
    ``autocast_dtype`` runs the forward under ``torch.autocast``. Returns ``median_s``, ``min_s``,
    ``max_s``, ``mean_s``, ``stdev_s``, ``times_s``, ``images_per_s`` and the settings.
    """
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise ValueError("repeats and batch_size must be at least 1 and warmup at least 0.")
    device = torch.device(device) if device is not None else _model_device(model)
    model.to(device)
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    if num_classes is None:
        with eval_mode(model), torch.no_grad():
            num_classes = model(x[:1]).shape[1]
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(
            device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
        ):
            loss = loss_fn(model(x), y)
        loss.backward()

    times = []
    with module_mode(model, True):
        try:
            for _ in range(warmup):
                step()
            for _ in range(repeats):
                synchronize(device)
                start = time.perf_counter()
                step()
                synchronize(device)
                times.append(time.perf_counter() - start)
        finally:
            model.zero_grad(set_to_none=True)
    median = statistics.median(times)
    return {
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "mean_s": statistics.fmean(times),
        "stdev_s": statistics.stdev(times) if len(times) > 1 else 0.0,
        "times_s": times,
        "images_per_s": batch_size / median,
        "batch_size": batch_size,
        "image_size": image_size,
        "repeats": repeats,
        "warmup": warmup,
        "device": str(device),
        "dtype": str(autocast_dtype or torch.float32).replace("torch.", ""),
    }
