"""Gates frozen to constants (senet_lib.excitation.freeze): per-image gates, means, s = 1, the accuracy grid."""

from __future__ import annotations

import copy

import pytest
import torch

from senet_lib import create_model, se_blocks
from senet_lib import excitation as ex
from senet_lib.se import override_gate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model("se_resnet20", num_classes=3, reduction=4).eval()
    with torch.no_grad():  # move every gate away from 0.5 and make them depend on the image
        for block in se_blocks(model).values():
            block.excitation.fc1.weight.mul_(8)
            block.excitation.fc2.weight.mul_(8)
    return model


def fake_batches(sizes=(3, 5), seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 3, (n,), generator=generator))
        for n in sizes
    ]


def gates_by_hook(model, x) -> dict[str, torch.Tensor]:
    """Every block's per-image gates ``[N, C]`` for ``x``, with plain forward hooks."""
    kept, handles = {}, []
    for name, block in se_blocks(model).items():
        handles.append(block.gate.register_forward_hook(lambda m, i, s, name=name: kept.__setitem__(name, s)))
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return kept


def test_freezing_with_one_images_own_gates_gives_its_own_output():
    model = tiny_model()
    (x, _), (other, _) = fake_batches((1, 1))
    blocks = se_blocks(model)
    own = {name: s[0] for name, s in gates_by_hook(model, x).items()}
    foreign = {name: s[0] for name, s in gates_by_hook(model, other).items()}
    with torch.no_grad():
        intact = model(x)
        with ex.frozen_gates(blocks, own, list(blocks)):
            frozen = model(x)
        with ex.frozen_gates(blocks, foreign, list(blocks)):
            wrong = model(x)
    assert torch.allclose(frozen, intact, atol=1e-6)
    assert not torch.allclose(wrong, intact, atol=1e-3), "another image's gates must change the output"
    assert all(not b.gate._forward_hooks for b in blocks.values()), "the hooks must be removed"


def test_gate_one_is_the_network_without_its_se_blocks():
    model = tiny_model()
    plain = copy.deepcopy(model)
    units = [m for m in plain.modules() if getattr(m, "se", None) is not None]
    assert len(units) == 9
    for unit in units:
        unit.se = None  # residual_forward then runs the plain unit
    x, _ = fake_batches((4,))[0]
    blocks = se_blocks(model)
    with torch.no_grad():
        with ex.frozen_gates(blocks, dict.fromkeys(blocks, 1.0), list(blocks)):
            removed = model(x)
        expected, intact = plain(x), model(x)
    assert torch.allclose(removed, expected, atol=1e-5)
    assert not torch.allclose(intact, expected, atol=1e-3)


def test_mean_gates_are_the_mean_over_every_image_of_both_batches():
    model = tiny_model()
    batches = fake_batches((3, 5))
    parts = [gates_by_hook(model, x) for x, _ in batches]
    got = ex.mean_gates(model, batches)
    assert list(got) == list(se_blocks(model))
    apart = 0
    for name, mean in got.items():
        by_hand = torch.cat([p[name] for p in parts]).double().mean(0)
        assert mean.shape == (se_blocks(model)[name].channels,)
        assert torch.allclose(mean, by_hand, atol=1e-9), name
        # the batch sizes differ, so the mean of the two batch means is another number
        of_batches = torch.stack([p[name].double().mean(0) for p in parts]).mean(0)
        apart += not torch.allclose(of_batches, by_hand, atol=1e-6)
    assert apart >= len(got) // 2, "the gates barely depend on the image: the check could not tell"


def test_shuffled_gates_permute_each_block_and_are_seeded():
    gates = {"SE_2_1": torch.arange(8.0), "SE_3_1": torch.arange(16.0) / 16}
    a, b, c = ex.shuffled_gates(gates, 0), ex.shuffled_gates(gates, 0), ex.shuffled_gates(gates, 1)
    for name, s in gates.items():
        assert torch.equal(a[name].sort().values, s) and not torch.equal(a[name], s)
        assert torch.equal(a[name], b[name])
    assert any(not torch.equal(a[n], c[n]) for n in gates)


def test_freeze_groups_blocks_stages_and_all():
    groups = ex.freeze_groups(["SE_2_1", "SE_2_2", "SE_3_1"])
    assert groups == {
        "SE_2_1": ["SE_2_1"],
        "SE_2_2": ["SE_2_2"],
        "SE_3_1": ["SE_3_1"],
        "stage 2": ["SE_2_1", "SE_2_2"],
        "stage 3": ["SE_3_1"],
        "all": ["SE_2_1", "SE_2_2", "SE_3_1"],
    }
    assert ex.freeze_groups(["layer1.se", "layer2.se"]) == {
        "layer1.se": ["layer1.se"],
        "layer2.se": ["layer2.se"],
        "all": ["layer1.se", "layer2.se"],
    }


