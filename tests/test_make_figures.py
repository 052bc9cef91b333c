"""`make figures`: every committed figure has a step that regenerates it, and a step that cannot run says why."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from senet_lib.train.runs import pick_pretrained

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def make_figures(monkeypatch):
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "scripts" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_figures", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_committed_figure_has_a_producer(make_figures, capsys):
    stems = make_figures.committed()
    assert len(stems) >= 15 and "00_se_block" in stems and "06_fig6_class_excitations" in stems
    steps = make_figures.plan("python")
    covered = [stem for step in steps for stem in step.figures]
    assert sorted(covered) == stems  # each exactly once
    assert {s.name for s in steps if s.figures} == {"notebooks", "06", "07", "results", "freeze_gates"}
    assert make_figures.main(["--plan"]) == 0
    out = capsys.readouterr().out
    assert "scripts/figures_06.sh" in out and "build_results.py" in out and "06_fig7_band_cat" in out
    # notebook 06's own pick from pretrained/ (the longest-trained SE-ResNet-20), named to the script
    (step_06,) = [s for s in steps if s.name == "06"]
    picked = pick_pretrained("se_resnet20", "cifar10", 10, ROOT / "pretrained").path
    assert picked.name.startswith("se_resnet20_cifar10_")
    assert step_06.command == ["bash", "scripts/figures_06.sh", str(picked.relative_to(ROOT))]
    (step_07,) = [
        s for s in steps if s.name == "07"
    ]  # the recorded grid, drawn by notebook 07 in the cpu profile
    assert "07_ablation_gate" in step_07.figures and "notebooks/07_ablations.ipynb" in step_07.command
    with pytest.raises(SystemExit, match="no known producer"):
        make_figures.producer("99_new_figure")


def test_a_step_that_cannot_run_is_named_and_the_run_fails(make_figures, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(make_figures, "PRETRAINED", tmp_path / "empty")
    ran = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    monkeypatch.setattr(make_figures, "BUILD", tmp_path)
    assert make_figures.main(["--only", "06", "--only", "results"]) == 1
    assert len(ran) == 1 and "build_results.py" in ran[0][1]
    assert ran[0][ran[0].index("--readme") + 1] == str(tmp_path / "README.md")  # README is left alone
    out = capsys.readouterr().out
    assert (
        f"Not regenerated: 06 (no verified SE-ResNet-20 trained on CIFAR-10 in {tmp_path / 'empty'})" in out
    )


def test_a_failing_step_is_named_and_the_others_still_run(make_figures, monkeypatch, tmp_path, capsys):
    ran = []

    def run(cmd, **kw):
        ran.append(cmd)
        if "figures_06.sh" in " ".join(cmd):
            raise subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(make_figures, "BUILD", tmp_path)
    assert make_figures.main(["--only", "06", "--only", "results"]) == 1
    assert len(ran) == 2
    assert "Not regenerated: 06 (failed with exit status 1" in capsys.readouterr().out


def test_figures_06_without_a_pretrained_network_says_what_to_do(tmp_path):
    """The script itself (not only make_figures) stops in one sentence, before touching figures/."""
    env = {**os.environ, "SENET_PRETRAINED_DIR": str(tmp_path / "empty"), "PY": sys.executable}
    result = subprocess.run(
        ["bash", "scripts/figures_06.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "No verified SE-ResNet-20 trained on CIFAR-10 in pretrained/ (or $SENET_PRETRAINED_DIR): "
        "name one, bash scripts/figures_06.sh FILE.pt"
    ]


def test_a_figure_redrawn_from_unchanged_data_keeps_its_committed_files(make_figures, monkeypatch, tmp_path):
    """`make figures` leaves the tree clean where nothing changed: a figure drawn again with the same image and
    provenance (but a new time and commit) gets its committed PNG, PDF and JSON back; a changed one keeps its new."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from senet_lib.plots import figures, save_figure

    def draw(stem: str, values: list[float]) -> None:
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot(values)
        save_figure(fig, stem, {"values": values}, folder=tmp_path / "figures")
        plt.close(fig)

    monkeypatch.setattr(make_figures, "FIGURES", tmp_path / "figures")
    monkeypatch.setattr(make_figures, "BUILD", tmp_path / "build")
    monkeypatch.setattr(figures, "git_commit", lambda: "a" * 40)
    draw("results_same", [1.0, 2.0])
    draw("results_new", [1.0, 2.0])
    before = {p.name: p.read_bytes() for p in (tmp_path / "figures").iterdir()}
    assert len(before) == 6

    def step(cmd, **kw):  # the results step, drawing again on another commit
        assert "build_results.py" in cmd[1]
        monkeypatch.setattr(figures, "git_commit", lambda: "b" * 40)
        draw("results_same", [1.0, 2.0])
        draw("results_new", [2.0, 1.0])

    monkeypatch.setattr(subprocess, "run", step)
    assert make_figures.main(["--only", "results"]) == 0
    after = {p.name: p.read_bytes() for p in (tmp_path / "figures").iterdir()}
    for ext in ("png", "pdf", "json"):
        assert after[f"results_same.{ext}"] == before[f"results_same.{ext}"], ext
    assert after["results_new.png"] != before["results_new.png"]
    assert json.loads(after["results_new.json"])["commit"] == "b" * 40
    assert json.loads(after["results_same.json"])["commit"] == "a" * 40
