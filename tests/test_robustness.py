"""Hostile-user defects: each test reproduces one failure a new user met, offline on a CPU.

Issue 15: 1 run folder claims · 2 writability checked first, full disk · 3 crafted pickle in the CLI ·
4 stale temporary files · 5 CLI words · 6 recipe validation · 7 checkpoints wrong inside ·
8 misleading messages · 9 bytes in a CIFAR re-pack · 10 file modes. "Hostile input, round 3": the
sections marked r3 at the end.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import stat
import struct
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import torch

from senet_lib import checkpoint as ckpt
from senet_lib import cli, train
from senet_lib import data as D
from senet_lib.env import get_device
from senet_lib.errors import UserError
from senet_lib.models import create_model
from senet_lib.safe_pickle import CorruptFileError, UnsafePickleError, load_cifar_pickle
from senet_lib.train import (
    CHECKPOINT_NAME,
    ConfigError,
    History,
    TrainConfig,
    Trainer,
    fit,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(autouse=True)
def _offline_without_other_data(tmp_path, monkeypatch):
    """Only the data a test writes: no checkout data/ folder, no Kaggle tree, no downloads."""
    monkeypatch.setattr(D.cifar, "REPO_ROOT", None)
    monkeypatch.setattr(D.cifar, "KAGGLE_INPUT", tmp_path / "no_kaggle")

    def offline(name, dest):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(D.cifar, "_download", offline)


@pytest.fixture(scope="module")
def tiny_data():
    return D.make_synthetic(n_train=48, n_test=16, seed=0)


def tiny_config(**changes) -> TrainConfig:
    values = dict(epochs=1, batch_size=16, lr=0.05, milestones=(1,), precision="fp32", progress=False, seed=0)
    values.update(changes)
    return TrainConfig(**values)


def _error_line(capsys) -> str:
    """What the CLI printed on stderr, which must be exactly one line without a traceback."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _no_data_loading(monkeypatch):
    """Make the CLI fail loudly if it gets as far as loading data (the check must come first)."""

    def refuse(*args, **kwargs):
        raise AssertionError("data were loaded before the bad input was noticed")

    monkeypatch.setattr(cli.options, "load_run_data", refuse)


def _save_run(folder: Path, name: str = "resnet20", config: TrainConfig | None = None, **options) -> Path:
    """A checkpoint as fit writes it (with optimizer and RNG state) in ``folder``."""
    model = create_model(name, 10, **options)
    trainer = Trainer(model, config or tiny_config(), CPU, steps_per_epoch=2)
    return ckpt.save_checkpoint(
        folder / CHECKPOINT_NAME,
        model,
        trainer.state_dict(),
        1,
        [{"epoch": 1, "test_acc": 0.1}],
        (config or tiny_config()).to_dict(),
        extra={"rng": {}, "steps_per_epoch": 2},
    )


def _write_lock(folder: Path, **info) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ckpt.LOCK_NAME
    lock.write_text(json.dumps({"host": socket.gethostname(), "started": "2024-01-01T00:00:00", **info}))
    return lock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


# --------------------------------------------------------------------------- 1 run folder claims
def test_second_training_on_a_held_run_folder_stops_at_once_and_a_dead_holder_is_taken_over(
    tmp_path, capsys, monkeypatch
):
    save_dir = tmp_path / "runs"
    run_dir = save_dir / "same"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom senet_lib.checkpoint import claim_run_folder\n"
            "with claim_run_folder(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(300)\n",
            str(run_dir),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        args = ["train", *TINY, "--save-dir", str(save_dir), "--run-name", "same"]
        assert cli.main(args) == 2
        err = _error_line(capsys)
        assert f"pid {holder.pid}" in err and "since" in err and "in use by another training run" in err
        assert not (run_dir / CHECKPOINT_NAME).exists()  # nothing of the other run was touched
    finally:
        holder.kill()
        holder.wait()
    # The holder was killed (kill -9 skips its clean-up): its lock names a dead pid and is taken over.
    assert (run_dir / ckpt.LOCK_NAME).exists()
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "taking over" in captured.err and f"pid {holder.pid}" in captured.err
    assert (run_dir / CHECKPOINT_NAME).is_file() and not (run_dir / ckpt.LOCK_NAME).exists()


def test_fit_refuses_a_folder_held_by_a_live_process_before_training(tiny_data, tmp_path, monkeypatch):
    lock = _write_lock(tmp_path, pid=os.getppid(), command="python -m senet_lib train --seed 0")

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(Trainer, "train_step", no_training)
    with pytest.raises(ckpt.RunFolderBusy, match=rf"pid {os.getppid()} .*since 2024-01-01.*--seed 0") as info:
        fit(create_model("resnet20", 10), tiny_data, tiny_config(), run_dir=tmp_path, device=CPU)
    assert isinstance(info.value, UserError) and str(lock) in str(info.value)
    assert lock.exists() and not (tmp_path / CHECKPOINT_NAME).exists()


def test_claim_is_released_on_exceptions_and_nests(tiny_data, tmp_path, monkeypatch):
    lock = tmp_path / ckpt.LOCK_NAME

    def interrupted(self, x, y):
        assert lock.is_file()  # held while training
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(create_model("resnet20", 10), tiny_data, tiny_config(), run_dir=tmp_path, device=CPU)
    assert not lock.exists()
    with ckpt.claim_run_folder(tmp_path):
        with ckpt.claim_run_folder(tmp_path):  # the CLI holds the folder around fit's own claim
            pass
        assert lock.is_file()
    assert not lock.exists()


