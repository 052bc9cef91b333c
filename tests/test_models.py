"""The model factory: parameter counts from the paper, torchvision equivalence, options."""

from __future__ import annotations

import pytest
import torch
import torchvision

from senet_lib import SqueezeExcitation, create_model, list_models, se_blocks


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def se_params(model: torch.nn.Module) -> int:
    return sum(n_params(m) for m in model.modules() if isinstance(m, SqueezeExcitation))


def test_paper_imagenet_parameter_counts():
    assert n_params(create_model("resnet50", 1000, stem="imagenet")) == 25_557_032
    assert n_params(create_model("se_resnet50", 1000, stem="imagenet")) == 28_088_024


def test_resnet50_has_torchvision_structure():
    ours = create_model("resnet50", 1000, stem="imagenet").eval()
    theirs = torchvision.models.resnet50().eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize(
    "depth,extra",
    [(20, 2_373), (56, 7_119), (110, 14_238)],
)
def test_cifar_se_parameter_increase(depth, extra):
    plain, se = create_model(f"resnet{depth}"), create_model(f"se_resnet{depth}")
    assert n_params(se) - n_params(plain) == extra == se_params(se)


def test_preact_resnet164_se_increase():
    plain, se = create_model("preact_resnet164"), create_model("se_preact_resnet164")
    assert n_params(se) - n_params(plain) == 202_104


def test_he_et_al_resnet20_size():
    # He et al. 2016, Table 6: ResNet-20 has 0.27 M parameters (option-A shortcuts, 10 classes)
    assert n_params(create_model("resnet20")) == 269_722


@pytest.mark.parametrize("reduction,millions", [(2, 45.7), (4, 35.6), (8, 30.6), (16, 28.1), (32, 26.8)])
def test_reduction_ratio_table(reduction, millions):
    m = create_model("se_resnet50", 1000, stem="imagenet", reduction=reduction)
    assert round(n_params(m) / 1e6, 1) == millions


@pytest.mark.parametrize("name", ["resnet20", "se_resnet20", "se_preact_resnet164", "se_resnet50"])
def test_cifar_forward_shapes(name):
    model = create_model(name, num_classes=100)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_stems_feature_sizes():
    cifar = create_model("se_resnet50").eval()
    imnet = create_model("se_resnet50", stem="imagenet").eval()
    x = torch.randn(1, 3, 32, 32)
    assert cifar.forward_features(x).shape[-1] == 4
    assert imnet.forward_features(x).shape[-1] == 1


def test_block_names_follow_paper():
    names = list(se_blocks(create_model("se_resnet50")))
    assert names[:3] == ["SE_2_1", "SE_2_2", "SE_2_3"] and names[-1] == "SE_5_3" and len(names) == 16
    assert list(se_blocks(create_model("se_resnet20")))[-1] == "SE_4_3"
    assert se_blocks(create_model("resnet50")) == {}


def test_se_stages_option():
    model = create_model("se_resnet50", se_stages=[5])
    assert [n.split("_")[1] for n in se_blocks(model)] == ["5", "5", "5"]
    with pytest.raises(ValueError, match="se_stages"):
        create_model("se_resnet20", se_stages=[5])


def test_se_min_hidden_widens_the_narrow_bottlenecks():
    # SE-ResNet-20 at r = 16 squeezes 16, 32 and 64 channels through 1, 2 and 4 units; at least 8 makes all 8
    narrow, wide = create_model("se_resnet20"), create_model("se_resnet20", se_min_hidden=8)
    assert {b.hidden for b in se_blocks(narrow).values()} == {1, 2, 4}
    assert {b.hidden for b in se_blocks(wide).values()} == {8}
    extra = sum(
        3 * (2 * c * (8 - c // 16) + (8 - c // 16)) for c in (16, 32, 64)
    )  # fc1 + fc2 weights, fc1 bias
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(wide) - count(narrow) == extra
    assert wide.arch_config["se_min_hidden"] == 8
    assert create_model("se_resnet20", reduction=2, se_min_hidden=8).layer3[0].se.hidden == 32  # C/r wins


@pytest.mark.parametrize("placement", ["standard", "pre", "post", "identity"])
def test_placements(placement):
    torch.manual_seed(0)
    model = create_model("se_resnet20", se_placement=placement).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.isfinite(model(x)).all()
    # with every gate forced to 1 the network equals its plain twin
    plain = create_model("resnet20").eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".se." not in k})
    from senet_lib import override_gate

    with override_gate(list(se_blocks(model).values()), 1.0):
        torch.testing.assert_close(model(x), plain(x))


def test_pre_placement_uses_input_channels():
    model = create_model("se_resnet50", se_placement="pre")
    assert model.layer2[0].se.channels == 256 and model.layer2[1].se.channels == 512


@pytest.mark.parametrize("norm", ["groupnorm", "groupnorm_ws"])
def test_norm_options(norm):
    model = create_model("se_resnet20", norm=norm)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_zero_init_residual_makes_units_identity_on_branch():
    model = create_model("se_resnet50", zero_init_residual=True)
    assert all(int(torch.count_nonzero(b.bn3.weight)) == 0 for b in model.layer1)
    assert int(torch.count_nonzero(create_model("se_resnet50").layer1[0].bn3.weight)) > 0


def test_arch_config_and_listing():
    model = create_model("se_resnet56", 100, reduction=8)
    assert model.arch_config == {"name": "se_resnet56", "num_classes": 100, "reduction": 8}
    assert "se_resnet50" in list_models() and list_models("se_resnet1*") == ["se_resnet101", "se_resnet110"]


