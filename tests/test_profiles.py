"""Profiles (gpu, he2016, step and the old name), the recipe fields they need (zero-init, warm-up at a
constant lr, evaluation cadence, flip-TTA), the CUDA speed-ups' CPU fallbacks and the ``profiles`` command."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from senet_lib.cli import main
from senet_lib.data import make_synthetic
from senet_lib.models import create_model, zero_residual_branches
from senet_lib.train import RunPlan, TrainConfig, Trainer, fit, optim
from senet_lib.train import config as estimates  # the profiles' time estimates live beside them
from senet_lib.train.config import GPU_PROFILE_RATIONALE, LATER_FIELDS, PROFILE_SETTINGS, get_settings
from senet_lib.train.runs import same_recipe
from senet_lib.train.trainer import flip_tta_logits

pytestmark = pytest.mark.usefixtures("one_torch_thread")


CPU = torch.device("cpu")


def tiny(**changes) -> TrainConfig:
    values = dict(epochs=3, batch_size=16, lr=0.05, precision="fp32", progress=False, seed=0)
    return TrainConfig(**{**values, **changes})


# --------------------------------------------------------------------------- the profiles
def test_gpu_profile_is_the_headline_recipe():
    gpu = get_settings("gpu")
    assert gpu.models == ("resnet50", "se_resnet50") and gpu.dataset == "cifar10" and gpu.train_subset is None
    c = gpu.config
    assert (c.epochs, c.batch_size, c.schedule) == (80, 500, "onecycle") and 50_000 % c.batch_size == 0
    assert c.nesterov and c.label_smoothing > 0 and c.cutout > 0 and c.warmup_epochs > 0
    assert c.zero_init_residual and c.tta and c.eval_every > 1 and c.save_every == c.eval_every
    assert c.compile is None and c.precision is None and c.channels_last is None  # CUDA: compile, bf16, NHWC
    assert "95.5" in GPU_PROFILE_RATIONALE and "theirs" in GPU_PROFILE_RATIONALE


def test_he2016_profile_is_he_et_al_s_cifar_recipe():
    he = get_settings("he2016")
    c = he.config
    assert he.models == ("resnet20", "se_resnet20")
    assert (c.lr, c.momentum, c.weight_decay, c.batch_size, c.epochs) == (0.1, 0.9, 1e-4, 128, 164)
    assert c.schedule == "step" and c.milestones == (c.epochs // 2, c.epochs * 3 // 4) and c.gamma == 0.1


def test_every_profile_has_a_description_and_the_step_profile_kept_paper_s_recipe():
    assert all(p.description for p in PROFILE_SETTINGS.values())
    assert "not the SE paper's" in get_settings("step").description
    assert "paper" not in PROFILE_SETTINGS


def test_old_profile_name_says_what_to_use(capsys):
    assert main(["train", "--profile", "paper", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "now called 'step'" in err and "Traceback" not in err


# --------------------------------------------------------------------------- new recipe fields
def test_later_fields_stay_out_of_the_recipe_at_their_defaults():
    base = tiny()
    assert not set(LATER_FIELDS) & set(base.recipe())
    changed = tiny(zero_init_residual=True)
    assert changed.recipe()["zero_init_residual"] is True and changed.recipe() != base.recipe()
    saved_before_the_field = {k: v for k, v in base.to_dict().items() if k not in LATER_FIELDS}
    assert same_recipe(saved_before_the_field, base.to_dict())
    assert not same_recipe(saved_before_the_field, changed.to_dict())
    # runtime fields never name a run
    assert tiny(eval_every=5, tta=True, compile=True).recipe() == base.recipe()


def test_warmup_constant_holds_a_fraction_of_the_lr_then_releases_it():
    config = tiny(schedule="step", milestones=(2,), warmup_epochs=1, warmup_constant=0.1)
    trainer = Trainer(create_model("resnet20", 10), config, CPU, steps_per_epoch=4)
    seen = []
    for _ in range(12):
        seen.append(trainer.lr)
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert seen[:4] == pytest.approx([0.005] * 4) and seen[4:8] == pytest.approx([0.05] * 4)
    assert seen[8:] == pytest.approx([0.005] * 4)  # the milestone at epoch 2
    for bad in (dict(warmup_constant=0.1), dict(warmup_constant=0.1, warmup_epochs=1, schedule="onecycle")):
        with pytest.raises(ValueError, match="warmup_constant"):
            tiny(**bad)


def test_zero_residual_branches_zeroes_each_branch_s_last_norm():
    model = create_model("se_resnet20", 10)
    assert zero_residual_branches(model) == 9  # 3 stages x 3 blocks
    for block in (m for m in model.modules() if hasattr(m, "last_branch_layer")):
        assert torch.count_nonzero(block.last_branch_layer().weight) == 0


def test_fit_zero_inits_a_fresh_run_only(monkeypatch, tmp_path):
    import senet_lib.train.loop as loop

    calls = []
    monkeypatch.setattr(loop, "zero_residual_branches", lambda model: calls.append(model) or 0)
    data = make_synthetic(n_train=32, n_test=16, seed=0)
    config = tiny(epochs=1, zero_init_residual=True)
    fit(create_model("resnet20", 10), data, config, run_dir=tmp_path / "r", device=CPU)
    assert len(calls) == 1
    fit(create_model("resnet20", 10), data, config, run_dir=tmp_path / "r", resume=True, device=CPU)
    assert len(calls) == 1  # a finished run resumed: no new initialisation


# --------------------------------------------------------------------------- cadence and TTA
def test_eval_every_skips_test_passes_but_always_tests_the_last_epoch_and_adds_flip_tta(tmp_path):
    data = make_synthetic(n_train=32, n_test=16, seed=0)
    history = fit(
        create_model("resnet20", 10),
        data,
        tiny(epochs=3, eval_every=2, tta=True),
        run_dir=tmp_path,
        device=CPU,
    )
    assert [row["test_acc"] is not None for row in history] == [False, True, True]
    assert "test_acc_flip" in history[-1] and "test_acc_flip" not in history[1]
    assert 0 <= history[-1]["test_acc_flip"] <= 1 and history.final_test_acc is not None


class _LeftVsRight(nn.Module):
    """Class 0 when the left half is brighter, class 1 when the right half is: not flip-symmetric."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        left, right = x[..., :half].mean(dim=(1, 2, 3)), x[..., half:].mean(dim=(1, 2, 3))
        return torch.stack([left - right, right - left], dim=1)


