"""He et al.'s CIFAR ResNets and their SE versions (SE paper §5, Tables 4–5): ``resnet20/32/44/56/110``
(basic blocks, option-A shortcuts) and ``preact_resnet164`` (pre-activation bottlenecks). Stages are
numbered 2, 3, 4, so SE blocks are named ``SE_2_1`` …"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import (
    SEConfig,
    conv_layer,
    init_weights,
    inner_se,
    make_stages,
    norm_layer,
    residual_forward,
)


class PadShortcut(nn.Module):
    """He et al.'s option A: subsample by ``stride`` and zero-pad the extra channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    """3×3 → 3×3 residual unit with an optional SE block (``3x3`` placement: after the first 3×3
    convolution, its norm and ReLU; the second one ends the branch, where ``standard`` sits)."""

    #: Run the standard placement's tail (scale, sum, ReLU) fused; False runs the reference steps
    #: (:func:`~senet_lib.models.layers.set_fused_se` switches a whole network).
    fused_se = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        norm: str,
        se: nn.Module | None,
        placement: str,
    ) -> None:
        super().__init__()
        conv = conv_layer(norm)
        self.conv1 = conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(norm, out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = norm_layer(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = (
            PadShortcut(in_channels, out_channels, stride)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.se = se
        self.placement = placement

    def last_branch_layer(self) -> nn.Module:
        return self.bn2

    def _branch(self, x: Tensor) -> Tensor:
        out = inner_se(self.relu(self.bn1(self.conv1(x))), self.se, self.placement)
        return self.bn2(self.conv2(out))

    def forward(self, x: Tensor) -> Tensor:
        return residual_forward(
            x, self._branch, self.shortcut, self.se, self.placement, self.relu, self.fused_se
        )


class PreActBottleneck(nn.Module):
    """BN-ReLU-1×1 → BN-ReLU-3×3 → BN-ReLU-1×1 (expansion 4); no activation after the sum.
    The ``3x3`` placement puts SE on the 3×3 convolution's output (``planes`` channels)."""

    #: Run the standard placement's tail (scale, sum, ReLU) fused; False runs the reference steps
    #: (:func:`~senet_lib.models.layers.set_fused_se` switches a whole network).
    fused_se = True

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int, norm: str, se: nn.Module | None, placement: str
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        conv = conv_layer(norm)
        self.bn1 = norm_layer(norm, in_channels)
        self.conv1 = conv(in_channels, planes, 1, bias=False)
        self.bn2 = norm_layer(norm, planes)
        self.conv2 = conv(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = norm_layer(norm, planes)
        self.conv3 = conv(planes, out_channels, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = conv(in_channels, out_channels, 1, stride=stride, bias=False)
        self.se = se
        self.placement = placement

    def last_branch_layer(self) -> nn.Module:
        return self.conv3

    def _branch(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = inner_se(self.conv2(self.relu(self.bn2(out))), self.se, self.placement)
        return self.conv3(self.relu(self.bn3(out)))

    def _shortcut(self, x: Tensor) -> Tensor:
        # He et al. 2016b: a projection shortcut sees the pre-activated input.
        return x if self.downsample is None else self.downsample(self.relu(self.bn1(x)))

    def forward(self, x: Tensor) -> Tensor:
        return residual_forward(
            x, self._branch, self._shortcut, self.se, self.placement, nn.Identity(), self.fused_se
        )


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet: 3×3 conv (16) → three stages → global pool → FC."""

    def __init__(
        self,
        depth: int,
        num_classes: int,
        se: SEConfig,
        preact: bool = False,
        norm: str = "batchnorm",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        per_block = 9 if preact else 6
        if (depth - 2) % per_block:
            raise ValueError(f"depth must be {per_block}n+2 for this network, got {depth}.")
        n = (depth - 2) // per_block
        se.check_stages((2, 3, 4))
        conv = conv_layer(norm)
        self.conv1 = conv(3, 16, 3, padding=1, bias=False)
        self.preact = preact
        if not preact:
            self.bn1 = norm_layer(norm, 16)
        self.relu = nn.ReLU(inplace=True)
        block = PreActBottleneck if preact else BasicBlock
        in_channels = make_stages(
            self,
            16,
            (16, 32, 64),
            (n, n, n),
            PreActBottleneck.expansion if preact else 1,
            se,
            lambda cin, planes, stride, block_se: block(cin, planes, stride, norm, block_se, se.placement),
        )
        if preact:
            self.bn_final = norm_layer(norm, in_channels)
        self.fc = nn.Linear(in_channels, num_classes)
        init_weights(self, zero_init_residual)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        if not self.preact:
            x = self.relu(self.bn1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.preact:
            x = self.relu(self.bn_final(x))
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x).mean(dim=(2, 3)))
