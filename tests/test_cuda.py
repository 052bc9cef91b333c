"""CUDA checks: what CI (CPU only) cannot run. A session lent a GPU runs these first::

    python -m pytest -m cuda -q            # about a minute on an H100

Every test here is skipped, with that reason, on a machine without CUDA. Each one exercises a path
that has never executed on CPU: the device-resident loader on the GPU, fp16 + GradScaler, bf16,
channels-last, ``torch.compile``, train → kill → resume → evaluate, and excitation hooks on CUDA.
"""

from __future__ import annotations

import pytest
import torch

from senet_lib import cli
from senet_lib.checkpoint import load_checkpoint
from senet_lib.data import make_loaders, make_synthetic
from senet_lib.excitation import ExcitationRecorder
from senet_lib.models import create_model
from senet_lib.train import TrainConfig, Trainer, fit
from senet_lib.train.optim import fused_sgd_supported

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU (a GPU session runs: pytest -m cuda)"
    ),
]

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_train=256, n_test=64, seed=0)


def _config(**changes) -> TrainConfig:
    # compile off unless a test asks (it is on by default on CUDA): the suite stays within ~2 minutes
    values = dict(
        epochs=2, batch_size=32, lr=0.05, schedule="onecycle", progress=False, seed=0, compile=False
    )
    values.update(changes)
    return TrainConfig(**values)


def test_device_loader_on_cuda_matches_the_cpu_one(data):
    """Same seed, same epoch: the GPU-resident batches equal the CPU ones (augmentation included)."""
    gpu_train, _ = make_loaders(data, 32, CUDA, pipeline="device", cutout=8, seed=3)
    cpu_train, _ = make_loaders(data, 32, CPU, pipeline="device", cutout=8, seed=3)
    for (xg, yg), (xc, yc) in zip(gpu_train, cpu_train, strict=True):
        assert xg.device.type == yg.device.type == CUDA.type
        assert torch.equal(yg.cpu(), yc) and torch.allclose(xg.cpu(), xc, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_training_steps_in_each_precision(data, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no native bf16")
    model = create_model("se_resnet20", data.num_classes)
    trainer = Trainer(model, _config(precision=precision), CUDA, steps_per_epoch=8)
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    loader, _ = make_loaders(data, 32, CUDA, pipeline="device")
    for x, y in loader:
        trainer.train_step(x, y)
    trainer.check_finite()
    loss, acc = trainer.metrics()
    assert loss == loss and 0 <= acc <= 1 and trainer.step == len(loader)
    assert next(model.parameters()).dtype == torch.float32, "autocast keeps fp32 master weights"


def test_channels_last_gives_the_same_outputs(data):
    torch.manual_seed(0)
    model = create_model("se_resnet20", data.num_classes).to(CUDA).eval()
    x = data.normalize(data.test.images[:16]).to(CUDA)
    with torch.no_grad():
        reference = model(x)
        model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out, reference, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("name", ["se_resnet20", "se_resnet50"])
def test_compiled_training_step(data, name):
    """torch.compile of the whole step path; eval mode and a last partial batch do not break it."""
    model = create_model(name, data.num_classes, **({"stem": "cifar"} if name == "se_resnet50" else {}))
    config = _config(compile=True, precision="bf16" if torch.cuda.is_bf16_supported() else "fp16")
    trainer = Trainer(model, config, CUDA, steps_per_epoch=4)
    loader, test = make_loaders(data, 32, CUDA, pipeline="device")
    for step, (x, y) in enumerate(loader):
        trainer.train_step(x, y)
        if step == 3:
            break
    trainer.check_finite()
    loss, acc = trainer.evaluate(test)  # the eager module, same weights: no recompile for eval mode
    assert loss == loss and 0 <= acc <= 1
    assert trainer.forward is not trainer.model and torch.backends.cudnn.benchmark
    assert bool(trainer.optimizer.defaults.get("fused")) == fused_sgd_supported(CUDA)


def test_gpu_profile_features_on_cuda(data, tmp_path):
    """zero-init, evaluation cadence and flip-TTA as the gpu profile uses them, on CUDA."""
    config = _config(epochs=3, zero_init_residual=True, eval_every=2, tta=True, cutout=8, nesterov=True)
    history = fit(create_model("se_resnet20", data.num_classes), data, config, run_dir=tmp_path, device=CUDA)
    assert [row["test_acc"] is None for row in history] == [True, False, False]
    assert 0 <= history[-1]["test_acc_flip"] <= 1


def test_train_kill_resume_evaluate(data, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real_step, calls = Trainer.train_step, {"n": 0}

    def killed_in_epoch_two(self, x, y):
        calls["n"] += 1
        if calls["n"] == 10:  # epoch 2 (8 steps an epoch), second step
            raise KeyboardInterrupt
        return real_step(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        fit(create_model("se_resnet20", data.num_classes), data, _config(), run_dir=run, device=CUDA)
    monkeypatch.undo()
    _, partial = load_checkpoint(run / "checkpoint.pt")
    assert partial["epoch"] == 1
    history = fit(
        create_model("se_resnet20", data.num_classes), data, _config(), run_dir=run, resume=True, device=CUDA
    )
    assert [row["epoch"] for row in history] == [1, 2]
    monkeypatch.setenv("SENET_DEVICE", "cuda")
    assert cli.main(["evaluate", str(run), "--dataset", "synthetic", "--test-subset", "64"]) == 0
    assert "test acc" in capsys.readouterr().out


def test_excitation_recording_on_cuda_matches_cpu(data):
    torch.manual_seed(0)
    model = create_model("se_resnet20", data.num_classes).eval()
    images, labels = data.normalize(data.test.images[:64]), data.test.labels[:64]
    with ExcitationRecorder(model) as recorder:
        recorder.update(images, labels)
    on_cpu = recorder.stats(classes=data.classes)
    model.to(CUDA)
    with ExcitationRecorder(model) as recorder:
        recorder.update(images.to(CUDA), labels.to(CUDA))
    on_gpu = recorder.stats(classes=data.classes)
    for block in on_cpu.blocks:
        assert torch.allclose(
            torch.as_tensor(on_gpu.mean[block]),
            torch.as_tensor(on_cpu.mean[block]),
            atol=1e-4,
            equal_nan=True,
        )