def test_stale_and_foreign_locks(tmp_path, capsys):
    _write_lock(tmp_path / "dead", pid=_dead_pid())
    with ckpt.claim_run_folder(tmp_path / "dead"):
        pass
    assert "taking over" in capsys.readouterr().err
    # Another host cannot be asked about its pid: its lock counts while its heartbeat is recent.
    lock = _write_lock(tmp_path / "other", pid=1, host="elsewhere.example")
    with pytest.raises(ckpt.RunFolderBusy, match="on elsewhere.example"), ckpt.claim_run_folder(lock.parent):
        pass
    old = time.time() - ckpt.LOCK_STALE_AFTER - 60
    os.utime(lock, (old, old))
    with ckpt.claim_run_folder(tmp_path / "other"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


# --------------------------------------------------------------------------- 2 writability, full disk
def test_train_checks_the_save_dir_before_any_work(tmp_path, capsys, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    _no_data_loading(monkeypatch)
    assert cli.main(["train", *TINY, "--save-dir", str(not_a_folder / "runs")]) == 2
    err = _error_line(capsys)
    assert "--save-dir" in err and str(not_a_folder / "runs") in err
    with pytest.raises(ckpt.OutputError, match="is a file, not a folder"):
        ckpt.check_writable(not_a_folder)
    ckpt.check_writable(tmp_path / "new" / "deep")
    assert (tmp_path / "new" / "deep").is_dir() and not list((tmp_path / "new" / "deep").iterdir())


def test_evaluate_needs_no_writable_checkpoint_figure_or_results_folder(tmp_path, capsys, monkeypatch):
    path = _save_run(tmp_path / "run")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for var in ("SENET_CHECKPOINT_DIR", "SENET_FIGURES_DIR", "SENET_RESULTS_DIR"):
        monkeypatch.setenv(var, str(blocker / var.lower()))  # under a file: cannot be created
    monkeypatch.setattr(cli.evaluation, "load_run_data", lambda *a, **k: D.make_synthetic(20, 20, seed=0))
    assert cli.main(["evaluate", str(path), "--dataset", "synthetic", "--batch-size", "10"]) == 0
    assert "test acc" in capsys.readouterr().out


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_full_disk_during_a_checkpoint_write_is_one_sentence_and_keeps_the_previous(tmp_path, monkeypatch):
    path = _save_run(tmp_path)
    before = path.read_bytes()
    real_mkstemp = ckpt.files.tempfile.mkstemp

    def mkstemp_on_a_full_disk(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name  # every write fails with ENOSPC

    monkeypatch.setattr(ckpt.files.tempfile, "mkstemp", mkstemp_on_a_full_disk)
    with pytest.raises(ckpt.OutputError) as info:
        _save_run(tmp_path, "se_resnet20")
    message = str(info.value)
    assert "No space left on device" in message and "untouched" in message and "unexpected pos" not in message
    assert "\n" not in message and isinstance(info.value, UserError)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]


def test_environment_errors_are_one_line_and_senet_debug_shows_the_traceback(capsys, monkeypatch):
    def unwritable(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/courses/shared/figures")

    monkeypatch.setattr(cli.training, "setup", unwritable)
    assert cli.main(["train", *TINY]) == 2
    err = _error_line(capsys)
    assert "Permission denied (/courses/shared/figures)" in err and "SENET_DEBUG=1" in err
    monkeypatch.setenv("SENET_DEBUG", "1")
    with pytest.raises(PermissionError):
        cli.main(["train", *TINY])


# --------------------------------------------------------------------------- CIFAR fakes (3, 8, 9)
def _fake_cifar10(fake_cifar, parent: Path, **options) -> Path:
    """A CIFAR-10 layout re-packed by Python 3 at protocol 2 with str keys (conftest's writer)."""
    return fake_cifar(parent, "cifar10", per_file=10, bytes_keys=False, **options).folder


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-a-cifar-file",))


def test_crafted_cifar_pickle_is_one_line_and_exit_2_in_the_cli(tmp_path, capsys, monkeypatch, fake_cifar):
    folder = _fake_cifar10(fake_cifar, tmp_path / "cifar")
    (folder / "data_batch_2").write_bytes(pickle.dumps({"data": _Exploit(), "labels": [0]}, protocol=2))
    monkeypatch.chdir(tmp_path)
    args = ["train", *TINY, "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"), "--no-download"]
    assert cli.main(args) == 2
    err = _error_line(capsys)
    assert "refusing to load" in err and "data_batch_2" in err and "system" in err
    assert not (tmp_path / "pwned-by-a-cifar-file").exists()


# --------------------------------------------------------------------------- 4 stale temporary files
def test_temp_files_of_a_killed_save_are_removed_by_the_next_run(tiny_data, tmp_path):
    config = tiny_config()
    fit(create_model("resnet20", 10), tiny_data, config, run_dir=tmp_path, device=CPU)
    # What kill -9 during a save leaves: the half-written temporary file of atomic_write.
    stale = [tmp_path / ".checkpoint.pt.k1ll3d_x.tmp", tmp_path / ".history.json.abcdefgh.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 4096)
    old_record, fresh_record = tmp_path / ".record.json.old12345.tmp", tmp_path / ".record.json.new12345.tmp"
    old_record.write_text("{")
    fresh_record.write_text("{")  # may belong to train_or_load writing its record right now
    past = time.time() - 3600
    os.utime(old_record, (past, past))
    kept = [tmp_path / ".notes.tmp", tmp_path / "mine.checkpoint.pt.tmp", fresh_record]
    for path in kept[:2]:
        path.write_text("the user's own file")
    again = fit(create_model("resnet20", 10), tiny_data, config, run_dir=tmp_path, resume=True, device=CPU)
    assert len(again) == 1
    assert not any(p.exists() for p in [*stale, old_record]) and all(p.exists() for p in kept)


# --------------------------------------------------------------------------- 5 CLI words
def test_cli_run_folder_errors_use_the_command_line_options(tmp_path, capsys):
    save = ["--save-dir", str(tmp_path), "--run-name", "r"]
    _save_run(tmp_path / "r", "se_resnet20")
    assert cli.main(["train", *TINY, *save]) == 2
    err = _error_line(capsys)
    assert "--resume" in err and "--run-name" in err and "resume=True" not in err and "run_dir" not in err
    assert cli.main(["train", *TINY, *save, "--resume"]) == 2  # TINY asks for resnet20
    err = _error_line(capsys)
    assert "se_resnet20" in err and "--model" in err and "model=None" not in err
    _save_run(tmp_path / "s", "resnet20", tiny_config(lr=0.3))
    assert cli.main(["train", *TINY, "--save-dir", str(tmp_path), "--run-name", "s", "--resume"]) == 2
    err = _error_line(capsys)
    assert "another recipe" in err and "--resume" in err and "TrainConfig" not in err


def test_cli_missing_data_message_names_the_flags(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        cli.main(["train", *TINY, "--dataset", "cifar10", "--data-dir", str(tmp_path), "--no-download"]) == 2
    )
    err = _error_line(capsys)
    assert "--no-download" in err and err.endswith("or --dataset synthetic).")  # printed as worded


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_message_mentions_senet_device_only_when_it_was_used(monkeypatch):
    monkeypatch.delenv("SENET_DEVICE", raising=False)
    with pytest.raises(ValueError) as info:
        get_device("cuda")
    assert "SENET_DEVICE" not in str(info.value) and "choose one of those" in str(info.value)
    monkeypatch.setenv("SENET_DEVICE", "cuda")
    with pytest.raises(ValueError, match="unset SENET_DEVICE"):
        get_device()


# --------------------------------------------------------------------------- 6 recipe validation
@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", float("inf")),
        ("lr", float("nan")),
        ("lr", 0.0),
        ("weight_decay", -1e-4),
        ("weight_decay", float("inf")),
        ("momentum", -1.0),
        ("momentum", 1.0),
        ("gamma", 0.0),
        ("gamma", 1.5),
        ("milestones", (0, 5)),
        ("milestones", (6, 3)),
        ("milestones", (2.5,)),
        ("epochs", 2.5),
        ("epochs", True),
        ("batch_size", "16"),
        ("seed", 2**63),
        ("seed", -1),
        ("seed", 1e20),
        ("nesterov", "yes"),
    ],
)
def test_invalid_recipe_values_are_named(field, value):
    with pytest.raises(ConfigError) as info:
        tiny_config(**{field: value})
    assert (
        info.value.field == field and isinstance(info.value, ValueError) and isinstance(info.value, UserError)
    )
    assert str(info.value).startswith(f"Invalid TrainConfig: {field} ") and "fix that value" in str(
        info.value
    )


def test_valid_recipe_edges_are_accepted():
    config = tiny_config(
        momentum=0.0, gamma=1.0, milestones=(), weight_decay=0, seed=2**63 - 1, epochs=np.int64(3)
    )
    assert config.epochs == 3 and type(config.epochs) is int
    assert tiny_config(epochs=4, milestones=[2, 4]).milestones == (2, 4)
    with pytest.raises(ConfigError, match="nesterov needs a momentum above 0"):
        tiny_config(momentum=0.0, nesterov=True)


@pytest.mark.parametrize(
    "option, flag",
    [
        (["--lr", "inf"], "--lr"),
        (["--seed", "100000000000000000000"], "--seed"),
        (["--momentum", "-1"], "--momentum"),
        (["--wd", "-0.1"], "--wd"),
        (["--gamma", "0"], "--gamma"),
        (["--milestones", "5", "3"], "--milestones"),
        (["--max-steps", "0"], "--max-steps"),
    ],
)
def test_cli_recipe_errors_name_the_flag_before_any_work(option, flag, capsys, monkeypatch):
    _no_data_loading(monkeypatch)
    assert cli.main(["train", *TINY, *option]) == 2
    err = _error_line(capsys)
    assert f"error: {flag} " in err and "TrainConfig" not in err


@pytest.mark.parametrize(
    "options, named",
    [
        ({"reduction": "8"}, "option reduction must be a whole number"),
        ({"reduction": 0}, "option reduction must be a whole number of at least 1"),
        ({"se_bias": 1}, "option se_bias must be True or False"),
        ({"se_stages": (3, "4")}, "option se_stages must be None or a list"),
        ({"norm": None}, "option norm must be a string"),
    ],
)
def test_create_model_names_a_wrongly_typed_option(options, named):
    with pytest.raises(TypeError, match=named) as info:
        create_model("se_resnet20", 10, **options)
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="num_classes must be a whole number"):
        create_model("se_resnet20", "10")


