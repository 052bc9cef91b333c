"""The command line: train → evaluate round trip, profile defaults, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from senet_lib import cli
from senet_lib.train.config import get_settings

TINY = [
    "--profile",
    "quick",
    "--model",
    "resnet20",
    "--dataset",
    "synthetic",
    "--epochs",
    "1",
    "--max-steps",
    "2",
    "--batch-size",
    "16",
    "--train-subset",
    "64",
    "--test-subset",
    "40",
    "--no-progress",
]


def _run_dir(checkpoints: Path) -> Path:
    (run_dir,) = [p for p in checkpoints.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run through ``main`` (module-scoped: training is the slow part)."""
    base = tmp_path_factory.mktemp("cli")
    env = {"SENET_CHECKPOINT_DIR": base / "ckpt", "SENET_RESULTS_DIR": base / "res"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, str(value))
        mp.setenv("SENET_FIGURES_DIR", str(base / "fig"))
        mp.setenv("SENET_DATA_DIR", str(base / "data"))
        code = cli.main(["train", *TINY, "--record"])
    return code, base


def test_train_writes_checkpoint_history_and_records(trained, capsys):
    code, base = trained
    assert code == 0
    run_dir = _run_dir(base / "ckpt")
    assert run_dir.name.startswith("resnet20-synthetic-n64-") and run_dir.name.endswith("-seed0")
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["model"]["name"] == "resnet20"
    assert record["dataset"]["name"] == "synthetic" and record["dataset"]["test_size"] == 40
    assert record["recipe"]["max_steps_per_epoch"] == 2 and record["recipe"]["epochs"] == 1
    assert record["profile"] == "quick"
    (results_file,) = list((base / "res").glob("train_resnet20_synthetic_seed0_*.json"))
    assert json.loads(results_file.read_text())["final_test_acc"] == history[-1]["test_acc"]


def test_recipe_flags_are_generated_from_trainconfig_fields():
    """Every TrainConfig field the command line offers has its option, and each option sets its field."""
    import dataclasses

    from senet_lib.train import TrainConfig

    parser = cli.build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    dests = {action.dest for action in train_parser._actions}
    offered = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata["cli"]}
    assert offered <= dests and "decay_norm_and_bias" not in dests
    args = parser.parse_args(["train", "--wd", "0.002", "--max-steps", "3", "--no-progress", "--nesterov"])
    config = cli.config_from_args(args, get_settings("quick"))
    assert (config.weight_decay, config.max_steps_per_epoch, config.progress, config.nesterov) == (
        0.002,
        3,
        False,
        True,
    )


def test_train_uses_profile_defaults_unless_overridden():
    args = cli.build_parser().parse_args(
        ["train", "--profile", "quick", "--lr", "0.05", "--milestones", "2", "3"]
    )
    config = cli.config_from_args(args, get_settings("quick"))
    quick = get_settings("quick")
    assert config.lr == 0.05 and config.milestones == (2, 3)
    assert (config.epochs, config.batch_size, config.schedule) == (
        quick.epochs,
        quick.batch_size,
        quick.schedule,
    )
    assert config.weight_decay == quick.weight_decay and config.seed == quick.seeds[0]


def test_evaluate_reproduces_the_recorded_test_accuracy(trained, capsys, monkeypatch):
    _, base = trained
    run_dir = _run_dir(base / "ckpt")
    monkeypatch.setenv("SENET_DATA_DIR", str(base / "data"))
    capsys.readouterr()
    assert cli.main(["evaluate", str(run_dir / "checkpoint.pt")]) == 0
    out = capsys.readouterr().out
    final = json.loads((run_dir / "history.json").read_text())[-1]
    shown = float(re.search(r"test acc\s*:\s*([\d.]+)%", out).group(1))
    assert shown == pytest.approx(100 * final["test_acc"], abs=0.006)
    assert "synthetic shapes (not CIFAR)" in out and "test split of 40 images" in out
    assert "flip-TTA" not in out  # only asked for with --tta
    recorded = float(re.search(r"recorded\s*:\s*([\d.]+)%", out).group(1))
    assert recorded == pytest.approx(100 * final["test_acc"], abs=0.006)