def test_override_gate_takes_one_value_per_channel():
    model = tiny_model()
    block = se_blocks(model)["SE_4_1"]
    x, _ = fake_batches((2,))[0]
    values = torch.linspace(0.1, 0.9, block.channels)
    with override_gate(block, values):
        s = gates_by_hook(model, x)["SE_4_1"]
    assert torch.allclose(s, values.expand(2, -1))
    with override_gate(block, values[:3], channels=[5, 0, 7]):
        s = gates_by_hook(model, x)["SE_4_1"]
    assert torch.allclose(s[:, [5, 0, 7]], values[:3].expand(2, -1))
    assert not torch.allclose(s[:, 1], values[1].expand(2))  # the other channels keep their own gates


def test_frozen_gate_accuracy_against_hand_written_hooks():
    model = tiny_model()
    train, test = fake_batches((6, 4), seed=1), fake_batches((5, 7), seed=2)
    gates = ex.mean_gates(model, train)
    seen = []
    result = ex.frozen_gate_accuracy(model, test, gates, seed=3, progress=lambda *a: seen.append(a))
    blocks = list(se_blocks(model))
    assert result.images == 12 and list(result.accuracy) == list(ex.VARIANTS)
    assert list(result.groups) == [*blocks, "stage 2", "stage 3", "stage 4", "all"]
    assert len(seen) == 3 * len(result.groups)

    def accuracy(hook_values: dict[str, torch.Tensor] | None) -> float:
        handles = []
        for name, block in se_blocks(model).items():
            if hook_values is not None and name in hook_values:
                value = hook_values[name].float()
                handles.append(block.gate.register_forward_hook(lambda m, i, s, v=value: v.expand_as(s)))
        with torch.no_grad():
            hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in test)
        for handle in handles:
            handle.remove()
        return hits / 12

    assert result.intact == accuracy(None)
    assert result.accuracy["mean"]["all"] == accuracy(gates)
    shuffled = ex.shuffled_gates(gates, 3)
    assert result.accuracy["shuffled"]["SE_3_2"] == accuracy({"SE_3_2": shuffled["SE_3_2"]})
    stage4 = {n: torch.ones_like(gates[n]) for n in result.groups["stage 4"]}
    assert result.accuracy["one"]["stage 4"] == accuracy(stage4)
    record = result.to_dict()
    assert record["drop"]["one"]["all"] == pytest.approx(result.intact - result.accuracy["one"]["all"])
    with pytest.raises(ValueError, match="Unknown variants"):
        ex.frozen_gate_accuracy(model, test, gates, variants=["median"])
    with pytest.raises(ValueError, match="No SE blocks named"):
        ex.frozen_gate_accuracy(model, test, {"SE_9_9": gates["SE_2_1"]})


def test_the_figure_script_draws_the_newest_record_of_each_network(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    model = tiny_model()
    train, test = fake_batches((4,), seed=1), fake_batches((6,), seed=2)
    gates = ex.mean_gates(model, train)
    run = {
        "data": "synthetic",
        "copy": "fake",
        "test_images": 6,
        "means_from": {"images": 4},
        **ex.frozen_gate_accuracy(model, test, gates, variants=("mean", "one")).to_dict(),
    }
    results = tmp_path / "results"
    results.mkdir()
    for stamp, epochs in (("20260101T000000Z", 1), ("20260102T000000Z", 2)):  # the same network twice
        record = {
            "kind": "freeze_gates",
            "created": stamp,
            "seed": 0,
            "variants": {},
            "environment": {"commit": "abc", "device_name": "cpu"},
            "networks": [{"weights": "se.pt", "model": "se_resnet20", "epochs": epochs, "runs": [run]}],
        }
        (results / f"freeze_gates_{stamp}.json").write_text(json.dumps(record))
    path = Path(__file__).resolve().parents[1] / "scripts" / "plot_freeze_gates.py"
    spec = importlib.util.spec_from_file_location("plot_freeze_gates", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows, files = script.newest_runs(results)
    assert [r["epochs"] for r in rows] == [2] and files == ["freeze_gates_20260102T000000Z.json"]
    assert script.main(["--results", str(results), "--figures", str(tmp_path / "figures")]) == 0
    provenance = json.loads((tmp_path / "figures" / f"{script.NAME}.json").read_text())
    assert provenance["records"] == files and provenance["networks"] == ["se.pt"]
    assert (tmp_path / "figures" / f"{script.NAME}.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="No freeze_gates record"):
        script.newest_runs(tmp_path)