# --------------------------------------------------------------------------- 7 checkpoints wrong inside
def _payload(**changes):
    model = create_model("resnet20", 10)
    payload = {
        "format": ckpt.CHECKPOINT_FORMAT,
        "format_version": ckpt.FORMAT_VERSION,
        "arch_config": {"name": "resnet20", "num_classes": 10},
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
        "trainer_state": None,
        "epoch": 1,
        "history": [],
        "config": {},
        "extra": {},
    }
    payload.update(changes)
    return payload


def _nan_weights():
    payload = _payload()
    payload["state_dict"]["fc.weight"][0, 0] = float("nan")
    return payload


@pytest.mark.parametrize(
    "payload, problem",
    [
        ({k: v for k, v in _payload().items() if k != "state_dict"}, "holds no state_dict"),
        (_payload(format_version=99), "format version 99, newer than the 1 this senet_lib reads"),
        (_nan_weights(), "NaN or infinite values .*fc.weight"),
        (_payload(history={"epoch": 1}), "'history' entry is missing or is not a list"),
        (_payload(epoch="one"), "'epoch' entry"),
        (_payload(state_dict={"w": [1.0]}), "not a mapping of names to tensors"),
    ],
    ids=["no-state-dict", "version-99", "nan-weights", "bad-history", "bad-epoch", "no-tensors"],
)
def test_checkpoint_that_loads_but_is_wrong_inside(tmp_path, payload, problem):
    path = tmp_path / "checkpoint.pt"
    torch.save(payload, path)
    with pytest.raises(ckpt.CheckpointError, match=problem) as info:
        ckpt.load_checkpoint(path)
    assert str(info.value).startswith(f"{path} is a senet_lib file but ") and "\n" not in str(info.value)


class _Payload:
    """An arbitrary pickled object."""


def test_refused_pickle_never_suggests_the_unsafe_load(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt.CHECKPOINT_FORMAT, "obj": _Payload()}, path)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.read_checkpoint(path)
    message = str(info.value)
    assert "_Payload" in message and "nothing in it was run" in message
    assert "weights_only" not in message and "likely succeed" not in message and "\n" not in message
    assert cli.main(["evaluate", str(path), "--dataset", "synthetic"]) == 2
    assert "weights_only" not in _error_line(capsys)


def test_cli_evaluate_of_nan_weights_is_one_line(tmp_path, capsys):
    torch.save(_nan_weights(), tmp_path / "checkpoint.pt")
    assert cli.main(["evaluate", str(tmp_path), "--dataset", "synthetic"]) == 2
    assert "NaN" in _error_line(capsys)


