"""Training: recipe, optimizer groups, LR schedules, precision, resume, divergence, train_or_load."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest
import torch

from senet_lib import train
from senet_lib.checkpoint import load_checkpoint, save_checkpoint
from senet_lib.cli import main as cli_main
from senet_lib.data import make_synthetic
from senet_lib.env import Precision, environment_record
from senet_lib.models import create_model
from senet_lib.train import History, RunPlan, TrainConfig, Trainer, TrainingDiverged, fit, train_or_load
from senet_lib.train.config import get_settings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data():
    """48 training images (3 batches of 16) and 16 test images."""
    return make_synthetic(n_train=48, n_test=16, seed=0)


def tiny_config(**changes) -> TrainConfig:
    values = dict(
        epochs=2,
        batch_size=16,
        lr=0.05,
        schedule="step",
        milestones=(1,),
        precision="fp32",
        progress=False,
        seed=0,
    )
    values.update(changes)
    return TrainConfig(**values)


def lrs_over(trainer: Trainer, steps: int) -> list[float]:
    """The LR each of the next ``steps`` optimizer steps uses (stepping without gradients)."""
    seen = []
    for _ in range(steps):
        seen.append(trainer.lr)
        trainer.optimizer.step()
        trainer.scheduler.step()
    return seen


# --------------------------------------------------------------------------- recipe
def test_config_round_trip_and_validation():
    config = tiny_config(epochs=6, milestones=(3, 6), cutmix=0.5)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="schedule must be one of step, cosine, onecycle"):
        tiny_config(schedule="linear")
    with pytest.raises(ValueError, match="cutmix is a probability"):
        tiny_config(cutmix=2.0)
    with pytest.raises(ValueError, match="Unknown TrainConfig field.*bogus"):
        TrainConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_from_profile_takes_profile_values_and_overrides():
    step = get_settings("step")
    recipe = dataclasses.replace(step.config, label_smoothing=0.1, nesterov=True, seed=5)
    profile = dataclasses.replace(step, config=recipe, seeds=(5, 6))
    config = TrainConfig.from_profile(profile, epochs=3)
    assert (config.epochs, config.batch_size, config.lr) == (3, profile.batch_size, profile.lr)
    assert config.milestones == (30, 60, 90) and config.schedule == "step"
    assert config.label_smoothing == 0.1 and config.nesterov and config.seed == 5
    with pytest.raises(TypeError, match="no field.*epoch_count"):
        TrainConfig.from_profile(profile, epoch_count=3)


def test_profiles_are_trainconfig_overrides_and_keep_their_run_names():
    """Regression pin: run folders on disk are named by the recipe's hash; these names were computed
    before the recipe got one definition (profiles as TrainConfig overrides) and must not change."""
    data = make_synthetic(200, 100, seed=0)
    pinned = {
        "quick": "se_resnet20-synthetic-n200-17be13af-seed0",
        "cpu": "se_resnet20-synthetic-n200-bea31f25-seed0",
        "class": "se_resnet50-synthetic-n200-ba4b7519-seed0",
        "step": "se_resnet50-synthetic-n200-8033fb07-seed0",  # called "paper" when pinned
        "gpu": "se_resnet50-synthetic-n200-84349afa-seed0",  # pinned when added
        "he2016": "se_resnet20-synthetic-n200-2aeadbd0-seed0",
    }
    for name, run_name in pinned.items():
        profile = get_settings(name)
        config = TrainConfig.from_profile(profile)
        assert config == profile.config and profile.epochs == config.epochs
        assert train.default_run_name(profile.models[1], data, config) == run_name
    assert get_settings("step").config == TrainConfig(
        epochs=100, batch_size=128
    )  # the defaults are the paper's


# --------------------------------------------------------------------------- optimizer and schedules
def test_no_weight_decay_on_norm_and_bias():
    model = create_model("se_resnet20", 10)
    trainer = Trainer(
        model, tiny_config(decay_norm_and_bias=False, weight_decay=1e-3), CPU, steps_per_epoch=1
    )
    decay, no_decay = trainer.optimizer.param_groups
    assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
    ids = {id(p) for p in no_decay["params"]}
    for name, p in model.named_parameters():
        is_norm_or_bias = name.endswith(".bias") or ".bn" in name or p.ndim == 1
        assert (id(p) in ids) == is_norm_or_bias, name
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    # default: everything decays
    (group,) = Trainer(model, tiny_config(), CPU, steps_per_epoch=1).optimizer.param_groups
    assert group["weight_decay"] == 5e-4 and len(group["params"]) == len(list(model.parameters()))


def test_step_schedule_decays_at_milestones():
    model = torch.nn.Linear(2, 2)
    trainer = Trainer(
        model, tiny_config(epochs=10, lr=1.0, milestones=(3, 6), gamma=0.1), CPU, steps_per_epoch=5
    )
    lrs = lrs_over(trainer, 50)
    assert lrs[0] == pytest.approx(1.0) and lrs[14] == pytest.approx(1.0)  # epochs 0-2
    assert lrs[15] == pytest.approx(0.1) and lrs[29] == pytest.approx(0.1)  # epochs 3-5
    assert lrs[30] == pytest.approx(0.01) and lrs[49] == pytest.approx(0.01)


def test_warmup_ramp_then_step():
    config = tiny_config(epochs=4, lr=0.4, milestones=(3,), warmup_epochs=2)
    trainer = Trainer(torch.nn.Linear(2, 2), config, CPU, steps_per_epoch=5)
    lrs = lrs_over(trainer, 20)
    assert lrs[:10] == pytest.approx([0.4 * (s + 1) / 10 for s in range(10)])
    assert lrs[10:15] == pytest.approx([0.4] * 5) and lrs[15] == pytest.approx(0.04)


def test_cosine_with_warmup_ends_at_zero():
    config = tiny_config(epochs=4, lr=1.0, schedule="cosine", warmup_epochs=1)
    trainer = Trainer(torch.nn.Linear(2, 2), config, CPU, steps_per_epoch=5)
    lrs = lrs_over(trainer, 20)
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lrs[5] == pytest.approx(1.0)
    assert lrs[5 + 15 // 2] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 15)))
    assert lrs[19] == pytest.approx(0.5 * (1 + math.cos(math.pi * 14 / 15)))
    assert trainer.lr == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:], strict=False))


def test_onecycle_peaks_at_lr():
    config = tiny_config(epochs=4, lr=0.8, schedule="onecycle", warmup_epochs=1)
    trainer = Trainer(torch.nn.Linear(2, 2), config, CPU, steps_per_epoch=5)
    lrs = lrs_over(trainer, 20)
    assert lrs[0] == pytest.approx(0.8 / 25)
    assert max(lrs) == pytest.approx(0.8) and lrs.index(max(lrs)) == 4  # peak at the end of warm-up
    assert lrs[-1] < 0.8 / 25 and trainer.optimizer.param_groups[0]["momentum"] == 0.9


def test_scheduler_holds_past_planned_steps():
    config = tiny_config(epochs=1, lr=0.8, schedule="onecycle")
    trainer = Trainer(torch.nn.Linear(2, 2), config, CPU, steps_per_epoch=2)
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    for _ in range(4):  # a benchmark may run longer than planned: OneCycleLR must not raise
        trainer.train_step(x, y)
    assert trainer.step == 4


# --------------------------------------------------------------------------- precision
def test_precision_selects_grad_scaler(monkeypatch):
    model = create_model("resnet20", 10)
    assert not Trainer(model, tiny_config(precision="fp32"), CPU, 1).scaler.is_enabled()
    bf16 = Trainer(model, tiny_config(precision="bf16"), CPU, 1)
    assert not bf16.scaler.is_enabled() and bf16.precision.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 autocast is not supported .* CPU"):
        Trainer(model, tiny_config(precision="fp16"), CPU, 1)
    fp16 = Precision("fp16", torch.float16, use_grad_scaler=True)
    monkeypatch.setattr(train.trainer, "get_precision", lambda device, name=None: fp16)
    assert Trainer(model, tiny_config(precision="fp16"), CPU, 1).scaler.is_enabled()


def test_bf16_train_step_on_cpu():
    torch.manual_seed(0)
    model = create_model("resnet20", 10)
    trainer = Trainer(model, tiny_config(precision="bf16", label_smoothing=0.1), CPU, steps_per_epoch=2)
    dtypes = []
    model.fc.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    before = model.fc.weight.detach().clone()
    loss = trainer.train_step(x, y)
    assert dtypes == [torch.bfloat16] and loss.ndim == 0 and not loss.requires_grad
    assert torch.isfinite(loss) and not torch.equal(before, model.fc.weight)
    mean_loss, acc = trainer.metrics()
    assert mean_loss == pytest.approx(loss.item()) and 0.0 <= acc <= 1.0
    test_loss, test_acc = trainer.evaluate([(x, y)])
    assert math.isfinite(test_loss) and model.training  # evaluate restores the mode


def test_cutmix_needs_num_classes():
    with pytest.raises(ValueError, match="cutmix needs a model built by senet_lib.create_model"):
        Trainer(torch.nn.Linear(2, 2), tiny_config(cutmix=0.5), CPU, 1)


# --------------------------------------------------------------------------- fit, resume, divergence
def test_resume_after_interruption_continues_the_same_run(tiny_data, tmp_path, stop_at_step):
    config = tiny_config(cutmix=0.5, label_smoothing=0.1)  # cutmix draws from RNGs that must be restored
    torch.manual_seed(0)
    reference = fit(create_model("se_resnet20", 10), tiny_data, config, run_dir=tmp_path / "a", device=CPU)

    restore = stop_at_step(5)  # epoch 2, second step
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit(create_model("se_resnet20", 10), tiny_data, config, run_dir=tmp_path / "b", device=CPU)
    restore()
    _, partial = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert partial["epoch"] == 1 and partial["trainer_state"]["step"] == 3

    torch.manual_seed(123)  # the resumed process starts with other RNG state and a fresh model
    model = create_model("se_resnet20", 10)
    resumed = fit(model, tiny_data, config, run_dir=tmp_path / "b", resume=True, device=CPU)
    assert len(resumed) == len(reference) == 2
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
        assert resumed.column(key) == pytest.approx(reference.column(key), rel=1e-5, abs=1e-7), key
    assert resumed[1]["lr"] == pytest.approx(0.1 * config.lr)  # milestone at epoch 1 kept its place
    final_a, payload_a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    final_b, payload_b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert payload_b["trainer_state"]["step"] == payload_a["trainer_state"]["step"] == 6
    for (name, a), b in zip(final_a.state_dict().items(), final_b.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-6), name
    assert json.loads((tmp_path / "b" / "history.json").read_text()) == resumed.to_list()
    # A finished run resumes to itself without training.
    again = fit(
        create_model("se_resnet20", 10), tiny_data, config, run_dir=tmp_path / "b", resume=True, device=CPU
    )
    assert again.to_list() == resumed.to_list()


def test_a_run_resumed_elsewhere_records_where_each_epoch_trained(
    tiny_data, tmp_path, monkeypatch, stop_at_step
):
    """A run that moves to another machine or precision between sessions must not be reported as if
    one machine had trained it: every epoch names its device and precision, and the record's
    segments (and README's table) show the change."""
    import importlib.util

    from senet_lib.train.history import run_record

    config = tiny_config(precision=None)  # the device's default, as the CLI's profiles leave it
    monkeypatch.setenv("SENET_PRECISION", "fp32")
    restore = stop_at_step(4)  # epoch 2, first step
    with pytest.raises(KeyboardInterrupt):
        fit(create_model("resnet20", 10), tiny_data, config, run_dir=tmp_path, device=CPU)
    restore()
    monkeypatch.setenv("SENET_PRECISION", "bf16")
    monkeypatch.setattr(train.loop, "device_name", lambda device: "another machine")
    history = fit(create_model("resnet20", 10), tiny_data, config, run_dir=tmp_path, resume=True, device=CPU)
    assert [(r["precision"], r["device_name"] == "another machine") for r in history] == [
        ("fp32", False),
        ("bf16", True),
    ]
    record = run_record(create_model("resnet20", 10), tiny_data, config, history, {"precision": "bf16"}, 1.0)
    assert [(s["first"], s["last"], s["precision"]) for s in record["segments"]] == [
        (1, 1, "fp32"),
        (2, 2, "bf16"),
    ]
    assert History([{"epoch": 1}, {"epoch": 2}]).segments() == [  # rows from before epochs said where
        {"first": 1, "last": 2, "device_name": None, "precision": None}
    ]
    spec = importlib.util.spec_from_file_location("build_results", ROOT / "scripts" / "build_results.py")
    build_results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_results)
    assert build_results._trained_in(record) == "fp32 (epochs 1–1) + bf16 (epochs 2–2)"
    assert "another machine" in build_results._devices(record)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(tiny_data, tmp_path):
    model = create_model("resnet20", 10)
    forwards = {"n": 0}

    def poison(module, inputs, output):
        if module.training:
            forwards["n"] += 1
            if forwards["n"] >= 5:  # epoch 2, step 2 (3 steps per epoch)
                return output * float("nan")
        return output

    model.fc.register_forward_hook(poison)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as info:
        fit(model, tiny_data, tiny_config(epochs=3), run_dir=run_dir, device=CPU)
    err = info.value
    assert isinstance(err, RuntimeError) and (err.epoch, err.step) == (2, 2)
    message = str(err)
    assert "epoch 2, step 2 of 3" in message and "lower the learning rate" in message and "fp32" in message
    assert "checkpoint.pt (epoch 1), is untouched" in message
    good, payload = load_checkpoint(run_dir / "checkpoint.pt")
    assert payload["epoch"] == 1 and len(payload["history"]) == 1
    assert all(torch.isfinite(v.float()).all() for v in good.state_dict().values())
    assert len(json.loads((run_dir / "history.json").read_text())) == 1


