"""The Squeeze-and-Excitation block (Hu et al., arXiv 1709.01507 v4, §3).

The block is built from three steps that notebooks teach one at a time:

1. :class:`Squeeze` (Eq. 2) — global information embedding, ``z_c = mean_{i,j} u_c(i, j)``.
2. :class:`Excitation` (Eq. 3) — ``s = σ(W2 δ(W1 z))``, a bottleneck of width ``C/r``.
3. :func:`scale` (Eq. 4) — channel-wise rescaling, ``x̃_c = s_c · u_c``.

:class:`SqueezeExcitation` chains them. Its gate is the named submodule
``block.excitation.gate`` (also reachable as ``block.gate``), so a forward hook on it sees the
excitation vector ``s`` of shape ``[N, C]``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

__all__ = [
    "Excitation",
    "GATES",
    "PAPER_NAME",
    "SQUEEZES",
    "Squeeze",
    "SqueezeExcitation",
    "hidden_width",
    "make_gate",
    "override_gate",
    "paper_name",
    "parse_block_name",
    "scale",
    "se_blocks",
    "squeeze",
]

SQUEEZES = ("avg", "max", "avgmax", "none")
GATES = ("sigmoid", "hardsigmoid", "tanh", "relu")


def squeeze(x: Tensor, mode: str = "avg") -> Tensor:
    """Squeeze ``[N, C, H, W]`` feature maps into a ``[N, C]`` channel descriptor.

    ``avg`` is the paper's Eq. 2: a mean over H and W. (A plain reduction works on every backend
    and spatial size; ``adaptive_avg_pool2d`` does not on MPS.) ``max`` takes the spatial maximum
    (paper Table 11); ``avgmax`` is the average of the two. ``none`` returns the feature maps
    unchanged (paper Table 16, "NoSqueeze"): the excitation then runs at every position.
    """
    if x.dim() != 4:
        raise ValueError(f"squeeze expects [N, C, H, W] feature maps, got shape {tuple(x.shape)}.")
    if mode == "avg":
        return _spatial_mean(x)
    if mode == "max":
        return x.amax(dim=(2, 3))
    if mode == "avgmax":
        return 0.5 * (_spatial_mean(x) + x.amax(dim=(2, 3)))
    if mode == "none":
        return x
    raise ValueError(f"Unknown squeeze {mode!r}: use one of {', '.join(SQUEEZES)}.")


def _spatial_mean(x: Tensor) -> Tensor:
    """The mean over H and W, as a sum divided by H·W where that is safe.

    Same value as ``x.mean(dim=(2, 3))``, but on the CPU ``mean`` first copies a whole bf16 tensor
    to fp32, and its backward is slow for channels-last tensors: torch.profiler put most of
    SE-ResNet-20's extra cost over ResNet-20 in a bf16 CPU training step there. ``sum``
    accumulates in fp32 without the copy. fp16 keeps ``mean``: a sum over a large map could
    overflow fp16 before the division.
    """
    if x.dtype == torch.float16:
        return x.mean(dim=(2, 3))
    if _MeanDenseGrad.wanted(x):
        return _MeanDenseGrad.apply(x)
    return x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])


class _MeanDenseGrad(torch.autograd.Function):
    """``x.sum(dim=(2, 3)) / (H·W)`` whose backward hands on a whole map, not a broadcast view.

    In a network the squeeze's gradient is added to the one the scale step gives the same
    feature map. Autograd's own backward returns ``grad[:, :, None, None].expand(...)``, and on
    the CPU torch adds such a broadcast bf16 tensor to a channels-last one element by element
    unless the channels fill whole vector registers (a multiple of 32): torch.profiler put that
    addition, in the 16-channel first stage of SE-ResNet-20, among the largest costs SE adds to a
    bf16 training step. Writing the map out in ``x``'s memory format first makes the addition an
    ordinary vectorised one; with a multiple of 32 channels the broadcast one is as fast, so
    autograd's is kept. Same values as autograd's: ``grad / (H·W)`` in ``grad``'s dtype,
    broadcast over H and W.
    """

    @staticmethod
    def wanted(x: Tensor) -> bool:
        """Whether ``x`` is the case this is for: a bf16 channels-last CPU map that needs a gradient
        and whose channels are not a multiple of 32."""
        return (
            x.dtype == torch.bfloat16
            and x.device.type == "cpu"
            and x.shape[1] % 32 != 0
            and x.requires_grad
            and torch.is_grad_enabled()
            and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)
        )

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor) -> Tensor:
        ctx.shape = x.shape
        return x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> Tensor:
        n, c, h, w = ctx.shape
        dense = torch.empty(
            ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=torch.channels_last
        )
        return dense.copy_((grad / (h * w))[:, :, None, None].expand(n, c, h, w))


def scale(u: Tensor, s: Tensor) -> Tensor:
    """Eq. 4: multiply each channel map ``u[:, c]`` by its scalar ``s[:, c]``.

    A ``[N, C, H, W]`` excitation (no squeeze, paper Table 16) multiplies element by element."""
    return u * gate_map(s, u)


def gate_map(s: Tensor, u: Tensor) -> Tensor:
    """The excitation ``s`` as the factor :func:`scale` multiplies ``u`` by: ``[N, C, 1, 1]`` (or the
    ``[N, C, H, W]`` map of no squeeze) in ``u``'s dtype."""
    return (s if s.dim() == 4 else s[:, :, None, None]).to(u.dtype)


