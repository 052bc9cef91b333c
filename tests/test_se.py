"""The SE block: the three steps, the whole block, torchvision equivalence, gate access."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from senet_lib import Excitation, SqueezeExcitation, override_gate, scale, squeeze
from senet_lib.se import hidden_width


def _copy_into_torchvision(block: SqueezeExcitation) -> torchvision.ops.SqueezeExcitation:
    tv = torchvision.ops.SqueezeExcitation(block.channels, block.hidden)
    with torch.no_grad():
        tv.fc1.weight.copy_(block.excitation.fc1.weight[:, :, None, None])
        tv.fc1.bias.copy_(block.excitation.fc1.bias)
        tv.fc2.weight.copy_(block.excitation.fc2.weight[:, :, None, None])
        tv.fc2.bias.copy_(block.excitation.fc2.bias)
    return tv


@pytest.mark.parametrize("channels,reduction", [(64, 16), (256, 16), (16, 4), (48, 8)])
def test_matches_torchvision_with_same_weights(channels, reduction):
    torch.manual_seed(0)
    block = SqueezeExcitation(channels, reduction)
    tv = _copy_into_torchvision(block)
    x = torch.randn(3, channels, 7, 5)
    torch.testing.assert_close(block(x), tv(x))


def test_steps_compose_to_the_block():
    torch.manual_seed(1)
    block = SqueezeExcitation(32, 4)
    x = torch.randn(2, 32, 6, 6)
    z = squeeze(x)
    assert z.shape == (2, 32)
    torch.testing.assert_close(z, F.adaptive_avg_pool2d(x, 1).flatten(1))
    s = block.excitation(z)
    torch.testing.assert_close(block(x), scale(x, s))
    torch.testing.assert_close(scale(x, s)[1, 5], x[1, 5] * s[1, 5])


def test_squeeze_modes():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    torch.testing.assert_close(squeeze(x, "max"), x.flatten(2).max(-1).values)
    torch.testing.assert_close(squeeze(x, "avgmax"), 0.5 * (x.mean((2, 3)) + x.amax((2, 3))))
    with pytest.raises(ValueError, match="Unknown squeeze 'median'"):
        squeeze(x, "median")
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        squeeze(x[0])


@pytest.mark.parametrize("channels,reduction", [(64, 16), (2048, 16), (256, 4), (16, 16), (10, 32)])
def test_hidden_width_and_parameter_count(channels, reduction):
    hidden = max(channels // reduction, 1)
    block = SqueezeExcitation(channels, reduction)
    assert block.hidden == hidden == hidden_width(channels, reduction)
    # 2·C·(C/r) weights + C/r + C biases (Eq. 5 per block, with biases)
    assert sum(p.numel() for p in block.parameters()) == 2 * channels * hidden + hidden + channels
    no_bias = SqueezeExcitation(channels, reduction, bias=False)
    assert sum(p.numel() for p in no_bias.parameters()) == 2 * channels * hidden


def test_min_hidden():
    assert SqueezeExcitation(16, 16, min_hidden=4).hidden == 4
    assert SqueezeExcitation(256, 16, min_hidden=4).hidden == 16


def test_gate_hook_sees_excitation_vector():
    torch.manual_seed(2)
    block = SqueezeExcitation(24, 4)
    seen = []
    handle = block.gate.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    x = torch.randn(5, 24, 3, 3)
    out = block(x)
    handle.remove()
    assert block.gate is block.excitation.gate
    (s,) = seen
    assert s.shape == (5, 24) and bool(((s > 0) & (s < 1)).all())
    torch.testing.assert_close(out, x * s[:, :, None, None])


def test_gate_forced_to_one_is_identity_and_hooks_are_removed():
    block = SqueezeExcitation(16, 4)
    x = torch.randn(2, 16, 5, 5)
    with override_gate(block, 1.0):
        torch.testing.assert_close(block(x), x)
    assert not block.gate._forward_hooks
    assert not torch.allclose(block(x), x)


def test_override_selected_channels_and_removal_after_error():
    block = SqueezeExcitation(8, 2)
    x = torch.rand(1, 8, 4, 4) + 0.5
    with pytest.raises(RuntimeError), override_gate(block, 0.0, channels=[1, 3]):
        out = block(x)
        assert torch.all(out[:, [1, 3]] == 0) and torch.all(out[:, [0, 2]] != 0)
        raise RuntimeError("boom")
    assert not block.gate._forward_hooks


@pytest.mark.parametrize(
    "gate,low,high", [("sigmoid", 0, 1), ("hardsigmoid", 0, 1), ("tanh", -1, 1), ("relu", 0, None)]
)
def test_gate_ranges(gate, low, high):
    torch.manual_seed(3)
    exc = Excitation(32, 8, gate=gate)
    s = exc(torch.randn(256, 32) * 5)
    assert s.min() >= low and (high is None or s.max() <= high)
    assert type(exc.gate).__name__.lower() == gate.lower().replace("hardsigmoid", "hardsigmoid")


def test_unknown_gate_message():
    with pytest.raises(
        ValueError, match="Unknown gate 'softmax': use one of sigmoid, hardsigmoid, tanh, relu"
    ):
        SqueezeExcitation(16, gate="softmax")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("channels_last", [False, True])
def test_avg_squeeze_is_the_mean_in_every_dtype_and_layout(dtype, channels_last):
    # a large map of large values: a bf16 accumulator or an fp16 sum would miss or overflow here
    torch.manual_seed(2)
    x32 = 90.0 + torch.rand(2, 8, 32, 32)  # sum over 32×32 > 65504, the fp16 maximum
    x = x32.to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    z = squeeze(x)
    assert z.dtype == dtype and z.shape == (2, 8)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z.float(), x.float().mean((2, 3)), rtol=1e-2, atol=0.0)
    # and its gradient is the mean's: 1/(H·W) everywhere
    xg = x32.clone().requires_grad_(True)
    squeeze(xg).sum().backward()
    torch.testing.assert_close(xg.grad, torch.full_like(x32, 1 / (32 * 32)))