def test_huge_lr_diverges_in_first_epoch(tiny_data):
    # The loss may overflow in training or only in the test pass: either way epoch 1 is named.
    with pytest.raises(
        TrainingDiverged, match=r"(?i)epoch 1, step \d.*lr=1e\+06.*no checkpoint has been written"
    ):
        fit(create_model("resnet20", 10), tiny_data, tiny_config(epochs=1, lr=1e6), device=CPU)


def test_fit_protects_an_existing_run(tiny_data, tmp_path):
    model = create_model("resnet20", 10)
    config = tiny_config()
    save_checkpoint(tmp_path / "checkpoint.pt", model, None, 1, [{"epoch": 1}], config.to_dict())
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(FileExistsError, match="pass resume=True to continue that run"):
        fit(model, tiny_data, config, run_dir=tmp_path, device=CPU)
    with pytest.raises(ValueError, match=r"another recipe \(lr: saved 0\.05 vs now 0\.2\)"):
        fit(model, tiny_data, tiny_config(lr=0.2), run_dir=tmp_path, resume=True, device=CPU)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    other = tmp_path / "other"
    save_checkpoint(
        other / "checkpoint.pt", model, None, 1, [], config.to_dict(), extra={"steps_per_epoch": 5}
    )
    with pytest.raises(ValueError, match="5 steps per epoch but this data and recipe give 3"):
        fit(model, tiny_data, config, run_dir=other, resume=True, device=CPU)