def test_resuming_a_checkpoint_without_optimizer_state_is_one_sentence(tiny_data, tmp_path):
    config = tiny_config(epochs=2)
    model = create_model("resnet20", 10)
    ckpt.save_checkpoint(
        tmp_path / CHECKPOINT_NAME, model, None, 1, [{"epoch": 1}], config.to_dict(), {"steps_per_epoch": 3}
    )
    with pytest.raises(ckpt.CheckpointError, match="no optimizer or RNG state .* cannot be resumed"):
        fit(model, tiny_data, config, run_dir=tmp_path, resume=True, device=CPU)


# --------------------------------------------------------------------------- 8 misleading messages
def test_meta_file_with_another_class_count_names_it(tmp_path, fake_cifar):
    folder = _fake_cifar10(fake_cifar, tmp_path, num_names=11)
    with pytest.raises(CorruptFileError, match=r"batches\.meta lists 11 class names but CIFAR-10 has 10"):
        D.load_dataset("cifar10", root=tmp_path, download=False)
    assert (folder / "batches.meta").exists()


def test_incomplete_cifar_folder_names_the_missing_files(tmp_path, fake_cifar):
    folder = _fake_cifar10(fake_cifar, tmp_path)
    (folder / "data_batch_3").unlink()
    (folder / "test_batch").unlink()
    with pytest.raises(FileNotFoundError) as info:
        D.load_dataset("cifar10", root=tmp_path, download=False)
    assert f"{folder} lacks data_batch_3, test_batch" in str(info.value)
    assert "lacks data_batch_3, test_batch" in D.data_status(tmp_path)


def test_corrupt_record_json_is_named(tmp_path, capsys):
    path = _save_run(tmp_path)
    (tmp_path / "record.json").write_text('{"dataset": ')
    assert cli.main(["evaluate", str(path)]) == 2
    err = _error_line(capsys)
    assert str(tmp_path / "record.json") in err and "--dataset" in err
    (tmp_path / "checkpoint.json").write_text("not json")
    with pytest.raises(ckpt.CheckpointError, match=r"checkpoint\.json is not valid JSON"):
        ckpt.verify_weights(path)


@pytest.mark.parametrize("saved", [False, True], ids=["before-first-save", "after-a-save"])
def test_ctrl_c_says_truly_whether_a_checkpoint_is_kept(tmp_path, capsys, monkeypatch, saved):
    if saved:
        _save_run(tmp_path / "r")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.training, "fit", interrupted)
    args = ["train", *TINY, "--save-dir", str(tmp_path), "--run-name", "r"] + (["--resume"] if saved else [])
    assert cli.main(args) == 130
    err = capsys.readouterr().err
    if saved:
        assert "(epoch 1), is kept" in err and "--resume" in err
    else:
        assert "kept" not in err and "no checkpoint had been written yet" in err
    assert not (tmp_path / "r" / ckpt.LOCK_NAME).exists()


# --------------------------------------------------------------------------- 9 bytes in a CIFAR re-pack
def test_cifar_repack_holding_bytes_and_numpy_labels_loads(tmp_path, fake_cifar):
    _fake_cifar10(fake_cifar, tmp_path, value=np.int64)  # labels as numpy integers, as list(array) gives them
    with pytest.warns(D.DataWarning, match="differ from the official"):
        ds = D.load_dataset("cifar10", root=tmp_path, download=False)
    assert len(ds.train) == 50 and ds.classes[3] == "c3" and ds.train.labels.tolist()[:3] == [0, 1, 2]


