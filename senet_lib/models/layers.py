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
    ) -> None:
        check_choice("se_placement", placement, PLACEMENTS)
        self.enabled = enabled
        self.reduction = reduction
        self.placement = placement
        self.stages = None if stages is None else tuple(int(s) for s in stages)
        self.block_kwargs = {"squeeze": squeeze, "gate": gate, "bias": bias}

    def check_stages(self, valid: tuple[int, ...]) -> None:
        if self.stages is not None and not set(self.stages) <= set(valid):
            raise ValueError(
                f"se_stages {self.stages} is not a subset of this network's stages {valid} "
                "(numbered as in the paper's Table 1: conv2_x is stage 2)."
            )

    def make(
        self, stage: int, block: int, in_channels: int, out_channels: int, inner_channels: int | None = None
    ) -> SqueezeExcitation | None:
        """The SE block for unit ``block`` (1-based) of ``stage``, or None where there is none.

        It recalibrates ``in_channels`` for ``pre``, ``inner_channels`` (the 3×3 convolution's
        output; default ``out_channels``) for ``3x3``, else ``out_channels``."""
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
    """Build ``model.layer1``, ``layer2``, … (torchvision's ``_make_layer``): stage ``i`` has
    ``depths[i]`` units of ``widths[i]`` planes (``× expansion`` output channels), the first unit of
    every stage after the first with stride 2, each given its SE block (paper stage numbers start
    at 2: conv2_x). ``make_block(in_channels, planes, stride, se_block)`` builds one unit.

    Returns:
        The output channels of the last stage.
    """
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
    """One residual unit with its SE block where paper Fig. 5 puts it.

    ``standard``: on the branch output, before the sum. ``pre``: on the branch input.
    ``post``: after the sum (and after ``after_sum``, the unit's final ReLU if it has one).
    ``identity``: on the shortcut, in parallel to the branch. ``3x3``: inside ``branch``, which
    applies it itself (:func:`inner_se`), so here the unit is a plain one.

    With ``fused``, in a step that records gradients, the standard placement's tail
    ``after_sum(u * s + identity)`` runs as one operation (:func:`scale_add_relu`), where
    :func:`fusable` allows it and ``u`` and ``identity`` share a dtype. Without gradients
    (evaluation, excitation statistics, knock-outs), and inside ``torch.compile`` (which fuses
    by itself), the unit takes the reference steps, so what is measured there is unchanged.
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
    """Whether a standard-placement tail ``after_sum(se(u) + identity)`` may run fused.

    It may when ``se`` is a plain :class:`SqueezeExcitation` and ``after_sum`` a ReLU or nothing,
    and neither has hooks (nor are there global module hooks): the fused tail calls neither
    module, so hooks on them would not run. The gate inside ``se`` is still called, so hooks on
    it (the excitation recorder, :func:`senet_lib.se.override_gate`) see and change ``s`` as always.
    """
    if not (isinstance(se, SqueezeExcitation) and type(se).forward is SqueezeExcitation.forward):
        return False
    if not isinstance(after_sum, nn.ReLU | nn.Identity):
        return False
    if _module_hooks._global_forward_hooks or _module_hooks._global_forward_pre_hooks:
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in (se, after_sum))


def scale_add_relu(u: Tensor, s: Tensor, identity: Tensor, relu: bool = True) -> Tensor:
    """``relu(u * s + identity)`` (without the ReLU when ``relu`` is False) in fewer passes over
    the feature maps than the three operations: forward one ``addcmul`` and an in-place ReLU,
    where they write ``u * s``, then the sum, then ReLU it; backward keeps only ``u``, ``s`` and
    the output (its sign is the ReLU's mask).

    ``s`` is the excitation broadcastable to ``u`` (``[N, C, 1, 1]`` or ``[N, C, H, W]``); ``u``,
    ``s`` and ``identity`` share one dtype (the caller casts ``s`` as :func:`senet_lib.se.scale`
    does). ``addcmul`` rounds ``u * s + identity`` once where the two operations round twice, so
    the output can differ from theirs in the last bit; given the same output sign, the gradients
    are theirs bit for bit (the same operations).
    """
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
    """Switch every residual unit of ``model`` to the fused SE tail (the default) or, with
    ``enabled=False``, to the reference one (``se(u)``, the sum and the ReLU as separate steps).
    The choice is a plain attribute (``unit.fused_se``): it is not in the state dict, the
    architecture or run names. Returns how many units were switched."""
    units = [m for m in model.modules() if hasattr(type(m), "fused_se")]
    for unit in units:
        unit.fused_se = enabled
    return len(units)


def inner_se(x: Tensor, se: nn.Module | None, placement: str) -> Tensor:
    """``se(x)`` for the ``3x3`` placement (paper Table 15), else ``x``: a branch calls it on the
    output of its 3×3 convolution's stage."""
    return se(x) if se is not None and placement == "3x3" else x


def init_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """Kaiming-normal (fan-out, ReLU) convolutions, unit/zero norm affine parameters; with
    ``zero_init_residual`` the last norm (or conv) of every residual branch starts at zero so
    each unit begins as the identity (Goyal et al. 2017)."""
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