# --------------------------------------------------------------------------- train_or_load and records
def test_train_or_load_trains_once_then_loads(tiny_data, tmp_path, monkeypatch, capsys):
    calls = []
    real_fit = train.fit

    def counting_fit(*args, **kwargs):
        calls.append(kwargs.get("resume", False))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train.runs, "fit", counting_fit)
    config = tiny_config(epochs=1, max_steps_per_epoch=2)
    model_a, history_a = train_or_load("se_resnet20", tiny_data, config, checkpoint_dir=tmp_path, device=CPU)
    assert calls == [False] and "Training se_resnet20-synthetic-n48-" in capsys.readouterr().out
    model_b, history_b = train_or_load("se_resnet20", tiny_data, config, checkpoint_dir=tmp_path, device=CPU)
    assert calls == [False] and "Loaded finished run" in capsys.readouterr().out
    assert history_b.to_list() == history_a.to_list() and len(history_b) == 1
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    (run_dir,) = tmp_path.iterdir()
    record = json.loads((run_dir / "record.json").read_text())
    assert record["model"]["name"] == "se_resnet20" and record["dataset"]["train_size"] == 48
    assert record["final_test_acc"] == history_a.final_test_acc and record["dataset"]["synthetic"]
    run = train_or_load("se_resnet20", tiny_data, config, checkpoint_dir=tmp_path, device=CPU)
    assert isinstance(run, train.Run) and run.source == "run" and run.record == record
    assert (
        run.folder == run_dir == train.run_folder("se_resnet20", tiny_data, config, checkpoint_dir=tmp_path)
    )
    assert run.checkpoint == run_dir / train.CHECKPOINT_NAME and run.history.to_list() == history_a.to_list()