@pytest.mark.parametrize(
    "raw, what",
    [
        (b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R.", "encoding 'rot13'"),
        (b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x40\x85R.", "bytes with arguments"),
        (b"\x80\x02cbuiltins\nbytes\nJ\x00\x00\x00\x40\x85R.", "bytes with arguments"),
        (b"\x80\x02cbuiltins\nbytearray\n)R.", "builtins.bytearray"),
        (pickle.dumps(np.array([print], dtype=object), protocol=2), "print"),
    ],
    ids=["codecs-rot13", "bytes-of-a-size", "builtins-bytes-of-a-size", "bytearray", "object-array"],
)
def test_only_bytes_are_allowed_beyond_numpy(tmp_path, raw, what):
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw)
    with pytest.raises(UnsafePickleError, match=f"refusing to load: it contains .*{what}"):
        load_cifar_pickle(path)


# --------------------------------------------------------------------------- 10 file modes
def test_outputs_respect_the_umask_never_0600(tiny_data, tmp_path):
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    old = os.umask(0o022)
    try:
        fit(create_model("resnet20", 10), tiny_data, tiny_config(), run_dir=tmp_path / "run", device=CPU)
        weights = ckpt.export_weights(create_model("resnet20", 10), tmp_path / "w.pt", {})
        outputs = [tmp_path / "run" / CHECKPOINT_NAME, tmp_path / "run" / "history.json", weights]
        assert [mode(p) for p in [*outputs, weights.with_suffix(".json")]] == [0o644] * 4
        os.chmod(weights, 0o600)  # as the old atomic writer left it
        ckpt.export_weights(create_model("resnet20", 10), weights, {})
        assert mode(weights) == 0o644  # a file saved again gets the umask's mode
        os.umask(0o077)
        assert mode(ckpt.atomic_write_json(tmp_path / "private.json", {})) == 0o600
    finally:
        os.umask(old)
    assert History(json.loads((tmp_path / "run" / "history.json").read_text())).final_test_acc is not None


# =========================================================================== round 3
# Hostile input, round 3 (item numbers as in that issue): 1 records in the same second · 2 a flipped byte in
# a checkpoint · 3 the sidecar's SHA-256 in evaluate · 4 deeply nested JSON, one bad sidecar · 5 huge
# subsets · 6 values checked in one place · 7 symbolic-link loops · 8 WORLD_SIZE and SENET_*_DIR named ·
# 9 paths too long · 10 run names outside the save folder · 11 notebook 05's MODELS and SEEDS · 12 weights
# with a missing key · 13 evaluate of an unfinished run · 14 a closed stdout · 15 folder names that are not
# UTF-8; then new kinds found while looking.
DEEP = "[" * 100_000 + "]" * 100_000  # nested far past Python's recursion limit


def _no_training(monkeypatch):
    """Fail loudly if a training step runs (the bad input must be caught before)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a training step ran before the bad input was noticed")

    monkeypatch.setattr(Trainer, "train_step", refuse)


def _flip_a_byte_of_tensor_data(path: Path, member: int = 3) -> None:
    """One bit flipped inside a tensor's bytes (as a bad disk or copy does): the zip stays readable."""
    info = [i for i in zipfile.ZipFile(path).infolist() if "/data/" in i.filename][member]
    raw = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    raw[info.header_offset + 30 + name_length + extra_length + 5] ^= 0x10
    path.write_bytes(bytes(raw))


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- r3.1 records in the same second
def test_records_written_in_the_same_second_are_all_kept(tmp_path, monkeypatch):
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    monkeypatch.setattr(train.history, "datetime", Frozen)
    record = {"model": {"name": "resnet20"}, "dataset": {"name": "cifar10"}, "seed": 0}
    first = train.write_record({**record, "run": 1}, tmp_path)
    # Another run's record appears between a check and the write (the race of two runs): it is never replaced.
    monkeypatch.setattr(Path, "exists", lambda self: False)
    second = train.write_record({**record, "run": 2}, tmp_path)
    monkeypatch.undo()
    assert first != second and first.name == "train_resnet20_cifar10_seed0_20260102T030405Z.json"
    assert json.loads(first.read_text())["run"] == 1 and json.loads(second.read_text())["run"] == 2
    assert _files(tmp_path) == sorted([first.name, second.name])  # no temporary file left


# --------------------------------------------------------------------------- r3.2 a flipped byte
def test_a_checkpoint_with_a_flipped_byte_is_refused_and_kept(tiny_data, tmp_path, capsys, monkeypatch):
    path = _save_run(tmp_path / "r")
    _flip_a_byte_of_tensor_data(path)
    damaged = path.read_bytes()
    with pytest.raises(ckpt.CheckpointError, match="is damaged: its part .* CRC-32") as info:
        ckpt.load_checkpoint(path)
    assert "\n" not in str(info.value) and "backup" in str(info.value)
    _no_training(monkeypatch)
    with pytest.raises(ckpt.CheckpointError, match="is damaged"):
        fit(
            create_model("resnet20", 10),
            tiny_data,
            tiny_config(),
            run_dir=tmp_path / "r",
            resume=True,
            device=CPU,
        )
    assert cli.main(["train", *TINY, "--save-dir", str(tmp_path), "--run-name", "r", "--resume"]) == 2
    assert "is damaged" in _error_line(capsys)
    assert path.read_bytes() == damaged and _files(tmp_path / "r") == [CHECKPOINT_NAME]


# --------------------------------------------------------------------------- r3.3 the sidecar's SHA-256
def test_evaluate_checks_the_sidecar_sha256_and_names_the_file(tmp_path, capsys, monkeypatch):
    meta = {"data": {"name": "synthetic", "test_size": 20}}
    weights = ckpt.export_weights(create_model("resnet20", 10), tmp_path / "w.pt", meta)
    other = ckpt.export_weights(create_model("se_resnet20", 10), tmp_path / "other" / "w.pt", meta)
    weights.write_bytes(other.read_bytes())  # a valid file, but not the one its sidecar describes
    monkeypatch.setattr(
        cli.evaluation, "load_run_data", lambda *a, **k: pytest.fail("evaluated a changed file")
    )
    assert cli.main(["evaluate", str(weights)]) == 2
    err = _error_line(capsys)
    assert str(weights) in err and "SHA-256" in err and "export w.pt again" in err and "fetch" in err


# --------------------------------------------------------------------------- r3.4 nested JSON, one bad sidecar
def test_deeply_nested_json_is_one_sentence_wherever_it_is_read(tmp_path, capsys):
    path = _save_run(tmp_path / "run")
    (tmp_path / "run" / "record.json").write_text(DEEP)
    assert cli.main(["evaluate", str(path)]) == 2
    err = _error_line(capsys)
    assert "record.json" in err and "nested too deeply" in err and "--dataset" in err
    weights = ckpt.export_weights(create_model("resnet20", 10), tmp_path / "w.pt", {})
    weights.with_suffix(".json").write_text(DEEP)
    with pytest.raises(ckpt.CheckpointError, match=r"w\.json is not valid JSON \(it is nested too deeply"):
        ckpt.verify_weights(weights)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "train_deep.json").write_text(DEEP)
    assert train.config.recorded_cpu_throughput(tmp_path / "results") == {}


def _real_looking(data):
    import dataclasses

    return dataclasses.replace(data, name="cifar10", synthetic=False, label="CIFAR-10 (test stand-in)")


@pytest.mark.parametrize(
    "bad",
    [
        DEEP,
        "not json",
        json.dumps(
            {"arch_config": {"name": "resnet20", "num_classes": 10}, "file": "x.pt", "data": "cifar10"}
        ),
        json.dumps({"arch_config": {"name": "resnet20", "num_classes": 10}, "file": "x.pt", "recipe": [1]}),
        json.dumps({"arch_config": {"name": "resnet20", "num_classes": 10}, "file": "../escape.pt"}),
        json.dumps(
            {
                "arch_config": {"name": "resnet20", "num_classes": 10},
                "file": "x.pt",
                "recipe": {"epochs": "many"},
            }
        ),  # fmt: skip
        json.dumps([1, 2]),
    ],
    ids=["nested", "not-json", "data-a-string", "recipe-a-list", "file-outside", "epochs-a-string", "a-list"],
)
def test_one_bad_sidecar_is_skipped_with_a_warning_and_the_others_still_match(tmp_path, tiny_data, bad):
    data = _real_looking(tiny_data)
    config = TrainConfig(epochs=3, batch_size=16, schedule="onecycle", progress=False)
    meta = {"recipe": config.to_dict(), "data": train.dataset_descriptor(data), "accuracy": {}}
    good = ckpt.export_weights(create_model("se_resnet20", 10), tmp_path / "good.pt", meta)
    (tmp_path / "bad.json").write_text(bad)
    # What a sidecar's "../escape.pt" would reach from a folder below: a real file, still never loaded.
    (tmp_path / "escape.pt").write_bytes(good.read_bytes())
    arch = {"name": "se_resnet20", "num_classes": 10}
    skipped = r"Skipping .*bad\.json: .*the other pretrained networks are still used"
    with pytest.warns(UserWarning, match=skipped) as caught:
        listed = train.list_pretrained(tmp_path)
    assert [m.path for m in listed] == [good] and caught[0].category.__name__ == "PretrainedWarning"
    with pytest.warns(UserWarning, match=skipped):
        found = train.find_pretrained(arch, train.dataset_descriptor(data), config.to_dict(), tmp_path)
    assert found is not None and found.path == good
    with pytest.warns(UserWarning, match=skipped):
        assert train.pick_pretrained("se_resnet20", "cifar10", 10, tmp_path).path == good


