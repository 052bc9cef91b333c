"""Building pieces shared by every residual network in :mod:`senet_lib.models`:
normalisation and convolution choices, SE placement inside a residual unit (with the fused tail
of the standard placement), and init."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx
from torch.nn.modules import module as _module_hooks

from ..se import SqueezeExcitation, gate_map, paper_name

NORMS = ("batchnorm", "groupnorm", "groupnorm_ws")
#: Paper Fig. 5 / Table 14, and ``3x3``: inside the branch, after its 3×3 convolution (Table 15).
PLACEMENTS = ("standard", "pre", "post", "identity", "3x3")


class StdConv2d(nn.Conv2d):
    """Conv2d with weight standardisation (Qiao et al. 2019): each filter is normalised to zero
    mean and unit variance before use. Pairs with GroupNorm (``norm="groupnorm_ws"``)."""

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        w = (w - mean) / torch.sqrt(var + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise one clear ValueError when ``value`` is not among ``choices``."""
    if value not in choices:
        raise ValueError(f"Unknown {kind} {value!r}: use one of {', '.join(choices)}.")


def conv_layer(norm: str) -> type[nn.Conv2d]:
    """The convolution class that goes with ``norm`` (weight-standardised for ``groupnorm_ws``)."""
    check_choice("norm", norm, NORMS)
    return StdConv2d if norm == "groupnorm_ws" else nn.Conv2d


def norm_layer(norm: str, channels: int) -> nn.Module:
    """BatchNorm2d, or GroupNorm with up to 32 groups (the largest divisor of 32 dividing C)."""
    check_choice("norm", norm, NORMS)
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(math.gcd(32, channels), channels)


class SEConfig:
    """How residual units get their SE block: reduction, placement (paper Fig. 5), which
    stages (paper numbering, conv2_x = stage 2) and the block's own options."""

    def __init__(
        self,
        enabled: bool,
        reduction: int = 16,
        placement: str = "standard",
        stages: tuple[int, ...] | None = None,
        squeeze: str = "avg",
        gate: str = "sigmoid",
        bias: bool = True,
        min_hidden: int = 1,
    ) -> None:
        check_choice("se_placement", placement, PLACEMENTS)
        self.enabled = enabled
        self.reduction = reduction
        self.placement = placement
        self.stages = None if stages is None else tuple(int(s) for s in stages)
        self.block_kwargs = {"squeeze": squeeze, "gate": gate, "bias": bias, "min_hidden": min_hidden}

    def check_stages(self, valid: tuple[int, ...]) -> None:
        if self.stages is not None and not set(self.stages) <= set(valid):
            raise ValueError(
                f"se_stages {self.stages} is not a subset of this network's stages {valid} "
                "(numbered as in the paper's Table 1: conv2_x is stage 2)."
            )

    def make(
        self, stage: int, block: int, in_channels: int, out_channels: int, inner_channels: int | None = None
    ) -> SqueezeExcitation | None:
        """The SE block for unit ``block`` (1-based) of ``stage``, or None where there is none."""
        if not self.enabled or (self.stages is not None and stage not in self.stages):
            return None
        channels = {"pre": in_channels, "3x3": inner_channels or out_channels}.get(
            self.placement, out_channels
        )
        se = SqueezeExcitation(channels, self.reduction, **self.block_kwargs)
        se.paper_name = paper_name(stage, block)
        return se


def make_stages(
    model: nn.Module,
    in_channels: int,
    widths: Sequence[int],
    depths: Sequence[int],
    expansion: int,
    se: SEConfig,
    make_block: Callable[[int, int, int, nn.Module | None], nn.Module],
) -> int:
    """Build ``model.layer1``, ``layer2``, … : stage ``i`` has ``depths[i]`` units of ``widths[i]``
    planes, stride 2 in the first unit of each later stage; returns the last stage's output channels."""
    for index, (planes, blocks) in enumerate(zip(widths, depths, strict=True)):
        units = []
        for b in range(blocks):
            stride = 2 if (b == 0 and index > 0) else 1
            out_channels = planes * expansion
            block_se = se.make(index + 2, b + 1, in_channels, out_channels, inner_channels=planes)
            units.append(make_block(in_channels, planes, stride, block_se))
            in_channels = out_channels
        setattr(model, f"layer{index + 1}", nn.Sequential(*units))
    return in_channels