def test_a_run_reports_that_it_was_trained(tiny_data, tmp_path):
    config = tiny_config(epochs=1, max_steps_per_epoch=1)
    run = train_or_load("resnet20", tiny_data, config, checkpoint_dir=tmp_path, device=CPU)
    assert run.source == "trained" and run.record is not None and run.record["epochs"] == 1
    assert json.loads((run.folder / train.RECORD_NAME).read_text()) == json.loads(json.dumps(run.record))


def test_run_names_separate_subsets_and_recipes(tiny_data):
    config = tiny_config()
    name = train.default_run_name("se_resnet20", tiny_data, config)
    assert name.startswith("se_resnet20-synthetic-n48-") and name.endswith("-seed0")
    subset_a = train.default_run_name("se_resnet20", tiny_data.subset(40, None, seed=0), config)
    subset_b = train.default_run_name("se_resnet20", tiny_data.subset(40, None, seed=1), config)
    assert len({name, subset_a, subset_b}) == 3  # same size, other images: another run
    assert train.default_run_name("se_resnet20", tiny_data, tiny_config(epochs=3)) != name
    assert train.default_run_name("se_resnet20", tiny_data, config, reduction=8) != name
    # runtime-only settings do not change the run
    assert train.default_run_name("se_resnet20", tiny_data, tiny_config(progress=True, print_freq=5)) == name


