"""The rehearsal of ``scripts/train_pair.py`` on a CPU: the whole path a GPU runs (device record, timing
probe, epoch count from it, the pair trained at once by ``sweep``, summary and bundle), on tiny data."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_pair_script_rehearses_on_a_cpu(tmp_path):
    out = tmp_path / "pair"
    tiny = "--dataset synthetic --train-subset 64 --test-subset 32 --batch-size 16"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train_pair.py"),
        "--device",
        "cpu",
        "--profile",
        "quick",
    ]
    command += [
        "--models",
        "se_resnet20",
        "resnet20",
        "--extra",
        tiny,
        "--minutes",
        "1.5",
        "--probe-steps",
        "2",
    ]
    command += ["--margin", "5", "--max-epochs", "2", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"]["device"] == "cpu"
    assert set(summary["probe"]) >= {"se_resnet20", "resnet20", "train_images"}
    assert summary["probe"]["train_images"] == 64
    epochs = summary["epochs"]
    assert 1 <= epochs <= 2 and "probe:" in summary["schedule_reason"]
    runs = {r["model"]: r for r in summary["runs"]}
    assert set(runs) == {"se_resnet20", "resnet20"}
    for run in runs.values():
        assert (
            run["epochs"] == epochs and run["test_acc_flip"] is not None and run["median_images_per_sec"] > 0
        )
    with tarfile.open(out / "bundle.tar.gz") as bundle:
        names = bundle.getnames()
    assert "summary.json" in names and "device.json" in names and "pair.plan" in names
    assert sum(n.startswith("results/train_") for n in names) == 2
    # a second call with --resume keeps the schedule and skips the finished pair
    again = subprocess.run([*command, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["epochs"] == epochs
    assert "2 skipped" in again.stdout