def residual_forward(
    x: Tensor,
    branch: Callable[[Tensor], Tensor],
    shortcut: Callable[[Tensor], Tensor],
    se: nn.Module | None,
    placement: str,
    after_sum: Callable[[Tensor], Tensor],
    fused: bool = False,
) -> Tensor:
    """One residual unit with its SE block where paper Fig. 5 puts it (``standard``, ``pre``, ``post``,
    ``identity``; ``3x3`` is applied inside ``branch``).

    With ``fused``, in a step that records gradients and outside ``torch.compile``, the standard
    tail runs as :func:`scale_add_relu` where :func:`fusable` allows it.
    """
    identity = shortcut(x)
    if se is None or placement == "3x3":
        return after_sum(branch(x) + identity)
    if placement == "pre":
        return after_sum(branch(se(x)) + identity)
    if placement == "identity":
        return after_sum(branch(x) + se(identity))
    if placement == "post":
        return se(after_sum(branch(x) + identity))
    if fused and torch.is_grad_enabled() and not torch.compiler.is_compiling() and fusable(se, after_sum):
        u = branch(x)
        s = gate_map(se.excite(u), u)
        if identity.dtype == u.dtype and identity.shape == u.shape:
            return scale_add_relu(u, s, identity, relu=isinstance(after_sum, nn.ReLU))
        return after_sum(u * s + identity)  # what se(u) + identity computes, in the same dtypes
    return after_sum(se(branch(x)) + identity)


def fusable(se: nn.Module, after_sum: Callable[[Tensor], Tensor]) -> bool:
    """Whether a standard tail ``after_sum(se(u) + identity)`` may run fused: a plain
    :class:`SqueezeExcitation` and ReLU without hooks (hooks on the gate still run)."""
    if not (isinstance(se, SqueezeExcitation) and type(se).forward is SqueezeExcitation.forward):
        return False
    if not isinstance(after_sum, nn.ReLU | nn.Identity):
        return False
    if _module_hooks._global_forward_hooks or _module_hooks._global_forward_pre_hooks:
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in (se, after_sum))


def scale_add_relu(u: Tensor, s: Tensor, identity: Tensor, relu: bool = True) -> Tensor:
    """``relu(u * s + identity)`` (no ReLU when ``relu`` is False) in one ``addcmul`` and an in-place ReLU,
    keeping only ``u``, ``s`` and the output for backward. May differ in the last bit (one rounding)."""
    return _ScaleAddReLU.apply(u, s, identity, relu)


class _ScaleAddReLU(torch.autograd.Function):
    """:func:`scale_add_relu`. Backward: ``g_identity = g · [out > 0]``, ``g_u = g_identity · s``,
    ``g_s = Σ_{H,W} g_identity · u`` (summed to ``s``'s shape, as autograd does for a broadcast)."""

    @staticmethod
    def forward(ctx: FunctionCtx, u: Tensor, s: Tensor, identity: Tensor, relu: bool) -> Tensor:
        out = torch.addcmul(identity, u, s)
        if relu:
            out.relu_()
        ctx.relu = relu
        ctx.save_for_backward(u, s, out if relu else None)
        return out

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        u, s, out = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, out, 0) if ctx.relu else grad
        need_u, need_s, need_identity, _ = ctx.needs_input_grad
        grad_u = grad * s if need_u else None
        grad_s = (grad * u).sum_to_size(s.shape) if need_s else None
        return grad_u, grad_s, grad if need_identity else None, None


def set_fused_se(model: nn.Module, enabled: bool = True) -> int:
    """Switch every residual unit of ``model`` to the fused SE tail or (``enabled=False``) the reference
    one; not part of the state dict. Returns how many units were switched."""
    units = [m for m in model.modules() if hasattr(type(m), "fused_se")]
    for unit in units:
        unit.fused_se = enabled
    return len(units)


def inner_se(x: Tensor, se: nn.Module | None, placement: str) -> Tensor:
    """``se(x)`` for the ``3x3`` placement (paper Table 15), else ``x``: a branch calls it on the
    output of its 3×3 convolution's stage."""
    return se(x) if se is not None and placement == "3x3" else x


def init_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """Kaiming-normal convolutions, unit/zero norm affine; ``zero_init_residual`` zeroes each branch's last norm."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        zero_residual_branches(model)


def zero_residual_branches(model: nn.Module) -> int:
    """Zero the scale of the last norm (or conv) of every residual branch, so each unit starts as
    the identity (Goyal et al. 2017); returns how many branches it zeroed. Draws no random numbers."""
    count = 0
    for m in model.modules():
        last = getattr(m, "last_branch_layer", None)
        if callable(last):
            nn.init.zeros_(last().weight)
            count += 1
    return count
