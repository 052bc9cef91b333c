"""Excitations of SE networks that senet_lib did not build: timm's SE-ResNet-50, torchvision's MobileNetV3.

Each check recovers the excitation independently of the recorder: an SE module returns ``x * s``, so
``s`` per channel is the least-squares ratio of its output to its input, read by a hook on the SE
module itself (the recorder hooks the gate inside it). Randomly initialised networks, tiny inputs.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from senet_lib.excitation import (
    ExcitationRecorder,
    class_excitations,
    find_blocks,
    image_excitations,
    paper_blocks,
    select_blocks,
)


def _s_from_io(model: nn.Module, modules: dict[str, nn.Module], images: torch.Tensor) -> dict:
    """``s`` per image and channel recovered from each SE module's input x and output x * s."""
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(name):
        def hook(_m, inputs, y):
            x = inputs[0].detach().double().flatten(2)
            y = y.detach().double().flatten(2)
            xx = (x * x).sum(2)
            out[name] = ((y * x).sum(2) / xx.clamp(min=1e-300), xx > 0)

        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in modules.items()]
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    return out


def _data(n_per_class: int = 3, classes: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(n_per_class * classes, 3, size, size, generator=gen)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return images, labels


def test_timm_seresnet50_blocks_get_the_papers_names_and_true_excitations():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("seresnet50", pretrained=False, num_classes=2, zero_init_last=False)
    blocks = find_blocks(model)
    assert len(blocks) == 3 + 4 + 6 + 3
    assert list(blocks)[:2] == ["SE_2_1", "SE_2_2"] and list(blocks)[-1] == "SE_5_3"
    assert blocks["SE_4_6"] is model.layer3[5].se
    assert paper_blocks(list(blocks)) == ["SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"]

    images, labels = _data()
    chosen = {n: blocks[n] for n in ("SE_2_3", "SE_5_3")}
    stats = class_excitations(model, (images, labels), images_per_class=3, blocks=list(chosen))
    assert stats.blocks == ["SE_2_3", "SE_5_3"]
    assert stats.mean["SE_2_3"].shape == (2, 256) and stats.mean["SE_5_3"].shape == (2, 2048)
    truth = _s_from_io(model, chosen, images)
    for name in chosen:
        s, ok = truth[name]
        for k in range(2):
            rows = labels == k
            seen = ok[rows].all(0)  # channels whose input is nonzero in every image of class k
            assert seen.float().mean() > 0.9
            expected = s[rows].mean(0).double().numpy()
            assert abs(stats.mean[name][k][seen.numpy()] - expected[seen.numpy()]).max() < 1e-4
    # the recorder reads num_classes from timm's model.num_classes
    with ExcitationRecorder(model, ["SE_5_3"]) as rec:
        rec.update(images, labels)
    assert rec.stats().mean["SE_5_3"].shape == (2, 2048)


def test_timm_legacy_senet_port_is_found_and_named_as_in_the_paper():
    timm = pytest.importorskip("timm")
    model = timm.create_model("legacy_seresnet18", pretrained=False, num_classes=2)
    blocks = find_blocks(model)
    assert list(blocks) == [f"SE_{s}_{b}" for s in (2, 3, 4, 5) for b in (1, 2)]
    images, _ = _data(1, 2)
    s = image_excitations(model, images, ["SE_5_2"])["SE_5_2"]
    assert s.shape == (2, 512) and ((s >= 0) & (s <= 1)).all()


def test_torchvision_mobilenet_v3_small_blocks_named_by_module_path():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=3)
    blocks = find_blocks(model)
    assert len(blocks) == 9 and "features.4.block.2" in blocks
    assert all(isinstance(b, torchvision.ops.SqueezeExcitation) for b in blocks.values())
    images, labels = _data(2, 3)
    s_all = image_excitations(model, images)
    truth = _s_from_io(model, blocks, images)
    for name, s in s_all.items():
        expected, ok = truth[name]
        assert s.shape == expected.shape
        assert abs(s[ok.numpy()] - expected[ok].numpy()).max() < 1e-4
    stats = class_excitations(model, (images, labels), images_per_class=2)
    assert stats.blocks == list(blocks)


class _HomeMadeSE(nn.Module):
    """An SE network of no known type: the user names its gate by module path."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)
        self.attention = nn.Sigmoid()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.conv(x)
        s = self.attention(self.fc(u.mean((2, 3))))
        return self.head((u * s[:, :, None, None]).mean((2, 3)))


def test_modules_the_user_names_and_clear_errors():
    model = _HomeMadeSE()
    with pytest.raises(ValueError, match="Found no SE blocks"):
        select_blocks(model)
    with pytest.raises(ValueError, match="Unknown SE block.*named_modules"):
        select_blocks(model, ["attn"])
    images, labels = _data(2, 2, size=8)
    stats = class_excitations(model, (images, labels), images_per_class=2, blocks=["attention"])
    direct = torch.sigmoid(model.fc(model.conv(images).mean((2, 3)))).detach()
    assert abs(stats.mean["attention"][1] - direct[2:].mean(0).double().numpy()).max() < 1e-6
    with pytest.raises(ValueError, match="not one excitation per channel"):
        image_excitations(model, images, ["conv"])


def test_the_docs_fig6_example_runs_as_written(tmp_path, monkeypatch):
    """docs/any_se_network.md's Fig. 6 block, with random weights and random images instead of ImageNet."""
    pytest.importorskip("timm")
    from pathlib import Path

    from PIL import Image

    text = (Path(__file__).parents[1] / "docs" / "any_se_network.md").read_text()
    block = text.split("## The paper's Fig. 6")[1].split("```python\n")[1].split("```")[0]
    gen = torch.Generator().manual_seed(0)
    for name in ("cliff", "goldfish", "plane", "pug"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(2):
            pixels = torch.randint(0, 256, (40, 40, 3), dtype=torch.uint8, generator=gen).numpy()
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{i}.png")
    settings = {
        'FOLDER = "imagenet_fig6"': f'FOLDER = "{tmp_path / "images"}"',
        "PRETRAINED = True": "PRETRAINED = False",
        "IMAGES_PER_CLASS = 50": "IMAGES_PER_CLASS = 2",
        'MODEL = "legacy_seresnet50.in1k"': 'MODEL = "legacy_seresnet18"',  # same code path, 4× cheaper
    }
    for line, replacement in settings.items():
        assert line in block, f"docs/any_se_network.md no longer sets {line}"
        block = block.replace(line, replacement)
    monkeypatch.setenv("SENET_FIGURES_DIR", str(tmp_path / "figures"))
    namespace: dict = {}
    exec(compile(block, "docs/any_se_network.md", "exec"), namespace)
    stats = namespace["stats"]
    assert stats.classes == ["cliff", "goldfish", "plane", "pug"]
    assert stats.blocks == ["SE_2_2", "SE_3_2", "SE_4_2", "SE_5_1", "SE_5_2"]
    assert (tmp_path / "figures" / "fig6_legacy_seresnet18.png").is_file()
