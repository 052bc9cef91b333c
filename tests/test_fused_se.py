"""The fused tail of the standard SE placement against the reference steps it replaces.

A unit's tail ``relu(se(u) + identity)`` runs fused by default (``unit.fused_se``); the reference,
``se(u)``, the sum and the ReLU as separate autograd steps, is one switch away. In fp32 the two
agree to rounding. In bf16 both differ from the exact (float64) result by rounding, so each check
asks that the fused result be about as close to the float64 one as the reference is: a wrong
backward (a missing mask, a gradient left out) is off by far more than rounding, and
:func:`test_the_comparison_catches_a_wrong_backward` shows the checks catch one.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
from torch import nn

from senet_lib import SqueezeExcitation, create_model, override_gate, se_blocks
from senet_lib.excitation import ExcitationRecorder, image_excitations
from senet_lib.models import layers
from senet_lib.models.cifar_resnet import BasicBlock, PreActBottleneck
from senet_lib.models.layers import set_fused_se
from senet_lib.models.resnet import Bottleneck
from senet_lib.se import squeeze

#: The backward node of the fused tail (how a test sees which path a unit took).
FUSED = "_ScaleAddReLUBackward"

UNITS = {
    "basic": lambda: BasicBlock(16, 16, 1, "batchnorm", SqueezeExcitation(16, 4), "standard"),
    "basic_stride2_pad": lambda: BasicBlock(8, 16, 2, "batchnorm", SqueezeExcitation(16, 4), "standard"),
    "bottleneck_downsample": lambda: Bottleneck(16, 8, 2, "batchnorm", SqueezeExcitation(32, 4), "standard"),
    "preact_no_relu": lambda: PreActBottleneck(16, 4, 1, "batchnorm", SqueezeExcitation(16, 4), "standard"),
}
MODES = ["fp32", "bf16"]
LAYOUTS = ["channels_first", "channels_last"]


def _fmt(layout: str) -> torch.memory_format:
    return torch.channels_last if layout == "channels_last" else torch.contiguous_format


def _run(module: nn.Module, x: torch.Tensor, mode: str, layout: str, dtype=torch.float32, train=True):
    """Output, input gradient and parameter gradients of one forward and backward.

    Under bf16 autocast the input is bf16, as every unit but the first one sees in a network.
    ``train=False`` puts BatchNorm on its running statistics (gradients still flow): without the
    batch means' cancellation, bf16 rounding stays small enough to show an error of a few %."""
    module = copy.deepcopy(module).to(dtype=dtype, memory_format=_fmt(layout)).train(train)
    x_dtype = torch.bfloat16 if mode == "bf16" else dtype
    x = x.detach().to(x_dtype).contiguous(memory_format=_fmt(layout)).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
        out = module(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (out.double() * weights).sum().backward()
    grads = {"input": x.grad, **{name: p.grad for name, p in module.named_parameters()}}
    return out, grads


def _distances(a: dict, b: dict) -> dict[str, float]:
    """‖a − b‖ / ‖b‖ (float64) over the gradients of each group: the SE block's parameters, the
    other parameters and the input, so that an error confined to SE is not drowned by the rest."""
    groups: dict[str, list[str]] = {}
    for key in b:
        groups.setdefault("se" if ".se." in f".{key}" else "rest", []).append(key)
    return {
        group: float(
            (
                sum(((a[k].double() - b[k].double()) ** 2).sum() for k in keys)
                / sum((b[k].double() ** 2).sum() for k in keys)
            ).sqrt()
        )
        for group, keys in groups.items()
    }


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


def _compare(
    module: nn.Module, x: torch.Tensor, mode: str, layout: str, train: bool = True
) -> dict[str, tuple[float, float]]:
    """For the output and each gradient group: (the reference's, the fused run's) distance to
    the float64 reference run, and under ``"fused-reference"`` the fused run's distance to the
    reference run. Also checks that the fused path was taken and kept dtypes and layout."""
    reference = copy.deepcopy(module)
    assert set_fused_se(reference, False) > 0
    exact_out, exact_grads = _run(reference, x, "fp32", layout, torch.float64, train)
    ref_out, ref_grads = _run(reference, x, mode, layout, train=train)
    out, grads = _run(module, x, mode, layout, train=train)
    if isinstance(module, BasicBlock | Bottleneck | PreActBottleneck):
        assert type(out.grad_fn).__name__ == FUSED and type(ref_out.grad_fn).__name__ != FUSED
    assert out.dtype == ref_out.dtype and out.shape == ref_out.shape
    fmt = _fmt(layout)
    assert out.is_contiguous(memory_format=fmt) == ref_out.is_contiguous(memory_format=fmt)
    assert grads["input"].dtype == ref_grads["input"].dtype
    assert grads["input"].is_contiguous(memory_format=fmt) == ref_grads["input"].is_contiguous(
        memory_format=fmt
    )
    ref_d, d = _distances(ref_grads, exact_grads), _distances(grads, exact_grads)
    result = {"output": (_relative(ref_out, exact_out), _relative(out, exact_out))}
    result.update({group: (ref_d[group], d[group]) for group in d})
    result["fused-reference"] = (_relative(out, ref_out), max(_distances(grads, ref_grads).values()))
    return result


def _assert_as_close_as_reference(errors: dict[str, tuple[float, float]], mode: str) -> None:
    """The fused run is about as close to float64 as the reference run. In bf16, which keeps 8
    bits, rounding differences grow through BatchNorm's batch statistics: up to a few %."""
    floor = 1e-5 if mode == "fp32" else 0.05
    for what, (ref, fused) in errors.items():
        if what != "fused-reference":
            assert fused <= 2 * ref + floor, (
                f"{what}: fused is {fused:.3g} from float64, the reference {ref:.3g}"
            )


@pytest.mark.parametrize("batchnorm", ["batch_stats", "running_stats"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("unit", sorted(UNITS))
def test_fused_unit_equals_the_reference_unit(unit, mode, layout, batchnorm):
    """With BatchNorm on running statistics (gradients still flow) nothing mixes the images or
    positions, so the fused unit's gradients are the reference's but for the odd output whose
    sign the last-bit rounding of ``addcmul`` flips: they must agree to 1 %, also in bf16."""
    torch.manual_seed(0)
    module = UNITS[unit]()
    x = torch.randn(4, module.conv1.in_channels, 8, 8)
    errors = _compare(module, x, mode, layout, train=batchnorm == "batch_stats")
    _assert_as_close_as_reference(errors, mode)
    if batchnorm == "running_stats":
        out, grads = errors["fused-reference"]
        assert out <= (1e-6 if mode == "fp32" else 4e-3) and grads <= 1e-2, errors["fused-reference"]


def _tail_inputs(dtype: torch.dtype, layout: str, full_gate: bool = False):
    """u, s, identity and an upstream gradient, with no sum ``u·s + identity`` within rounding of 0
    (so the ReLU's mask is the same whichever way the sum is rounded)."""
    gen = torch.Generator().manual_seed(0)
    u, identity, grad = (torch.randn(3, 8, 5, 6, generator=gen, dtype=torch.float64) for _ in range(3))
    s = torch.rand(3, 8, 5, 6, generator=gen, dtype=torch.float64)
    s = s if full_gate else s[:, :, :1, :1]
    identity = identity + 0.25 * torch.sign(u * s + identity)  # |sum| ≥ 0.25
    fmt = _fmt(layout)
    return [
        t.to(dtype).contiguous(memory_format=fmt).requires_grad_(i < 3)
        for i, t in enumerate((u, s, identity, grad))
    ]


@pytest.mark.parametrize("full_gate", [False, True], ids=["gate_NC11", "gate_NCHW"])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_fused_tail_backward_is_the_reference_backward(dtype, layout, relu, full_gate):
    """The same gradients bit for bit (the same operations on the same mask); the output to one
    rounding (``addcmul`` rounds the sum once, the reference twice)."""
    u, s, identity, grad = _tail_inputs(dtype, layout, full_gate)
    out = layers.scale_add_relu(u, s, identity, relu=relu)
    assert type(out.grad_fn).__name__ == FUSED
    fused = torch.autograd.grad(out, (u, s, identity), grad)
    ref_out = u * s + identity
    ref_out = torch.relu(ref_out) if relu else ref_out
    reference = torch.autograd.grad(ref_out, (u, s, identity), grad)
    torch.testing.assert_close(out, ref_out)
    assert out.dtype == dtype and out.is_contiguous(memory_format=_fmt(layout))
    for name, a, b in zip(("u", "s", "identity"), fused, reference, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert torch.equal(a, b), f"gradient of {name} differs"


def test_mixed_dtypes_take_the_reference_steps():
    """A unit whose shortcut is fp32 while its branch is bf16 (the first unit under autocast, fed
    an fp32 image batch) adds in fp32 as the reference does: identical results."""
    torch.manual_seed(0)
    module = UNITS["basic"]()
    reference = copy.deepcopy(module)
    set_fused_se(reference, False)
    x = torch.randn(4, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    outs = []
    for m in (module, reference):
        m.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
        y.sum().backward()
        outs.append((y, [p.grad for p in m.parameters()]))
    (y, grads), (y_ref, grads_ref) = outs
    assert y.dtype == y_ref.dtype == torch.float32 and torch.equal(y, y_ref)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_ref, strict=True))


# --------------------------------------------------------------------------- whole networks
def _network_errors(name: str, mode: str, layout: str) -> dict[str, tuple[float, float]]:
    torch.manual_seed(0)
    model = create_model(name)
    return _compare(model, torch.randn(8, 3, 32, 32), mode, layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_fused_se_resnet20_matches_the_reference_network(mode, layout):
    _assert_as_close_as_reference(_network_errors("se_resnet20", mode, layout), mode)


def test_the_comparison_catches_a_wrong_backward(monkeypatch):
    """The checks above can fail: a backward whose ``s`` or shortcut gradient forgets the ReLU's
    mask (a plausible slip), or whose ``u`` gradient forgets ``s``, is caught in bf16 at every
    level: the tail, a unit and the whole network."""
    original = layers._ScaleAddReLU.backward

    def no_mask_for_s(ctx, grad):
        grad_u, _grad_s, grad_identity, none = original(ctx, grad)
        u, s, _ = ctx.saved_tensors
        return grad_u, (grad * u).sum_to_size(s.shape), grad_identity, none

    def no_s_for_u(ctx, grad):
        grad_u, grad_s, grad_identity, none = original(ctx, grad)
        return grad_identity, grad_s, grad_identity, none

    def no_mask_for_identity(ctx, grad):
        grad_u, grad_s, grad_identity, none = original(ctx, grad)
        return grad_u, grad_s, grad, none

    for wrong in (no_mask_for_s, no_s_for_u, no_mask_for_identity):
        monkeypatch.setattr(layers._ScaleAddReLU, "backward", staticmethod(wrong))
        with pytest.raises(AssertionError):
            test_fused_tail_backward_is_the_reference_backward(torch.bfloat16, "channels_last", True, False)
        with pytest.raises(AssertionError):
            test_fused_unit_equals_the_reference_unit("basic", "bf16", "channels_last", "running_stats")
        with pytest.raises(AssertionError):
            test_fused_se_resnet20_matches_the_reference_network("bf16", "channels_last")
    monkeypatch.undo()
    test_fused_unit_equals_the_reference_unit("basic", "bf16", "channels_last", "running_stats")


# --------------------------------------------------------------------------- the switch
def test_fused_is_the_default_and_leaves_names_and_weights_alone():
    model = create_model("se_resnet20")
    units = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(units) == 9 and all(u.fused_se for u in units)
    assert model.arch_config == {"name": "se_resnet20", "num_classes": 10}  # run names hash these
    keys = list(model.state_dict())
    assert set_fused_se(model, False) == 9 and not any(u.fused_se for u in units)
    assert list(model.state_dict()) == keys
    assert set_fused_se(create_model("se_resnet50"), True) == 16
    x = torch.randn(2, 16, 8, 8)
    assert type(units[0](x).grad_fn).__name__ != FUSED
    set_fused_se(model, True)
    assert type(units[0](x).grad_fn).__name__ == FUSED


@pytest.mark.parametrize("placement", ["pre", "post", "identity", "3x3"])
def test_other_placements_keep_the_reference_steps(placement):
    torch.manual_seed(0)
    model = create_model("se_resnet20", se_placement=placement)
    reference = copy.deepcopy(model)
    set_fused_se(reference, False)
    x = torch.randn(4, 3, 16, 16)
    y, y_ref = model(x), reference(x)
    assert torch.equal(y, y_ref)
    assert all(type(u(torch.randn(2, 16, 4, 4)).grad_fn).__name__ != FUSED for u in model.layer1)


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_without_gradients_the_network_computes_what_the_reference_does(context):
    """Evaluation, excitation statistics and knock-outs run without gradients: bit for bit the
    reference's numbers, in fp32 and under bf16 autocast."""
    torch.manual_seed(0)
    model = create_model("se_resnet20").eval().to(memory_format=torch.channels_last)
    reference = copy.deepcopy(model)
    set_fused_se(reference, False)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with context():
        assert torch.equal(model(x), reference(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, y_ref = model(x), reference(x)
    assert y.dtype == y_ref.dtype == torch.bfloat16 and torch.equal(y, y_ref)


# --------------------------------------------------------------------------- excitation hooks
def test_gate_hooks_record_the_same_excitations():
    torch.manual_seed(0)
    model = create_model("se_resnet20").eval()
    reference = copy.deepcopy(model)
    set_fused_se(reference, False)
    images, labels = torch.randn(6, 3, 32, 32), torch.tensor([0, 0, 0, 1, 1, 1])
    fused, ref = image_excitations(model, images), image_excitations(reference, images)
    assert list(fused) == list(ref) == list(se_blocks(model))
    assert all((fused[n] == ref[n]).all() for n in fused)  # bit for bit: recorded without gradients
    stats = {}
    for key, m in (("fused", model), ("ref", reference)):
        with ExcitationRecorder(m, ["SE_2_1", "SE_4_3"], num_classes=2) as rec:
            rec.update(images, labels)
        stats[key] = rec.stats()
    assert all((stats["fused"].mean[n] == stats["ref"].mean[n]).all() for n in ("SE_2_1", "SE_4_3"))
    # a training step under autocast: the first gate sees the same s (later ones see maps that
    # went through a fused tail, so they agree to rounding; see the network test)
    seen: dict[str, list[torch.Tensor]] = {"fused": [], "ref": []}
    for key, m in (("fused", model), ("ref", reference)):
        m.train()
        handle = m.layer1[0].se.gate.register_forward_hook(
            lambda _m, _i, s, key=key: seen[key].append(s.detach())
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            m(images).sum().backward()
        handle.remove()
    assert torch.equal(seen["fused"][0], seen["ref"][0])


def test_override_gate_works_through_the_fused_tail():
    torch.manual_seed(0)
    model = create_model("se_resnet20").eval()
    reference = copy.deepcopy(model)
    set_fused_se(reference, False)
    plain = create_model("resnet20").eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".se." not in k})
    x = torch.randn(2, 3, 32, 32)
    with override_gate(list(se_blocks(model).values()), 1.0):
        torch.testing.assert_close(model(x), plain(x))
    block = se_blocks(model)["SE_3_2"]
    ref_block = se_blocks(reference)["SE_3_2"]
    with override_gate(block, 0.0, channels=[1, 5]), override_gate(ref_block, 0.0, channels=[1, 5]):
        torch.testing.assert_close(model(x), reference(x))
    assert not torch.allclose(model(x), plain(x))


def test_a_hook_on_the_se_block_itself_still_runs_and_sees_x_times_s():
    """The fused tail does not call the SE module, so a unit whose SE block has a hook (like the
    cost counter's) takes the reference steps, and the hook sees ``se(u) = u · s``."""
    torch.manual_seed(0)
    model = create_model("se_resnet20").eval()
    block = model.layer2[1].se
    seen = {}
    block.register_forward_hook(lambda _m, inputs, out: seen.update(u=inputs[0], out=out))
    block.gate.register_forward_hook(lambda _m, _i, s: seen.update(s=s))
    model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(seen["out"], seen["u"] * seen["s"][:, :, None, None])
    assert not layers.fusable(block, nn.ReLU()) and layers.fusable(model.layer2[0].se, nn.ReLU())


# --------------------------------------------------------------------------- DDP and the squeeze
def test_ddp_trains_the_fused_network_as_one_process_does(tmp_path):
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available in this PyTorch build")
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    torch.manual_seed(0)
    model = create_model("se_resnet20")
    single = copy.deepcopy(model)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        for _ in range(2):  # a second step fails if the first left a gradient unreduced
            for m in (ddp, single):
                m.zero_grad()
                nn.functional.cross_entropy(m(x), y).backward()
    finally:
        dist.destroy_process_group()
    for (name, p), q in zip(model.named_parameters(), single.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


@pytest.mark.parametrize("channels", [16, 48])
def test_bf16_channels_last_squeeze_gradient_is_a_whole_map_of_the_same_values(channels):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, channels, 5, 7, generator=gen).bfloat16().contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    grad = torch.randn(2, channels, generator=gen).bfloat16()
    (dense,) = torch.autograd.grad(squeeze(x), x, grad)
    (autograd,) = torch.autograd.grad(x.sum(dim=(2, 3)) / 35, x, grad)
    assert autograd.stride()[2:] == (0, 0)  # autograd's is a broadcast view ...
    assert dense.is_contiguous(memory_format=torch.channels_last) and dense.dtype == torch.bfloat16
    assert torch.equal(dense, autograd)  # ... of the same values
    # elsewhere the squeeze keeps autograd's own backward
    for other in (x.detach().float().requires_grad_(), x.detach().contiguous().requires_grad_()):
        (g,) = torch.autograd.grad(squeeze(other), other, grad.to(other.dtype))
        assert g.stride()[2:] == (0, 0)
    wide = torch.randn(2, 32, 5, 7).bfloat16().contiguous(memory_format=torch.channels_last).requires_grad_()
    (g,) = torch.autograd.grad(squeeze(wide), wide, torch.ones(2, 32).bfloat16())
    assert g.stride()[2:] == (0, 0)