def test_train_or_load_of_a_finished_run_survives_a_damaged_record(tiny_data, tmp_path):
    config = tiny_config(max_steps_per_epoch=1)
    first = train.train_or_load("resnet20", tiny_data, config, checkpoint_dir=tmp_path, device=CPU)
    (first.folder / "record.json").write_text(DEEP)
    with pytest.warns(UserWarning, match=r"record\.json cannot be read .*nested too deeply"):
        again = train.train_or_load("resnet20", tiny_data, config, checkpoint_dir=tmp_path, device=CPU)
    assert again.source == "run" and again.record is None and len(again.history) == 1


# --------------------------------------------------------------------------- r3.5 huge subsets
def test_huge_subsets_fail_at_once_before_anything_is_allocated(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(D.cifar, "make_synthetic", lambda *a, **k: pytest.fail("generated the data"))
    for flag in ("--train-subset", "--test-subset"):
        args = ["train", *TINY, flag, str(10**12), "--save-dir", str(tmp_path / "runs")]
        assert cli.main(args) == 2
        err = _error_line(capsys)
        assert f"error: {flag} must be a whole number from 10" in err and "1000000000000" in err
    assert not (tmp_path / "runs").exists()  # nothing created for a bad size
    with pytest.raises(ValueError, match="train_subset must be a whole number") as info:
        D.load_run_data("synthetic", 10**9, None)
    assert isinstance(info.value, UserError)
    path = _save_run(tmp_path / "run")
    assert cli.main(["evaluate", str(path), "--dataset", "synthetic", "--test-subset", str(10**9)]) == 2
    assert "--test-subset must be" in _error_line(capsys)


# --------------------------------------------------------------------------- r3.6 values checked in one place
@pytest.mark.parametrize(
    "option, flag",
    [
        (["--model", "se_resnet20", "--reduction", "-4"], "--reduction must be a whole number of at least 1"),
        (["--model", "se_resnet20", "--reduction", "0"], "--reduction must be a whole number of at least 1"),
        (["--test-subset", "3"], "--test-subset must be a whole number from 10 (one image per class)"),
        (["--train-subset", "0"], "--train-subset must be a whole number from 10"),
        (["--profile", "step", "--milestones", "99"], "--milestones must be at most epochs (1)"),
        (
            ["--model", "resnet20", "--reduction", "8"],
            "--reduction sets the SE blocks' bottleneck, but resnet20 has no",
        ),
        (
            ["--model", "se_resnet20", "--se-min-hidden", "0"],
            "--se-min-hidden must be a whole number of at least 1",
        ),
        (["--model", "resnet20", "--se-min-hidden", "8"], "--se-min-hidden sets the SE blocks' bottleneck"),
    ],
    ids=[
        "reduction-negative",
        "reduction-zero",
        "test-subset-below-classes",
        "train-subset-zero",
        "milestone-past-the-end",
        "reduction-on-a-plain-net",
        "min-hidden-zero",
        "min-hidden-on-a-plain-net",
    ],  # fmt: skip
)
def test_cli_values_are_checked_before_any_work(option, flag, tmp_path, capsys, monkeypatch):
    _no_data_loading(monkeypatch)
    assert cli.main(["train", *TINY, *option, "--save-dir", str(tmp_path / "runs")]) == 2
    err = _error_line(capsys)
    assert f"error: {flag}" in err and "create_model" not in err and "TrainConfig" not in err
    assert not (tmp_path / "runs").exists()


def test_milestones_past_the_last_epoch_are_refused_by_the_recipe_itself():
    with pytest.raises(train.ConfigError, match=r"milestones must be at most epochs \(1\)"):
        TrainConfig(epochs=1, batch_size=1, milestones=(99,))
    assert TrainConfig(epochs=4, batch_size=1, milestones=(2, 4)).milestones == (2, 4)
    assert TrainConfig(epochs=1, batch_size=1).milestones == (30, 60, 90)  # the default, as always
    assert TrainConfig(epochs=1, batch_size=1, schedule="onecycle", milestones=(99,)).epochs == 1  # unused


# --------------------------------------------------------------------------- r3.7 symbolic-link loops
def test_a_data_folder_that_is_a_symlink_loop_is_one_sentence(tmp_path, capsys, monkeypatch):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    args = ["train", *TINY, "--dataset", "cifar10", "--no-download", "--save-dir", str(tmp_path / "runs")]
    assert cli.main([*args, "--data-dir", str(loop)]) == 2
    err = _error_line(capsys)
    assert f"The data folder {loop} is a symbolic link that loops back on itself" in err
    assert cli.main(["data", "--data-dir", str(loop)]) == 2
    assert "loops back on itself" in _error_line(capsys)
    monkeypatch.setenv("SENET_DATA_DIR", str(loop))
    assert cli.main(args) == 2
    assert f"SENET_DATA_DIR={loop} is a symbolic link" in _error_line(capsys)


# --------------------------------------------------------------------------- r3.8 WORLD_SIZE, SENET_*_DIR
def test_a_world_size_that_is_not_a_number_is_named(capsys, monkeypatch):
    _no_data_loading(monkeypatch)
    monkeypatch.setenv("WORLD_SIZE", "abc")
    assert cli.main(["train", *TINY]) == 2
    err = _error_line(capsys)
    assert "WORLD_SIZE is 'abc'" in err and "torchrun" in err and "invalid literal" not in err


def test_a_senet_dir_that_cannot_be_a_folder_is_named(tmp_path, capsys, monkeypatch):
    _no_data_loading(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SENET_CHECKPOINT_DIR", str(blocker))
    assert cli.main(["train", *TINY]) == 2
    err = _error_line(capsys)
    assert f"SENET_CHECKPOINT_DIR={blocker} cannot be used (it is a file, not a folder)" in err
    monkeypatch.setenv("SENET_CHECKPOINT_DIR", str(blocker / "below"))
    assert cli.main(["train", *TINY]) == 2
    assert "SENET_CHECKPOINT_DIR=" in _error_line(capsys)


# --------------------------------------------------------------------------- r3.9 paths too long
def test_a_save_dir_too_long_for_its_files_fails_before_training(tmp_path, capsys, monkeypatch):
    limit = os.pathconf(tmp_path, "PC_PATH_MAX")
    save_dir = tmp_path
    while len(str(save_dir)) < limit - 60:  # the folder itself fits; its run folder's files do not
        save_dir = save_dir / ("d" * min(200, limit - 60 - len(str(save_dir))))
    save_dir.mkdir(parents=True)
    _no_training(monkeypatch)
    assert cli.main(["train", *TINY, "--save-dir", str(save_dir)]) == 2
    err = _error_line(capsys)
    assert "too long a path" in err and "choose a shorter --save-dir or --run-name" in err
    assert list(save_dir.iterdir()) == []
    assert cli.main(["train", *TINY, "--save-dir", str(tmp_path), "--run-name", "n" * 300]) == 2
    assert "longer than the 255 bytes" in _error_line(capsys)
    ablate = ["ablate", "reduction", "--values", "4", "--seeds", "0", *TINY[:2], *TINY[4:]]
    assert cli.main([*ablate, "--save-dir", str(save_dir), "--results-dir", str(tmp_path / "res")]) == 2
    assert "too long a path" in _error_line(capsys) and list(save_dir.iterdir()) == []


# --------------------------------------------------------------------------- r3.10 run names
@pytest.mark.parametrize("name", ["../escaped", "/abs/run", "a/b", ".", "..", "run\udcff"])
def test_a_run_name_never_leaves_the_save_dir(name, tmp_path, capsys, monkeypatch):
    save = tmp_path / "runs"
    _no_data_loading(monkeypatch)
    assert cli.main(["train", *TINY, "--save-dir", str(save), "--run-name", name]) == 2
    err = _error_line(capsys)
    assert "error: --run-name " in err and ("stay inside --save-dir" in err or "not UTF-8" in err)
    assert _files(tmp_path) == []
    with pytest.raises(train.RunNameError, match="^The run name .*(not one folder name|not UTF-8)") as info:
        train.train_or_load(
            "resnet20", D.make_synthetic(20, 20), tiny_config(), run_name=name, checkpoint_dir=save
        )
    assert isinstance(info.value, (ValueError, UserError))
    assert _files(tmp_path) == []


# --------------------------------------------------------------------------- r3.11 notebook 05's parameters
@pytest.mark.parametrize(
    "models, seeds, problem",
    [
        (
            "se_resnet20",
            (0,),
            r"MODELS must be a pair of model names .* -y 'MODELS: \[resnet20, se_resnet20\]'",
        ),
        (("resnet20", "se_resnet999"), (0,), "MODELS names 'se_resnet999', which is not a model"),
        (("resnet20", "resnet20"), (0,), "compares 'resnet20' with itself"),
        (("resnet20", "se_resnet20"), "0", r"SEEDS must be one or more whole numbers, not '0'"),
        (("resnet20", "se_resnet20"), (0, -1), "SEEDS holds -1"),
        (("resnet20", "se_resnet20"), (1, 1), "lists a seed twice"),
        (("resnet20", "se_resnet20"), (), "SEEDS must be one or more"),
    ],
)
def test_notebook_05_parameters_are_checked_in_one_sentence(models, seeds, problem):
    with pytest.raises(train.ComparisonError, match=problem) as info:
        train.check_comparison(models, seeds)
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)


def test_notebook_05_takes_one_seed_as_papermill_passes_it():
    assert train.check_comparison(["resnet20", "se_resnet20"], 0) == (("resnet20", "se_resnet20"), (0,))
    assert train.check_comparison(("resnet20", "se_resnet20"), [2, 1]) == (
        ("resnet20", "se_resnet20"),
        (2, 1),
    )


def test_notebook_05_checks_its_parameters_before_it_uses_them():
    cells = json.loads((Path(__file__).parents[1] / "notebooks" / "05_train_cifar.ipynb").read_text())[
        "cells"
    ]
    code = [
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code" and "parameters" not in c["metadata"].get("tags", [])
    ]
    first_use = next(i for i, source in enumerate(code) if "MODELS" in source or "SEEDS" in source)
    assert "MODELS, SEEDS = check_comparison(MODELS, SEEDS)" in code[first_use]


# --------------------------------------------------------------------------- r3.12 a missing or extra key
def _weights_without_sidecar(path: Path, change) -> Path:
    weights = ckpt.export_weights(create_model("se_resnet20", 10), path, {})
    payload = torch.load(weights, weights_only=True)
    change(payload["state_dict"])
    torch.save(payload, weights)
    weights.with_suffix(".json").unlink()
    return weights


def test_weights_with_a_missing_or_extra_key_say_so_without_contradicting_themselves(tmp_path, capsys):
    missing = _weights_without_sidecar(tmp_path / "missing.pt", lambda s: s.pop("fc.bias"))
    assert cli.main(["evaluate", str(missing), "--dataset", "synthetic"]) == 2
    err = _error_line(capsys)
    assert "do not fit se_resnet20 (10 classes), the network it records" in err and "fc.bias" in err
    assert "model=None" not in err and "you passed" not in err
    extra = _weights_without_sidecar(tmp_path / "extra.pt", lambda s: s.update(bogus=torch.zeros(1)))
    with pytest.raises(ckpt.CheckpointError, match="1 unexpected, e.g. bogus"):
        ckpt.load_checkpoint(extra, model=create_model("se_resnet20", 10))
    # --resume of a checkpoint whose weights lost a key: no "holds se_resnet20 ..., not se_resnet20 ..."
    run = _save_run(tmp_path / "r", "resnet20")
    payload = torch.load(run, weights_only=True)
    payload["state_dict"].pop("fc.bias")
    torch.save(payload, run)
    assert cli.main(["train", *TINY, "--save-dir", str(tmp_path), "--run-name", "r", "--resume"]) == 2
    err = _error_line(capsys)
    assert "do not fit resnet20" in err and ", not resnet20" not in err and "model=None" not in err


# --------------------------------------------------------------------------- r3.13 evaluate an unfinished run
def test_evaluate_of_an_unfinished_run_reads_the_dataset_from_the_checkpoint(
    tiny_data, tmp_path, capsys, stop_at_step
):
    run_dir = tmp_path / "run"
    # Killed in epoch 2: epoch 1's checkpoint is there, the record (written at the end) is not.
    stop_at_step(2)
    config = tiny_config(epochs=2, max_steps_per_epoch=1)
    with pytest.raises(KeyboardInterrupt):
        fit(create_model("resnet20", 10), tiny_data, config, run_dir=run_dir, device=CPU)
    assert (run_dir / CHECKPOINT_NAME).is_file() and not (run_dir / "record.json").exists()
    assert cli.main(["evaluate", str(run_dir), "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "synthetic shapes" in out and "test split of 16 images" in out and "epoch 1" in out
    # A checkpoint written before the dataset was recorded still loads, and asks for --dataset.
    old = _save_run(tmp_path / "old")
    assert "dataset" not in ckpt.read_checkpoint(old)["extra"]
    assert cli.main(["evaluate", str(old)]) == 2
    assert "pass --dataset" in _error_line(capsys)


# --------------------------------------------------------------------------- r3.14 a closed stdout
def test_a_closed_stdout_ends_quietly(capsys, monkeypatch):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["models"]) == 141
    assert capsys.readouterr().err == ""


def test_a_closed_pipe_in_a_real_process_prints_nothing():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written (`| head -c1` that has exited)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "senet_lib", "models"],
            cwd=REPO,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=300,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == ""


# --------------------------------------------------------------------------- r3.15 not UTF-8
def test_a_save_dir_that_is_not_utf8_is_one_sentence_and_creates_nothing(tmp_path, capsys, monkeypatch):
    save = os.fsdecode(os.fsencode(str(tmp_path)) + b"/runs\xff")
    _no_data_loading(monkeypatch)
    assert cli.main(["train", *TINY, "--save-dir", save]) == 2
    err = _error_line(capsys)
    assert "not UTF-8" in err and "--save-dir" in err and "codec" not in err
    assert _files(tmp_path) == []
    monkeypatch.setenv("SENET_RESULTS_DIR", os.fsdecode(os.fsencode(str(tmp_path)) + b"/res\xff"))
    assert cli.main(["train", *TINY, "--save-dir", str(tmp_path / "ok")]) == 2
    assert "SENET_RESULTS_DIR=" in _error_line(capsys)
    assert _files(tmp_path) == []


# --------------------------------------------------------------------------- r3 new kinds
def test_rank_outside_the_world_is_refused_instead_of_waiting_forever(monkeypatch):
    monkeypatch.delenv("MASTER_ADDR", raising=False)  # so that the old code failed fast instead of waiting
    for var, value in {"WORLD_SIZE": "2", "RANK": "5", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(train.DistributedError, match="RANK 5 and LOCAL_RANK 0 must be below WORLD_SIZE 2"):
        train.init_distributed("cpu")


def test_a_checkpoint_recording_an_unknown_option_is_one_sentence(tmp_path, capsys):
    model = create_model("resnet20", 10)
    model.arch_config = {**model.arch_config, "bogus": 1}
    path = ckpt.save_checkpoint(tmp_path / CHECKPOINT_NAME, model, None, 1, [], {})
    assert cli.main(["evaluate", str(path), "--dataset", "synthetic"]) == 2
    err = _error_line(capsys)
    assert "records an architecture this senet_lib cannot build" in err and "bogus" in err


def test_a_checkpoint_path_that_is_a_folder_says_so(tiny_data, tmp_path):
    (tmp_path / CHECKPOINT_NAME).mkdir()
    with pytest.raises(ckpt.CheckpointError, match="is a folder, not a checkpoint file"):
        fit(create_model("resnet20", 10), tiny_data, tiny_config(), run_dir=tmp_path, resume=True, device=CPU)


def test_ablate_values_that_are_not_numbers_are_one_sentence(capsys):
    args = ["ablate", "reduction", "--values", "abc", "--profile", "quick", "--dataset", "synthetic"]
    assert cli.main(args) == 2
    err = _error_line(capsys)
    assert "value 'abc' is not a whole number" in err and "invalid literal" not in err


def test_a_sweep_plan_that_is_not_text_is_one_sentence(tmp_path, capsys):
    plan = tmp_path / "plan.txt"
    plan.write_bytes(b"\xff\xfe--profile quick\n")
    assert cli.main(["sweep", str(plan), "--logs", str(tmp_path / "logs")]) == 2
    err = _error_line(capsys)
    assert "is not UTF-8 text" in err and "codec" not in err
    assert not (tmp_path / "logs").exists()


def test_a_nested_lock_file_is_taken_over_not_a_crash(tmp_path, capsys):
    lock = tmp_path / ckpt.LOCK_NAME
    lock.write_text(DEEP)
    old = time.time() - 3600
    os.utime(lock, (old, old))
    with ckpt.claim_run_folder(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert "unreadable lock" in capsys.readouterr().err


def test_a_run_folder_that_is_a_symlink_loop_is_one_sentence(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ckpt.OutputError, match="Cannot create the run folder"), ckpt.claim_run_folder(loop):
        pass


def test_a_hand_edited_record_is_named_when_its_sizes_are_not_counts(tmp_path, capsys):
    path = _save_run(tmp_path)
    (tmp_path / "record.json").write_text(json.dumps({"dataset": {"name": "synthetic", "test_size": "all"}}))
    assert cli.main(["evaluate", str(path)]) == 2
    err = _error_line(capsys)
    assert "record.json records a test split of 'all' images" in err and "--test-subset" in err


def test_records_whose_history_is_not_rows_do_not_break_the_estimates(tmp_path):
    (tmp_path / "train_odd.json").write_text(json.dumps({"history": [1, 2], "model": {"name": "x"}}))
    assert train.config.recorded_cpu_throughput(tmp_path) == {}


def test_an_ablation_record_that_is_not_a_mapping_is_named(tmp_path):
    (tmp_path / "ablation_odd.json").write_text("[1, 2]")
    with pytest.raises(train.AblationError, match=r"ablation_odd\.json is not an ablation record"):
        train.recorded_ablations(tmp_path)


def test_a_path_that_is_not_utf8_is_printed_escaped_not_a_codec_crash(tmp_path, capsys):
    folder = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/run\xff"))
    folder.mkdir()
    path = _save_run(folder)
    assert cli.main(["evaluate", str(path), "--dataset", "synthetic", "--test-subset", "20"]) == 0
    assert "run\\udcff" in capsys.readouterr().out
