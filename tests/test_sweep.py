"""``python -m senet_lib sweep``: several trainings from a plan file, a time budget, skip and resume."""

from __future__ import annotations

import json

import pytest

from senet_lib.cli import main
from senet_lib.cli.sweep import read_plan

TINY = "--profile quick --dataset synthetic --train-subset 32 --test-subset 16 --batch-size 16 --device cpu"


def test_a_plan_is_one_train_line_per_run(tmp_path):
    plan = tmp_path / "p.plan"
    plan.write_text("# two runs\n--model resnet20 --seed 0\n\ntrain --model se_resnet20 --seed 1  # SE\n")
    assert read_plan(plan, append="--epochs 2") == [
        ("--model resnet20 --seed 0 --epochs 2", ["--model", "resnet20", "--seed", "0", "--epochs", "2"]),
        (
            "--model se_resnet20 --seed 1 --epochs 2",
            ["--model", "se_resnet20", "--seed", "1", "--epochs", "2"],
        ),
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("# nothing\n", "names no run"),
        ("--model resnet20 --resume\n", "leave out --resume"),
        ("--model 'resnet20\n", "line 1"),
    ],
)
def test_a_bad_plan_ends_in_one_sentence(tmp_path, capsys, text, says):
    plan = tmp_path / "p.plan"
    plan.write_text(text)
    assert main(["sweep", str(plan), "--logs", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert main(["sweep", str(tmp_path / "missing.plan")]) == 2


def test_finished_runs_are_skipped_and_stopped_ones_resumed(tmp_path, capsys):
    short = f"{TINY} --model resnet20 --epochs 2"
    long = f"{TINY} --model se_resnet20 --epochs 150 --eval-every 150"
    logs = tmp_path / "logs"
    (tmp_path / "a.plan").write_text(short + "\n")
    assert main(["sweep", str(tmp_path / "a.plan"), "--logs", str(logs)]) == 0
    plan = tmp_path / "a.plan"
    plan.write_text(f"{short}\n{long}\n")
    capsys.readouterr()
    # the finished run is skipped; the budget stops the long one (its last checkpoint, if any, kept)
    assert main(["sweep", str(plan), "--jobs", "2", "--budget", "12", "--logs", str(logs)]) == 3
    assert "1 finished before" in capsys.readouterr().out
    state = json.loads((logs / "sweep.json").read_text())
    assert [j["state"] for j in state["jobs"]] == ["skipped", "stopped"]
    first = (logs / "run01.log").read_text()
    # the same sweep again finishes the stopped run, from its checkpoint when one was written
    assert main(["sweep", str(plan), "--jobs", "2", "--logs", str(logs)]) == 0
    assert "1 done, 1 skipped" in capsys.readouterr().out
    second = (logs / "run01.log").read_text()[len(first) :]
    if "is kept" in first:
        assert "Resuming (after epoch" in second
    assert "Done: final test accuracy" in second
    assert [j["state"] for j in json.loads((logs / "sweep.json").read_text())["jobs"]] == ["skipped", "done"]
