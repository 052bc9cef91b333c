"""senet_lib.cost: MAC counts against hand computations, Table 1 sizes, parameter tallies, timing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from senet_lib import SqueezeExcitation, create_model, se_blocks
from senet_lib.cost import (
    count_macs,
    count_parameters,
    parameters_by_child,
    se_parameters_by_stage,
    se_scale_multiplies,
    stage_output_sizes,
    time_forward_backward,
)


def tiny_net() -> nn.Module:
    # 3×8×8 → conv 3×3/2 (pad 1) → 4×4×4 → flatten 64 → linear 5
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(64, 5))


def test_macs_of_conv_and_linear_equal_hand_count():
    macs = count_macs(tiny_net(), (2, 3, 8, 8))
    conv = 2 * (4 * 4 * 4) * (3 * 3 * 3)  # N · outputs (C·H·W) · MACs per output (C_in·k·k)
    linear = 2 * 64 * 5
    assert macs.total == conv + linear
    assert macs.per_image == (conv + linear) / 2
    assert macs.by_operator["aten.convolution"] == conv
    assert sum(macs.by_operator.values()) == macs.total


def test_counting_works_on_the_meta_device():
    real = tiny_net()
    with torch.device("meta"):
        meta = tiny_net()
    assert count_macs(meta, (2, 3, 8, 8)).total == count_macs(real, (2, 3, 8, 8)).total
    assert stage_output_sizes(meta, (1, 3, 8, 8), modules=["0"]) == {"0": (4, 4, 4)}


def test_se_fc_macs_equal_se_weights():
    # One image: each FC weight is used by exactly one multiply-accumulate.
    plain = count_macs(create_model("resnet20", 10), (1, 3, 32, 32)).total
    se_model = create_model("se_resnet20", 10)
    weights = sum(
        m.weight.numel() for b in se_blocks(se_model).values() for m in (b.excitation.fc1, b.excitation.fc2)
    )
    assert count_macs(se_model, (1, 3, 32, 32)).total - plain == weights


def test_se_scale_multiplies_count_every_element():
    block = SqueezeExcitation(32, reduction=4)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), block)
    assert se_scale_multiplies(model, (3, 3, 10, 10)) == 3 * 32 * 10 * 10
    assert se_scale_multiplies(tiny_net(), (1, 3, 8, 8)) == 0


def test_imagenet_stem_stage_sizes_at_224():
    sizes = stage_output_sizes(create_model("resnet50", 1000, stem="imagenet"), (1, 3, 224, 224))
    assert list(sizes) == ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    assert [s[1:] for s in sizes.values()] == [(112, 112), (56, 56), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert [s[0] for s in sizes.values()][2:] == [256, 512, 1024, 2048]


def test_cifar_stem_stage_sizes_at_32():
    sizes = stage_output_sizes(create_model("se_resnet50", 10), (1, 3, 32, 32))
    assert "maxpool" not in sizes  # the CIFAR stem has no pooling layer
    assert [sizes[f"layer{i}"][1] for i in range(1, 5)] == [32, 16, 8, 4]


def test_stage_output_sizes_rejects_unknown_module():
    with pytest.raises(ValueError, match="no module"):
        stage_output_sizes(tiny_net(), (1, 3, 8, 8), modules=["layer9"])


def test_parameter_tallies_add_up():
    plain, se_model = create_model("resnet50", 10), create_model("se_resnet50", 10)
    assert sum(parameters_by_child(plain).values()) == count_parameters(plain)
    by_stage = se_parameters_by_stage(se_model)
    assert list(by_stage) == [2, 3, 4, 5]
    assert sum(by_stage.values()) == count_parameters(se_model) - count_parameters(plain)
    # stage 5: three blocks on 2048 channels, hidden 128, with biases
    assert by_stage[5] == 3 * (2 * 2048 * 128 + 128 + 2048)
    assert se_parameters_by_stage(plain) == {}


def test_count_parameters_trainable_only():
    model = tiny_net()
    model[0].weight.requires_grad_(False)
    assert count_parameters(model) - count_parameters(model, trainable_only=True) == 4 * 3 * 3 * 3


def test_timing_returns_positive_numbers_with_documented_keys():
    model = tiny_net()
    result = time_forward_backward(model, batch_size=4, image_size=8, repeats=3, warmup=1)
    for key in ("median_s", "min_s", "max_s", "mean_s", "images_per_s"):
        assert result[key] > 0 and math.isfinite(result[key])
    assert result["stdev_s"] >= 0
    assert len(result["times_s"]) == 3
    assert result["min_s"] <= result["median_s"] <= result["max_s"]
    assert (result["batch_size"], result["image_size"], result["device"]) == (4, 8, "cpu")
    assert all(p.grad is None for p in model.parameters())  # gradients are not left behind


def test_timing_rejects_bad_settings():
    with pytest.raises(ValueError):
        time_forward_backward(tiny_net(), batch_size=2, image_size=8, repeats=0)


def test_timing_restores_mode():
    model = tiny_net().eval()
    time_forward_backward(model, batch_size=2, image_size=8, repeats=1, warmup=0)
    assert not model.training
    assert torch.is_grad_enabled()
