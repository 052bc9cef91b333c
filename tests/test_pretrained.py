"""The shipped networks in pretrained/: matching a run, picking one for analysis, never a damaged file."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from senet_lib import train
from senet_lib.checkpoint import export_weights
from senet_lib.data import make_synthetic
from senet_lib.models import create_model
from senet_lib.train import TrainConfig, train_or_load
from senet_lib.train import runs as pretrained  # the shipped networks are found beside the runs


@pytest.fixture
def real_looking_data():
    """Tiny data that claims to be real CIFAR-10 (synthetic never matches a shipped network)."""
    data = make_synthetic(n_train=32, n_test=16, seed=0)
    return dataclasses.replace(data, name="cifar10", synthetic=False, label="CIFAR-10 (test stand-in)")


def _config(**changes) -> TrainConfig:
    return TrainConfig(epochs=3, batch_size=16, schedule="onecycle", progress=False, **changes)


def _ship(folder, data, config, name="se_resnet20", seed_weights=0, **options):
    torch.manual_seed(seed_weights)
    model = create_model(name, data.num_classes, **options)
    history = [{"epoch": e + 1, "test_acc": 0.5 + 0.1 * e} for e in range(config.epochs)]
    meta = {
        "recipe": config.to_dict(),
        "data": train.dataset_descriptor(data),
        "accuracy": {"final_test_acc": 0.7, "best_test_acc": 0.7},
        "history": history,
    }
    path = export_weights(model, folder / f"{name}_{data.name}_{config.epochs}ep_seed{config.seed}.pt", meta)
    return model, path


def test_train_or_load_uses_a_matching_shipped_network(tmp_path, monkeypatch, real_looking_data, capsys):
    monkeypatch.setenv("SENET_PRETRAINED_DIR", str(tmp_path / "pretrained"))
    shipped, _ = _ship(tmp_path / "pretrained", real_looking_data, _config())
    monkeypatch.setattr(
        train.runs, "fit", lambda *a, **k: pytest.fail("a shipped network must not be retrained")
    )
    run = train_or_load("se_resnet20", real_looking_data, _config(), checkpoint_dir=tmp_path / "ck")
    model, history = run
    assert run.source == "pretrained" and run.folder is None and run.record is None
    assert run.checkpoint.parent == tmp_path / "pretrained"
    assert "pretrained network" in capsys.readouterr().out
    assert [row["epoch"] for row in history] == [1, 2, 3] and history.final_test_acc == pytest.approx(0.7)
    for key, value in shipped.state_dict().items():  # fp16 weights, loaded back as fp32
        assert torch.allclose(model.state_dict()[key].float(), value.half().float())
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir()), "nothing is written"


def test_precision_and_pipeline_do_not_change_the_match(tmp_path, real_looking_data):
    data = train.dataset_descriptor(real_looking_data)
    _ship(tmp_path, real_looking_data, _config(precision="bf16", pipeline="device"))
    arch = {"name": "se_resnet20", "num_classes": 10}
    assert pretrained.find_pretrained(arch, data, _config(precision="fp32").to_dict(), tmp_path) is not None


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("recipe", lambda arch, data, recipe: (arch, data, {**recipe, "lr": 0.05})),
        ("seed", lambda arch, data, recipe: (arch, data, {**recipe, "seed": 1})),
        ("options", lambda arch, data, recipe: ({**arch, "reduction": 8}, data, recipe)),
        ("model", lambda arch, data, recipe: ({**arch, "name": "resnet20"}, data, recipe)),
        ("data size", lambda arch, data, recipe: (arch, {**data, "train_size": 31}, recipe)),
        ("synthetic", lambda arch, data, recipe: (arch, {**data, "synthetic": True}, recipe)),
    ],
)
def test_anything_else_that_differs_is_no_match(tmp_path, real_looking_data, what, change):
    config = _config()
    _ship(tmp_path, real_looking_data, config)
    arch = {"name": "se_resnet20", "num_classes": 10}
    data = train.dataset_descriptor(real_looking_data)
    assert pretrained.find_pretrained(arch, data, config.to_dict(), tmp_path) is not None
    assert pretrained.find_pretrained(*change(arch, data, config.to_dict()), tmp_path) is None, what


def test_a_damaged_file_is_skipped_never_loaded(tmp_path, real_looking_data, capsys):
    config = _config()
    _, path = _ship(tmp_path, real_looking_data, config)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    arch = {"name": "se_resnet20", "num_classes": 10}
    data = train.dataset_descriptor(real_looking_data)
    assert pretrained.find_pretrained(arch, data, config.to_dict(), tmp_path) is None
    assert pretrained.pick_pretrained("se_resnet20", "cifar10", 10, tmp_path) is None
    assert "SHA-256" in capsys.readouterr().out


def test_pick_prefers_the_longest_run_then_the_lowest_seed(tmp_path, real_looking_data):
    _ship(tmp_path, real_looking_data, _config(seed=1))
    _ship(tmp_path, real_looking_data, TrainConfig(**{**_config().to_dict(), "epochs": 2}))
    _ship(tmp_path, real_looking_data, _config(seed=0))
    _ship(tmp_path, real_looking_data, _config(seed=0), name="resnet20")
    picked = pretrained.pick_pretrained("se_resnet20", "cifar10", 10, tmp_path)
    assert picked is not None and picked.path.name == "se_resnet20_cifar10_3ep_seed0.pt"
    assert picked.history[-1]["epoch"] == 3 and "test stand-in" in picked.describe()
    assert pretrained.pick_pretrained("se_resnet20", "cifar100", 100, tmp_path) is None
    assert len(pretrained.list_pretrained(tmp_path)) == 4
    # 3 epochs × 32 training images: what notebook 06 weighs against notebook 05's run.
    assert picked.images_seen == 3 * 32
    assert pretrained.PretrainedMatch(picked.path, {"recipe": {"epochs": 3}}).images_seen == 0
    # The profile a run was started with is read from its sidecar's environment, "?" when unrecorded.
    assert pretrained.PretrainedMatch(picked.path, {"environment": {"profile": "he2016"}}).profile == "he2016"
    assert pretrained.PretrainedMatch(picked.path, {"recipe": {"epochs": 3}}).profile == "?"
    assert pretrained.recorded_profile({"environment": {"profile": "cpu"}}) == "cpu"  # an export's meta too
    assert (
        "(profile he2016, trained on"
        in pretrained.PretrainedMatch(picked.path, {"environment": {"profile": "he2016"}}).describe()
    )


def test_pick_prefers_official_pixels_to_a_longer_run_on_the_jpeg_copy(tmp_path, real_looking_data):
    jpeg = dataclasses.replace(real_looking_data, label="CIFAR-10 (JPEG q75 copy)")
    official = dataclasses.replace(
        real_looking_data, label="CIFAR-10 (lossless train, official test images 0–999)"
    )
    _ship(tmp_path, jpeg, _config(seed=0))
    _ship(tmp_path, jpeg, _config(seed=0), name="resnet20")
    assert pretrained.pick_pretrained("se_resnet20", "cifar10", 10, tmp_path).data_label == jpeg.label
    short = TrainConfig(**{**_config().to_dict(), "epochs": 2})
    _ship(tmp_path, official, short)
    _ship(tmp_path, official, short, name="resnet20")
    picked = pretrained.pick_pretrained("se_resnet20", "cifar10", 10, tmp_path)
    assert picked.path.name == "se_resnet20_cifar10_2ep_seed0.pt" and picked.data_label == official.label
    pair = pretrained.pick_pretrained_pair("resnet20", "se_resnet20", "cifar10", 10, tmp_path)
    assert [m.path.name for m in pair] == [
        "resnet20_cifar10_2ep_seed0.pt",
        "se_resnet20_cifar10_2ep_seed0.pt",
    ]


def test_pair_needs_the_same_recipe_and_seed_and_prefers_the_longest(tmp_path, real_looking_data):
    """Notebook 05's fair comparison: a plain net and its SE twin of one recipe, seed and data."""
    data = real_looking_data
    _ship(tmp_path, data, _config(seed=0), name="resnet20")
    _ship(tmp_path, data, _config(seed=1))  # an SE net of another seed: no twin of the plain one
    assert pretrained.pick_pretrained_pair("resnet20", "se_resnet20", "cifar10", 10, tmp_path) is None
    _ship(tmp_path, data, _config(seed=0, lr=0.05))  # same seed, another recipe: still none
    assert pretrained.pick_pretrained_pair("resnet20", "se_resnet20", "cifar10", 10, tmp_path) is None
    _ship(tmp_path, data, _config(seed=0))
    short = TrainConfig(**{**_config().to_dict(), "epochs": 2})
    _ship(tmp_path, data, short, name="resnet20")
    _ship(tmp_path, data, short)
    pair = pretrained.pick_pretrained_pair("resnet20", "se_resnet20", "cifar10", 10, tmp_path)
    assert pair is not None
    assert [m.path.name for m in pair] == [
        "resnet20_cifar10_3ep_seed0.pt",
        "se_resnet20_cifar10_3ep_seed0.pt",
    ]
    assert pretrained.pick_pretrained_pair("resnet20", "se_resnet20", "cifar100", 100, tmp_path) is None
