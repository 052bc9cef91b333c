"""Checkpoints and exported weights: round trips, atomic writes, clear errors on bad files."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from senet_lib import checkpoint as ckpt
from senet_lib.models import create_model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.allclose(sa[k].float(), sb[k].float(), atol=atol, rtol=0) for k in sa
    )


def _trained_like(name: str = "se_resnet20", **options) -> torch.nn.Module:
    """A model whose weights differ from a fresh one (so a round trip cannot pass by accident)."""
    torch.manual_seed(1)
    model = create_model(name, 10, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        for buf_name, buf in model.named_buffers():
            if buf_name.endswith("running_mean"):
                buf.normal_()
    return model


def _save(path, model, epoch=3, config=None):
    history = [{"epoch": e, "test_acc": 0.1 * e} for e in range(1, epoch + 1)]
    return ckpt.save_checkpoint(
        path, model, {"step": 7}, epoch, history, config or {"lr": 0.1, "milestones": (1, 2)}
    )


def test_round_trip_rebuilds_model_from_arch_config(tmp_path):
    model = _trained_like(reduction=8)
    path = _save(tmp_path / "checkpoint.pt", model)
    # The file is loadable by plain torch.load with weights_only=True (no pickled objects).
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == ckpt.CHECKPOINT_FORMAT and raw["arch_config"]["reduction"] == 8
    loaded, payload = ckpt.load_checkpoint(path)
    assert loaded.arch_config == {"name": "se_resnet20", "num_classes": 10, "reduction": 8}
    assert _same_weights(model, loaded)
    assert not loaded.training
    assert payload["epoch"] == 3 and len(payload["history"]) == 3
    assert payload["config"]["milestones"] == [1, 2]
    assert payload["trainer_state"] == {"step": 7}


def test_load_into_given_model(tmp_path):
    model = _trained_like()
    path = _save(tmp_path / "checkpoint.pt", model)
    target = create_model("se_resnet20", 10)
    assert not _same_weights(model, target)
    loaded, _ = ckpt.load_checkpoint(path, model=target)
    assert loaded is target and _same_weights(model, target)


def test_wrong_architecture_names_both(tmp_path):
    path = _save(tmp_path / "checkpoint.pt", create_model("se_resnet20", 10))
    with pytest.raises(ValueError) as info:
        ckpt.load_checkpoint(path, model=create_model("resnet56", 10))
    message = str(info.value)
    assert "checkpoint.pt holds se_resnet20 (10 classes)" in message
    assert "the model you passed is resnet56 (10 classes)" in message
    assert "pass model=None" in message
    # Same name, other options: the options are named too.
    with pytest.raises(ValueError, match=r"se_resnet20 \(10 classes, reduction=4\)"):
        ckpt.load_checkpoint(path, model=create_model("se_resnet20", 10, reduction=4))


@pytest.mark.parametrize(
    "content", [b"", b"not a checkpoint at all", "truncate"], ids=["empty", "garbage", "truncated"]
)
def test_corrupt_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    _save(path, create_model("resnet20", 10))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "truncate" else content)
    with pytest.raises(
        ckpt.CheckpointError, match=r"checkpoint\.pt could not be read .* delete it and train again"
    ):
        ckpt.load_checkpoint(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="There is no checkpoint at .*nothing.pt"):
        ckpt.load_checkpoint(tmp_path / "nothing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ckpt.CheckpointError, match="foreign.pt is not a senet_lib checkpoint"):
        ckpt.load_checkpoint(foreign)


class _Payload:
    """An arbitrary pickled object: weights_only loading must refuse it."""


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt.CHECKPOINT_FORMAT, "obj": _Payload()}, path)
    with pytest.raises(ckpt.CheckpointError, match="evil.pt could not be read"):
        ckpt.read_checkpoint(path)


@pytest.mark.parametrize("failing", ["torch.save", "os.replace"])
def test_interrupted_write_keeps_previous_checkpoint(tmp_path, monkeypatch, failing):
    path = tmp_path / "checkpoint.pt"
    first = _trained_like()
    _save(path, first, epoch=1)
    before = path.read_bytes()

    if failing == "torch.save":

        def partial_save(obj, handle, *args, **kwargs):
            handle.write(b"PK\x03\x04 half a zip")  # some bytes reach the temp file, then the write dies
            raise OSError("disk full")

        monkeypatch.setattr(torch, "save", partial_save)
    else:

        def failing_replace(src, dst):
            raise KeyboardInterrupt  # killed between writing and renaming

        monkeypatch.setattr(ckpt.files.os, "replace", failing_replace)

    with pytest.raises((OSError, KeyboardInterrupt)):
        _save(path, create_model("se_resnet20", 10), epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp file left
    loaded, payload = ckpt.load_checkpoint(path)
    assert payload["epoch"] == 1 and _same_weights(first, loaded)


def test_export_weights_round_trip_and_sidecar(tmp_path):
    model = _trained_like()
    meta = {
        "recipe": {"epochs": 3, "lr": 0.1, "milestones": (1, 2)},
        "data": {"name": "synthetic", "train_size": 48},
        "accuracy": {"test_acc": 0.5},
        "note": "unit test",
    }
    path = ckpt.export_weights(model, tmp_path / "se_resnet20.pt", meta)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sidecar["bytes"] == path.stat().st_size
    assert sidecar["arch_config"] == {"name": "se_resnet20", "num_classes": 10}
    assert sidecar["recipe"]["milestones"] == [1, 2] and sidecar["accuracy"] == {"test_acc": 0.5}
    assert sidecar["note"] == "unit test" and "commit" in sidecar
    raw = torch.load(path, weights_only=True)
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values() if v.is_floating_point())
    full = tmp_path / "full.pt"
    _save(full, model)
    assert path.stat().st_size < 0.6 * full.stat().st_size  # fp16 halves the weights

    loaded, payload = ckpt.load_checkpoint(path)
    assert all(v.dtype == torch.float32 for v in loaded.state_dict().values() if v.is_floating_point())
    assert _same_weights(model, loaded, atol=2e-3) and payload["meta"]["note"] == "unit test"
    assert ckpt.verify_weights(path)["sha256"] == sidecar["sha256"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="does not match the SHA-256"):
        ckpt.verify_weights(path)


def test_export_needs_arch_config(tmp_path):
    with pytest.raises(ValueError, match="needs a model built by senet_lib.create_model"):
        ckpt.export_weights(torch.nn.Linear(2, 2), tmp_path / "w.pt", {})


def test_atomic_write_json(tmp_path):
    path = ckpt.atomic_write_json(tmp_path / "sub" / "a.json", {"x": (1, 2), "p": tmp_path})
    assert json.loads(path.read_text()) == {"x": [1, 2], "p": str(tmp_path)}