def test_flip_tta_averages_the_mirrored_prediction():
    x = torch.zeros(4, 3, 8, 8)
    x[:2, ..., :4] = 1.0  # left bright: class 0
    x[2:, ..., 4:] = 1.0  # right bright: class 1
    y = torch.tensor([0, 0, 1, 1])
    model = _LeftVsRight()
    assert (model(x).argmax(1) == y).all()
    tta = flip_tta_logits(model, x)
    assert torch.allclose(tta, torch.zeros_like(tta))  # the mirror exactly cancels this model's evidence
    # the same function as a linear layer (parameters to train), through the Trainer's evaluation
    asymmetric = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    with torch.no_grad():
        asymmetric[1].weight.copy_(_LeftVsRight()(torch.eye(192).view(192, 3, 8, 8)).T)
        asymmetric[1].bias.zero_()
    trainer = Trainer(asymmetric, tiny(epochs=1), CPU, steps_per_epoch=1)
    assert trainer.evaluate([(x, y)])[1] == 1.0
    assert trainer.evaluate_flip_tta([(x, y)]) == 0.5  # ties go to class 0


# --------------------------------------------------------------------------- CUDA speed-ups, CPU unchanged
def test_compile_defaults_on_for_cuda_only():
    assert RunPlan.resolve(tiny(), CPU).compile is False
    assert RunPlan.resolve(tiny(compile=False), CPU).compile is False


def test_sgd_is_fused_only_where_supported_and_falls_back(monkeypatch):
    model = create_model("resnet20", 10)
    assert not optim.fused_sgd_supported(CPU)
    assert not optim.make_sgd(model, tiny(), CPU).defaults.get("fused")
    made = []

    class FakeSGD(torch.optim.SGD):
        def __init__(self, params, fused=None, **kwargs):
            made.append(fused)
            if fused:
                raise RuntimeError("fused kernel unavailable")
            super().__init__(params, **kwargs)

    monkeypatch.setattr(optim, "fused_sgd_supported", lambda device: True)
    monkeypatch.setattr(optim.torch.optim, "SGD", FakeSGD)
    sgd = optim.make_sgd(model, tiny(), CPU)
    assert made == [True, None] and isinstance(sgd, FakeSGD)


# --------------------------------------------------------------------------- the profiles command
def test_profiles_command_lists_every_profile_with_labelled_estimates(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name}: " in out for name in PROFILE_SETTINGS)
    assert "estimate" in out and "H100" in out and "T4" in out and "assumed" in out


def test_profiles_json_has_every_value_and_the_gpu_profile_fits_ten_minutes_an_h100(capsys):
    assert main(["profiles", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert set(listed) == set(PROFILE_SETTINGS)
    assert listed["gpu"]["recipe"] == get_settings("gpu").config.to_dict() | {"milestones": []}
    h100 = [
        e
        for rows in listed["gpu"]["estimated_seconds_per_network"].values()
        for e in rows
        if e["device"] == "H100"
    ]
    assert len(h100) == 2 and all(
        0 < e["seconds"] <= 600 for e in h100
    )  # the profile's design goal (estimate)
    assert main(["profiles", "he2016", "--json"]) == 0
    assert [p["name"] for p in json.loads(capsys.readouterr().out)] == ["he2016"]


def test_cpu_estimate_comes_from_a_recorded_run(tmp_path):
    record = {
        "model": {"name": "resnet20"},
        "precision": "fp32",
        "device": "cpu",
        "history": [{"images_per_sec": v} for v in (90.0, 100.0, 110.0)],
    }
    (tmp_path / "train_resnet20_x.json").write_text(json.dumps(record))
    assert estimates.recorded_cpu_throughput(tmp_path) == {
        ("resnet20", "fp32"): (100.0, "train_resnet20_x.json")
    }
    profile = get_settings("he2016")
    fp32 = dataclasses.replace(profile, config=dataclasses.replace(profile.config, precision="fp32"))
    cpu = estimates.estimate_profile(fp32, results=tmp_path)["resnet20"][0]
    assert cpu.seconds == pytest.approx(164 * 50_000 / 100 + 164 * 10_000 / 300)
    assert "train_resnet20_x.json" in cpu.how
    assert estimates.estimate_profile(fp32, results=tmp_path / "none")["resnet20"][0].seconds is None
