"""senet_lib.plots.diagrams: receptive-field numbers (checked against gradients) and figure smoke tests."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from senet_lib import create_model  # noqa: E402
from senet_lib.plots import save_figure  # noqa: E402
from senet_lib.plots.diagrams import (  # noqa: E402
    draw_se_block,
    layer_geometry,
    plot_feature_maps,
    plot_receptive_fields,
    receptive_field,
    receptive_field_table,
)


def _gradient_support(model: nn.Module, size: int, features: bool = False) -> int:
    """Width of the input region that reaches the centre output unit, measured with autograd.

    All convolution weights are set to 1 and BatchNorm is the identity (eval mode, fresh
    statistics), so every path through the network carries a positive gradient.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
    model.eval()
    x = torch.ones(1, 3, size, size, requires_grad=True)
    out = model.forward_features(x) if features else model(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    cols = (x.grad[0].abs().sum(dim=(0, 1)) > 0).nonzero().flatten()
    return int(cols.max() - cols.min() + 1)


def test_textbook_values():
    assert [s.rf for s in receptive_field([(3, 1), (3, 1)])] == [3, 5]
    assert [s.rf for s in receptive_field([(3, 1)] * 3)][-1] == 7
    # ImageNet stem: 7×7/2 conv then 3×3/2 max-pool
    steps = receptive_field([("conv1", 7, 2), ("maxpool", 3, 2)])
    assert [(s.name, s.rf, s.jump) for s in steps] == [("conv1", 7, 2), ("maxpool", 11, 4)]
    # a stride-2 layer doubles the growth of every later layer
    assert [s.rf for s in receptive_field([(3, 2), (3, 1), (3, 1)])] == [3, 7, 11]


def test_bad_layers_raise():
    with pytest.raises(ValueError, match="kernel and stride"):
        receptive_field([(0, 1)])
    with pytest.raises(ValueError, match="kernel, stride"):
        receptive_field([(3,)])
    with pytest.raises(ValueError, match="non-square"):
        layer_geometry(nn.Sequential(nn.Conv2d(3, 3, (3, 1))))


def test_geometry_skips_shortcuts_and_uses_dilation():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2), nn.MaxPool2d(2), nn.AvgPool2d(3, stride=1))
    assert layer_geometry(net) == [("0", 5, 1), ("1", 2, 2), ("2", 3, 1)]
    names = [name for name, _, _ in layer_geometry(create_model("se_resnet50", 10, stem="imagenet"))]
    assert not any("downsample" in n for n in names)
    assert names[:2] == ["conv1", "maxpool"] and len(names) == 2 + 16 * 3


def test_resnet20_matches_autograd():
    model = create_model("resnet20")
    table = receptive_field_table(model)
    assert len(table) == 19 and table[-1].rf == 81 and table[-1].jump == 4
    assert _gradient_support(create_model("resnet20"), 128, features=True) == 81


def test_resnet50_first_stage_matches_autograd():
    model = create_model("resnet50", 10, stem="imagenet")
    table = receptive_field_table(model)
    assert table[-1].rf == 427 and table[-1].jump == 32
    # the stem's max-pool routes the gradient to one input only, so compare with an average pool
    trunk = nn.Sequential(model.conv1, model.bn1, nn.AvgPool2d(3, 2, 1), model.layer1)
    after_layer1 = [s for s in table if s.name.startswith("layer1.")][-1]
    assert after_layer1.rf == 35
    assert _gradient_support(trunk, 96) == after_layer1.rf


def test_figures_draw_and_save(tmp_path):
    fig = draw_se_block(torch.linspace(0, 1, 6))
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) > 20  # the drawing and its colour bar
    written = save_figure(fig, "se_block", folder=tmp_path)
    assert written["png"].stat().st_size > 0
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one"):
        draw_se_block(torch.empty(0))

    fig = plot_feature_maps(torch.randn(10, 8, 8), ncols=4)
    assert sum(1 for ax in fig.axes if ax.images) == 10
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        plot_feature_maps(torch.randn(1, 2, 8, 8))

    fig = plot_receptive_fields({"ResNet-20": receptive_field_table(create_model("resnet20"))}, {"CIFAR": 32})
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[0].get_legend().texts) == 2
    plt.close(fig)