def test_run_record_and_write_record(tiny_data, tmp_path):
    history = History(
        [{"epoch": 1, "test_acc": 0.25}, {"epoch": 2, "test_acc": 0.5}, {"epoch": 3, "test_acc": 0.4}]
    )
    assert (history.best_test_acc, history.final_test_acc) == (0.5, 0.4)
    assert History(json.loads(history.to_json())).to_list() == history.to_list()
    model = create_model("se_resnet20", 10)
    env_record = environment_record(CPU, "fp32")
    record = train.run_record(model, tiny_data, tiny_config(epochs=3), history, env_record, wall_time=12.5)
    assert record["model"] == {"name": "se_resnet20", "num_classes": 10}
    assert record["dataset"]["label"] == tiny_data.label and record["recipe"]["epochs"] == 3
    assert (record["best_test_acc"], record["final_test_acc"], record["wall_time_s"]) == (0.5, 0.4, 12.5)
    assert record["device"] == "cpu" and record["torch"] == str(torch.__version__)
    path = train.write_record(record, tmp_path)
    assert path.parent == tmp_path and json.loads(path.read_text()) == json.loads(json.dumps(record))
    assert train.write_record(record, tmp_path) != path  # a second record never overwrites the first


# --------------------------------------------------------------------------- settings resolved once
def test_a_run_is_seeded_in_one_place_and_reproduces(tiny_data, tmp_path, monkeypatch):
    """train_or_load seeds once (RunPlan.build_model, before the initial weights); fit itself does not,
    and two runs of one recipe still end with identical weights."""
    import sys

    from senet_lib import env as env_module

    calls = []
    real = env_module.seed_everything

    def counting(seed, deterministic=False):
        calls.append(seed)
        real(seed, deterministic)

    for name, module in list(sys.modules.items()):  # wherever the library holds the name
        if name.startswith("senet_lib") and getattr(module, "seed_everything", None) is real:
            monkeypatch.setattr(module, "seed_everything", counting)
    config = tiny_config(epochs=1, seed=3)
    first = train_or_load("resnet20", tiny_data, config, checkpoint_dir=tmp_path / "a", use_pretrained=False)
    assert calls == [3]
    torch.manual_seed(999)  # whatever the generators hold before, the run starts from its own seed
    second = train_or_load("resnet20", tiny_data, config, checkpoint_dir=tmp_path / "b", use_pretrained=False)
    assert calls == [3, 3]
    for (name, a), b in zip(
        first.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_the_plan_decides_precision_and_memory_format_once():
    plan = RunPlan.resolve(tiny_config(precision="fp32", channels_last=False), CPU, model="resnet20")
    trainer = Trainer(create_model("resnet20", 10), tiny_config(precision="bf16"), plan, 1)
    assert trainer.precision.name == "fp32" and trainer.channels_last is False  # the plan's, not re-derived
    record = plan.record()
    assert (record["precision"], record["channels_last"], record["compile"]) == ("fp32", False, False)
    assert "precision     : fp32" in str(plan) and "channels-last : off" in str(plan)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_the_train_banner_prints_the_precision_it_trains_in(precision, capsys, tmp_path):
    args = [
        "train",
        "--profile",
        "quick",
        "--dataset",
        "synthetic",
        "--train-subset",
        "32",
        "--test-subset",
        "16",
    ]
    args += ["--batch-size", "16", "--epochs", "1", "--max-steps", "1", "--device", "cpu", "--no-progress"]
    assert cli_main([*args, "--precision", precision, "--save-dir", str(tmp_path)]) == 0
    banner = capsys.readouterr().out.split("Training", 1)[0]
    assert re.search(rf"^precision\s+: {precision}\b", banner, re.MULTILINE), banner
    record = json.loads(next(tmp_path.glob("*/record.json")).read_text())
    assert record["precision"] == precision