def make_gate(name: str) -> nn.Module:
    """The gating non-linearity σ of Eq. 3 (paper Table 12 compares sigmoid, tanh and ReLU)."""
    gates: dict[str, Callable[[], nn.Module]] = {
        "sigmoid": nn.Sigmoid,
        "hardsigmoid": nn.Hardsigmoid,
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
    }
    if name not in gates:
        raise ValueError(f"Unknown gate {name!r}: use one of {', '.join(GATES)}.")
    return gates[name]()


def hidden_width(channels: int, reduction: int = 16, min_hidden: int = 1) -> int:
    """The bottleneck width ``C/r`` (at least ``min_hidden``)."""
    if channels < 1 or reduction < 1:
        raise ValueError(f"channels and reduction must be positive, got {channels} and {reduction}.")
    return max(channels // reduction, min_hidden)


class Squeeze(nn.Module):
    """Module form of :func:`squeeze`: ``[N, C, H, W] → [N, C]``."""

    def __init__(self, mode: str = "avg") -> None:
        super().__init__()
        if mode not in SQUEEZES:
            raise ValueError(f"Unknown squeeze {mode!r}: use one of {', '.join(SQUEEZES)}.")
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        return squeeze(x, self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class Excitation(nn.Module):
    """Eq. 3: ``s = gate(fc2(relu(fc1(z))))`` with ``fc1: C → hidden`` and ``fc2: hidden → C``.

    Given ``[N, C]`` descriptors it is two FC layers; given ``[N, C, H, W]`` feature maps (no
    squeeze, paper Table 16) the same weights act as two 1×1 convolutions at every position, so
    the parameters are the same and the cost grows with H·W.
    """

    def __init__(self, channels: int, hidden: int, gate: str = "sigmoid", bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)
        self.gate = make_gate(gate)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() == 4:
            return self.gate(_conv1x1(self.relu(_conv1x1(z, self.fc1)), self.fc2))
        return self.gate(self.fc2(self.relu(self.fc1(z))))


def _conv1x1(x: Tensor, fc: nn.Linear) -> Tensor:
    """``fc`` applied at every position of ``[N, C, H, W]`` maps: a 1×1 convolution with its weights."""
    return F.conv2d(x, fc.weight[:, :, None, None], fc.bias)


class SqueezeExcitation(nn.Module):
    """The SE block: squeeze, excite, scale (paper Fig. 1).

    Args:
        channels: C, the number of channels of the feature maps it recalibrates.
        reduction: r, the bottleneck ratio (paper default 16; Table 10 compares 2…32).
        squeeze: ``avg`` (paper), ``max`` or ``avgmax`` (Table 11); ``none`` (Table 16): no pooling,
            the excitation's FC layers act as 1×1 convolutions on the whole map and ``s`` is
            ``[N, C, H, W]``.
        gate: ``sigmoid`` (paper), ``hardsigmoid``, ``tanh`` or ``relu`` (Table 12).
        bias: whether the two FC layers have biases (the paper's ablations in §6 use none).
        min_hidden: the smallest bottleneck width allowed.

    Parameter count: ``2·C·(C/r) + C/r + C`` with biases, ``2·C·(C/r)`` without (Eq. 5 per block).

    Attributes:
        paper_name: set by the model builders to the paper's name, e.g. ``"SE_2_3"``
            (stage 2, block 3, stages numbered as in Table 1); ``None`` for a stand-alone block.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        squeeze: str = "avg",
        gate: str = "sigmoid",
        bias: bool = True,
        min_hidden: int = 1,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.hidden = hidden_width(channels, reduction, min_hidden)
        self.squeeze = Squeeze(squeeze)
        self.excitation = Excitation(channels, self.hidden, gate=gate, bias=bias)
        self.paper_name: str | None = None

    @property
    def gate(self) -> nn.Module:
        """The gate submodule; a forward hook on it receives ``s`` (``[N, C]``)."""
        return self.excitation.gate

    def excite(self, x: Tensor) -> Tensor:
        """The excitation ``s`` of ``x`` (squeeze, then excitation through :attr:`gate`, whose hooks
        see it): what :meth:`forward` scales ``x`` by, for callers that apply the scale themselves."""
        return self.excitation(self.squeeze(x))

    def forward(self, x: Tensor) -> Tensor:
        return scale(x, self.excite(x))

    def extra_repr(self) -> str:
        name = f", paper_name={self.paper_name!r}" if self.paper_name else ""
        return f"channels={self.channels}, reduction={self.reduction}, hidden={self.hidden}{name}"


#: The paper's name of an SE block, ``SE_<stage>_<block>`` (stage as in Table 1, block counted from 1).
PAPER_NAME = re.compile(r"^SE_(\d+)_(\d+)$")


def paper_name(stage: int, block: int) -> str:
    """``(4, 6)`` → ``"SE_4_6"``: the name the model builders give unit ``block`` of ``stage``."""
    return f"SE_{stage}_{block}"


def parse_block_name(name: str) -> tuple[int, int]:
    """``"SE_4_6"`` → ``(4, 6)`` (stage as in paper Table 1, block counted from 1)."""
    match = PAPER_NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a paper block name: expected SE_<stage>_<block>, e.g. 'SE_4_6'.")
    return int(match.group(1)), int(match.group(2))


def se_blocks(model: nn.Module) -> dict[str, SqueezeExcitation]:
    """All SE blocks of ``model`` keyed by their paper name (or module path when unnamed), in order."""
    return {
        (m.paper_name or name): m for name, m in model.named_modules() if isinstance(m, SqueezeExcitation)
    }


@contextlib.contextmanager
def override_gate(
    blocks: SqueezeExcitation | Sequence[SqueezeExcitation],
    value: float | Tensor = 1.0,
    channels: Sequence[int] | Tensor | None = None,
) -> Iterator[None]:
    """Temporarily replace the excitation ``s`` of ``blocks`` by ``value``.

    With ``channels`` only those channel indices are replaced (e.g. ``value=0`` switches them
    off); otherwise every channel is. ``value=1`` everywhere turns an SE block into the
    identity. A tensor ``value`` holds one value per replaced channel, the same for every image.
    The hooks are removed on exit, also after an exception.
    """
    if isinstance(blocks, SqueezeExcitation):
        blocks = [blocks]
    index = None if channels is None else torch.as_tensor(channels, dtype=torch.long)

    def hook(_module: nn.Module, _inputs: tuple, s: Tensor) -> Tensor:
        s = s.clone()
        fill = value.to(s).reshape(-1, *[1] * (s.dim() - 2)) if isinstance(value, Tensor) else value
        if index is None:
            s[:] = fill
        else:
            s[:, index.to(s.device)] = fill
        return s

    handles = [block.gate.register_forward_hook(hook) for block in blocks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
