"""A run killed in one Kaggle session continues in the next, from the previous version's output attached
read-only under /kaggle/input (simulated with temporary folders)."""

from __future__ import annotations

import shutil

import pytest
import torch

from senet_lib import train
from senet_lib.checkpoint import LOCK_NAME, earlier, find_earlier_run, read_checkpoint
from senet_lib.data import make_synthetic
from senet_lib.train import TrainConfig, train_or_load

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
CONFIG = TrainConfig(
    epochs=2,
    batch_size=16,
    lr=0.05,
    schedule="step",
    milestones=(1,),
    precision="fp32",
    progress=False,
    seed=0,
)


def _snapshot(folder):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_a_killed_run_resumes_from_an_attached_earlier_session(tmp_path, monkeypatch, capsys, stop_at_step):
    data = make_synthetic(n_train=48, n_test=16, seed=0)  # 3 steps per epoch
    restore = stop_at_step(4)  # epoch 2, first step: the session's time limit
    session1 = tmp_path / "session1" / "checkpoints"
    with pytest.raises(KeyboardInterrupt):
        train_or_load("se_resnet20", data, CONFIG, checkpoint_dir=session1, device=CPU)
    restore()
    (run_dir,) = session1.iterdir()
    epoch1 = read_checkpoint(run_dir / "checkpoint.pt")["history"]
    assert len(epoch1) == 1

    # The next session: the previous version's output is attached read-only as /kaggle/input/<notebook>/.
    inputs = tmp_path / "kaggle-input"
    attached = inputs / "my-notebook" / "checkpoints" / run_dir.name
    shutil.copytree(session1, inputs / "my-notebook" / "checkpoints")
    (attached / LOCK_NAME).write_text('{"host": "the dead session"}')
    (attached / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a save")
    before = _snapshot(inputs)
    monkeypatch.setattr(earlier, "EARLIER_RUN_ROOTS", (tmp_path / "not-there", inputs))
    assert find_earlier_run(run_dir.name) == attached
    fits = []
    real_fit = train.fit
    monkeypatch.setattr(train.runs, "fit", lambda *a, **k: fits.append(k["resume"]) or real_fit(*a, **k))
    capsys.readouterr()
    session2 = tmp_path / "session2" / "checkpoints"
    resumed = train_or_load("se_resnet20", data, CONFIG, checkpoint_dir=session2, device=CPU)
    out = capsys.readouterr().out
    assert f"Found an earlier session's run in {attached}" in out and "Resuming" in out and fits == [True]
    assert len(resumed.history) == 2 and resumed.history.to_list()[0] == epoch1[0]
    assert resumed.folder == session2 / run_dir.name and not (resumed.folder / LOCK_NAME).exists()
    assert not list(resumed.folder.glob("*.tmp"))
    assert _snapshot(inputs) == before  # the attached output is only read

    # A third session with both versions attached takes the most advanced copy: finished, so nothing trains.
    shutil.copytree(session2, inputs / "v2" / "output" / "checkpoints")
    assert find_earlier_run(run_dir.name) == inputs / "v2" / "output" / "checkpoints" / run_dir.name
    loaded = train_or_load("se_resnet20", data, CONFIG, checkpoint_dir=tmp_path / "session3", device=CPU)
    assert loaded.source == "run" and fits == [True]
    assert loaded.history.to_list() == resumed.history.to_list()
    monkeypatch.setattr(earlier, "EARLIER_RUN_ROOTS", (tmp_path / "no-kaggle-here",))
    assert find_earlier_run(run_dir.name) is None
    assert earlier.restore_earlier_run(run_dir.name, tmp_path / "elsewhere" / run_dir.name) is None
