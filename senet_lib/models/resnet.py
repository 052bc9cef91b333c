"""Bottleneck ResNets and SE-ResNets (He et al. 2016; Hu et al. §4, Table 1). With ``stem="imagenet"``
they match ``torchvision.models.resnet50`` (25,557,032 parameters; SE: 28,088,024); ``stem="cifar"``
(default) uses a 3×3/1 stem so 32×32 maps stay 32×32."""

from __future__ import annotations

from torch import Tensor, nn

from .layers import (
    SEConfig,
    check_choice,
    conv_layer,
    init_weights,
    inner_se,
    make_stages,
    norm_layer,
    residual_forward,
)

STEMS = ("cifar", "imagenet")


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride here) → 1×1 with expansion 4, plus an SE block."""

    #: Run the standard placement's tail (scale, sum, ReLU) fused; False runs the reference steps
    #: (:func:`~senet_lib.models.layers.set_fused_se` switches a whole network).
    fused_se = True

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        norm: str,
        se: nn.Module | None,
        placement: str,
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        conv = conv_layer(norm)
        self.conv1 = conv(in_channels, planes, 1, bias=False)
        self.bn1 = norm_layer(norm, planes)
        self.conv2 = conv(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(norm, planes)
        self.conv3 = conv(planes, out_channels, 1, bias=False)
        self.bn3 = norm_layer(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                conv(in_channels, out_channels, 1, stride=stride, bias=False), norm_layer(norm, out_channels)
            )
        self.se = se
        self.placement = placement

    def last_branch_layer(self) -> nn.Module:
        return self.bn3

    def _branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = inner_se(self.relu(self.bn2(self.conv2(out))), self.se, self.placement)
        return self.bn3(self.conv3(out))

    def _shortcut(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: Tensor) -> Tensor:
        return residual_forward(
            x, self._branch, self._shortcut, self.se, self.placement, self.relu, self.fused_se
        )


class ResNet(nn.Module):
    """A bottleneck ResNet with torchvision's attribute names; ``layer1`` … ``layer4`` are stages 2 … 5."""

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        num_classes: int,
        stem: str,
        se: SEConfig,
        norm: str = "batchnorm",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        check_choice("stem", stem, STEMS)
        se.check_stages((2, 3, 4, 5))
        conv = conv_layer(norm)
        if stem == "imagenet":
            self.conv1 = conv(3, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = conv(3, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = norm_layer(norm, 64)
        self.relu = nn.ReLU(inplace=True)
        in_channels = make_stages(
            self,
            64,
            (64, 128, 256, 512),
            layers,
            Bottleneck.expansion,
            se,
            lambda cin, planes, stride, block_se: Bottleneck(
                cin, planes, stride, norm, block_se, se.placement
            ),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.stem = stem
        init_weights(self, zero_init_residual)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        # A mean over H, W rather than avgpool's adaptive pooling: same result, works on MPS.
        return self.fc(self.forward_features(x).mean(dim=(2, 3)))