def test_bad_names_and_options_say_what_to_do():
    with pytest.raises(ValueError, match=r"Unknown model 'se_resnet51'\. Valid models: .*se_resnet50"):
        create_model("se_resnet51")
    with pytest.raises(TypeError, match="does not take option"):
        create_model("resnet20", stem="imagenet")
    with pytest.raises(ValueError, match="Unknown norm 'layernorm'"):
        create_model("resnet20", norm="layernorm")
    with pytest.raises(ValueError, match="Unknown se_placement"):
        create_model("se_resnet20", se_placement="middle")


# --------------------------------------------------------------------------- Tables 15 and 16
#: Every registered family, written out here (not read from the library): units per stage, the
#: planes of each stage and the expansion (output channels = planes × expansion).
_FAMILIES = {
    "resnet20": ((3, 3, 3), (16, 32, 64), 1),
    "resnet32": ((5, 5, 5), (16, 32, 64), 1),
    "resnet44": ((7, 7, 7), (16, 32, 64), 1),
    "resnet56": ((9, 9, 9), (16, 32, 64), 1),
    "resnet110": ((18, 18, 18), (16, 32, 64), 1),
    "preact_resnet164": ((18, 18, 18), (16, 32, 64), 4),
    "resnet50": ((3, 4, 6, 3), (64, 128, 256, 512), 4),
    "resnet101": ((3, 4, 23, 3), (64, 128, 256, 512), 4),
}


def _expected_se_params(family: str, inner: bool, r: int = 16) -> int:
    """Σ over units of 2·C·h + h + C (two FC layers with biases), C = the channels SE sees."""
    depths, planes, expansion = _FAMILIES[family]
    total = 0
    for n, p in zip(depths, planes, strict=True):
        c = p if inner else p * expansion
        h = max(c // r, 1)
        total += n * (2 * c * h + h + c)
    return total


def test_every_registered_model_is_in_the_family_table():
    assert set(list_models()) == set(_FAMILIES) | {f"se_{n}" for n in _FAMILIES}


@pytest.mark.parametrize("family", sorted(_FAMILIES))
def test_se_after_3x3_and_no_squeeze_parameters_and_shapes(family):
    plain = n_params(create_model(family, 100))
    inner = create_model(f"se_{family}", 100, se_placement="3x3")
    assert n_params(inner) - plain == _expected_se_params(family, inner=True)
    nosq = create_model(f"se_{family}", 100, se_squeeze="none")
    # No squeeze keeps the FC weights (as 1×1 convolutions): as many parameters as standard SE.
    assert n_params(nosq) - plain == _expected_se_params(family, inner=False)
    x = torch.randn(2, 3, 16, 16)  # small maps: the shapes are what is checked here
    with torch.no_grad():
        assert inner.eval()(x).shape == (2, 100) and nosq.eval()(x).shape == (2, 100)
    # plain networks take the options and ignore them
    assert n_params(create_model(family, 100, se_placement="3x3", se_squeeze="none")) == plain


def test_table15_se_resnet50_size():
    # 25,557,032 + Σ 2·p·(p/16) + p/16 + p over the 16 units; the paper prints 25.8 M (v4, Table 15)
    model = create_model("se_resnet50", 1000, stem="imagenet", se_placement="3x3")
    assert n_params(model) == 25_718_228
    assert model.layer4[0].se.channels == 512 and model.layer1[0].se.channels == 64


def test_se_after_3x3_sits_inside_the_branch():
    model = create_model("se_resnet20", se_placement="3x3").eval()
    block = model.layer2[0]
    seen = {}
    block.se.register_forward_hook(lambda m, i, o: seen.update(x=i[0].detach()))
    block.conv2.register_forward_hook(lambda m, i, o: seen.update(conv2_in=i[0].detach()))
    x = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        block(x)
    expected_in = block.relu(block.bn1(block.conv1(x)))
    torch.testing.assert_close(seen["x"], expected_in)
    torch.testing.assert_close(seen["conv2_in"], block.se(expected_in))


def test_no_squeeze_excites_every_position_with_1x1_convolutions():
    from senet_lib.cost import count_macs

    torch.manual_seed(0)
    block = SqueezeExcitation(16, 4, squeeze="none")
    x = torch.randn(2, 16, 5, 6)
    seen = []
    block.gate.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    out = block(x)
    fc1, fc2 = block.excitation.fc1, block.excitation.fc2
    h = torch.relu(torch.einsum("nchw,kc->nkhw", x, fc1.weight) + fc1.bias[:, None, None])
    s = torch.sigmoid(torch.einsum("nkhw,ck->nchw", h, fc2.weight) + fc2.bias[:, None, None])
    assert seen[0].shape == (2, 16, 5, 6)
    torch.testing.assert_close(seen[0], s)
    torch.testing.assert_close(out, x * s)
    # cost: the excitation runs at every position: 2·C·h MACs per position instead of once
    avg = count_macs(create_model("se_resnet20").eval(), (1, 3, 32, 32)).total
    nosq = count_macs(create_model("se_resnet20", se_squeeze="none").eval(), (1, 3, 32, 32)).total
    per_stage = [(16, 1, 32 * 32), (32, 2, 16 * 16), (64, 4, 8 * 8)]  # (C, C/16, H·W), 3 units each
    assert nosq - avg == sum(3 * 2 * c * h * (hw - 1) for c, h, hw in per_stage)


@pytest.mark.parametrize("variant", [{"se_placement": "3x3"}, {"se_squeeze": "none"}])
def test_new_variants_with_gates_at_one_equal_the_plain_network(variant):
    from senet_lib import override_gate

    torch.manual_seed(0)
    model = create_model("se_resnet20", **variant).eval()
    plain = create_model("resnet20").eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".se." not in k})
    x = torch.randn(2, 3, 32, 32)
    with override_gate(list(se_blocks(model).values()), 1.0):
        torch.testing.assert_close(model(x), plain(x))
    assert not torch.allclose(model(x), plain(x))