def test_evaluate_tta_prints_the_trainers_flip_tta_accuracy_on_the_same_test_split(
    trained, capsys, monkeypatch
):
    from senet_lib.train import Trainer

    _, base = trained
    run_dir = _run_dir(base / "ckpt")
    monkeypatch.setenv("SENET_DATA_DIR", str(base / "data"))
    seen: list[int] = []

    def sentinel(self, loader) -> float:
        seen.append(sum(int(y.shape[0]) for _, y in loader))
        return 0.4321

    monkeypatch.setattr(Trainer, "evaluate_flip_tta", sentinel)
    capsys.readouterr()
    assert cli.main(["evaluate", str(run_dir), "--tta"]) == 0
    out = capsys.readouterr().out
    assert seen == [40]
    assert re.search(r"flip-TTA\s*:\s*43\.21%", out)


def test_training_again_without_resume_keeps_the_checkpoint(trained, capsys, monkeypatch):
    _, base = trained
    run_dir = _run_dir(base / "ckpt")
    before = (run_dir / "checkpoint.pt").read_bytes()
    monkeypatch.setenv("SENET_CHECKPOINT_DIR", str(base / "ckpt"))
    assert cli.main(["train", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "resume" in err and len(err.splitlines()) == 1
    assert (run_dir / "checkpoint.pt").read_bytes() == before


def test_sigterm_stops_training_like_ctrl_c_and_keeps_the_last_epoch(
    tmp_path, capsys, monkeypatch, stop_at_step
):
    """``kill`` (SIGTERM) during epoch 2 ends the command with 143 and one sentence; epoch 1's
    checkpoint stays and ``--resume`` finishes the run from it."""
    import signal
    import threading

    from senet_lib.checkpoint import read_checkpoint

    monkeypatch.setenv("SENET_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    args = ["train", *TINY, "--epochs", "3"]

    def kill() -> None:
        threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM)).start()
        threading.Event().wait(5)  # the signal arrives (and raises) while this step waits

    restore = stop_at_step(3, kill)  # epoch 2, first step: epoch 1's checkpoint is on disk
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main([*args, "--resume"]) == 143  # --resume with nothing to resume starts afresh
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is only there while training
    out, err = capsys.readouterr()
    assert "no checkpoint in the run folder yet, so from epoch 1" in out
    assert "stopped by SIGTERM" in err and "(epoch 1), is kept" in err and "--resume" in err
    run_dir = _run_dir(tmp_path / "ckpt")
    assert read_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1
    restore()
    assert cli.main([*args, "--resume"]) == 0
    assert "Resuming (after epoch 1) resnet20" in capsys.readouterr().out
    assert read_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 3


def test_unknown_model_lists_valid_names_and_exits_2():
    """Through ``python -m senet_lib``: exit status 2, one line, no traceback."""
    env = {**os.environ, "SENET_DEVICE": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "senet_lib", "train", "--model", "se_resnet_999"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "se_resnet_999" in lines[0] and "se_resnet20" in lines[0] and "resnet50" in lines[0]


def test_unknown_dataset_lists_valid_names_and_exits_2(capsys):
    assert cli.main(["train", "--model", "resnet20", "--dataset", "imagenet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "imagenet" in err and all(name in err for name in ("auto", "cifar10", "cifar100", "synthetic"))


def test_record_in_a_checkout_goes_to_build_results_not_the_committed_results(tmp_path, monkeypatch, capsys):
    """--record without --results-dir or SENET_RESULTS_DIR leaves the checkout's committed results/ alone."""
    from senet_lib import env
    from senet_lib.cli import options

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.setattr(env, "REPO_ROOT", checkout)
    monkeypatch.setattr(options, "REPO_ROOT", checkout)
    monkeypatch.delenv("SENET_RESULTS_DIR")
    assert env.get_paths().results == checkout / "results"  # what the notebooks and scripts read
    assert cli.main(["train", *TINY, "--record", "--save-dir", str(tmp_path / "a")]) == 0
    (record,) = (checkout / "build" / "results").glob("train_resnet20_synthetic_seed0_*.json")
    assert f"results    : {record}" in capsys.readouterr().out
    assert not list((checkout / "results").iterdir())
    # the repository's own recorded runs name the committed folder
    results = ["--results-dir", str(checkout / "results")]
    assert cli.main(["train", *TINY, "--record", "--save-dir", str(tmp_path / "b"), *results]) == 0
    assert len(list((checkout / "results").glob("train_resnet20_synthetic_seed0_*.json"))) == 1


def test_evaluate_missing_checkpoint_exits_2(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "nothing.pt")]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "Traceback" not in err


def test_models_lists_registered_names(capsys):
    assert cli.main(["models", "se_resnet*"]) == 0
    names = capsys.readouterr().out.split()
    assert "se_resnet20" in names and "se_resnet50" in names and "resnet20" not in names


def test_data_prints_status(capsys):
    assert cli.main(["data"]) == 0
    out = capsys.readouterr().out
    assert "CIFAR-10" in out and "auto" in out


def test_export_pretrained_writes_verified_fp16_weights_that_load(trained, tmp_path):
    from senet_lib.checkpoint import load_checkpoint, verify_weights

    _, base = trained
    run_dir = _run_dir(base / "ckpt")
    script = Path(__file__).resolve().parents[1] / "scripts" / "export_pretrained.py"
    subprocess.run([sys.executable, str(script), str(run_dir), "--out", str(tmp_path)], check=True)
    (weights,) = tmp_path.glob("resnet20_synthetic_1ep_seed0.pt")
    sidecar = verify_weights(weights)
    record = json.loads((run_dir / "record.json").read_text())
    assert sidecar["accuracy"]["final_test_acc"] == record["final_test_acc"]
    assert sidecar["dtype"] == "float16" and sidecar["run"] == run_dir.name
    exported, _ = load_checkpoint(weights)
    original, _ = load_checkpoint(run_dir / "checkpoint.pt")
    for (name, a), b in zip(exported.state_dict().items(), original.state_dict().values(), strict=True):
        assert a.dtype == b.dtype, name
        if a.is_floating_point():
            assert (a - b).abs().max() <= 1e-3 * max(1.0, float(b.abs().max())), name


def test_evaluate_exported_weights_reads_epoch_seed_and_accuracy_from_the_sidecar(
    trained, tmp_path, capsys, monkeypatch
):
    """An exported file holds only weights: evaluate takes the run's epochs, seed and recorded accuracy
    from the sidecar, and prints the recorded accuracy beside the one it measures."""
    _, base = trained
    run_dir = _run_dir(base / "ckpt")
    monkeypatch.setenv("SENET_DATA_DIR", str(base / "data"))
    script = Path(__file__).resolve().parents[1] / "scripts" / "export_pretrained.py"
    subprocess.run([sys.executable, str(script), str(run_dir), "--out", str(tmp_path)], check=True)
    (weights,) = tmp_path.glob("*.pt")
    sidecar = json.loads(weights.with_suffix(".json").read_text())
    sidecar["accuracy"]["final_test_acc"] = 0.1234  # a value no evaluation of this net gives
    sidecar["recipe"]["seed"] = 7
    weights.with_suffix(".json").write_text(json.dumps(sidecar))
    capsys.readouterr()
    assert cli.main(["evaluate", str(weights)]) == 0
    out = capsys.readouterr().out
    assert f"(resnet20, epoch {sidecar['recipe']['epochs']}, seed 7)" in out
    assert re.search(r"recorded\s*:\s*12\.34% at the end of training", out)
    assert "test split of 40 images" in out  # the recorded test size, as for a run folder


def test_evaluate_with_a_garbled_sidecar_still_measures_and_shows_no_recorded_accuracy(
    trained, tmp_path, capsys, monkeypatch
):
    """A sidecar whose recipe and accuracy are not what export writes: evaluate still measures the
    weights, prints '?' for what it cannot read, and shows no recorded accuracy."""
    _, base = trained
    run_dir = _run_dir(base / "ckpt")
    monkeypatch.setenv("SENET_DATA_DIR", str(base / "data"))
    script = Path(__file__).resolve().parents[1] / "scripts" / "export_pretrained.py"
    subprocess.run([sys.executable, str(script), str(run_dir), "--out", str(tmp_path)], check=True)
    (weights,) = tmp_path.glob("*.pt")
    sidecar = json.loads(weights.with_suffix(".json").read_text())
    sidecar["recipe"], sidecar["accuracy"] = "garbled", {"final_test_acc": "n/a"}
    weights.with_suffix(".json").write_text(json.dumps(sidecar))
    capsys.readouterr()
    assert cli.main(["evaluate", str(weights)]) == 0
    out = capsys.readouterr().out
    assert "(resnet20, epoch ?, seed ?)" in out and re.search(r"test acc\s*:\s*[\d.]+%", out)
    assert "recorded" not in out
