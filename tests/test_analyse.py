"""``python -m senet_lib analyse``: notebook 06 on a checkpoint trained by the command line, its figures in --out;
bad input in one sentence; and the Fig. 6 plot with default arguments on networks senet_lib did not build."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest
import torch
import torchvision
from torch import nn

from senet_lib import cli
from senet_lib.excitation import ExcitationRecorder, find_blocks
from senet_lib.plots import plot_class_band, plot_class_excitations, plot_excitation_heatmaps

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "--profile", "quick", "--dataset", "synthetic", "--epochs", "1", "--max-steps", "2",
    "--batch-size", "16", "--train-subset", "40", "--test-subset", "40", "--no-progress",
]  # fmt: skip
#: Fewer permutations and knock-out draws than the notebook's quick profile: the figures, not the verdicts.
FAST = ["--set", "PERMUTATIONS=19", "--set", "KNOCKOUT_DRAWS=2", "--no-progress"]


def _train(model: str, folder: Path) -> Path:
    assert cli.main(["train", *TINY, "--model", model, "--save-dir", str(folder)]) == 0
    (run_dir,) = [p for p in folder.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny SE-ResNet-20 and a tiny plain ResNet-20 trained with ``python -m senet_lib train``."""
    base = tmp_path_factory.mktemp("analyse")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("DATA", "CHECKPOINT", "FIGURES", "RESULTS"):
            mp.setenv(f"SENET_{var}_DIR", str(base / var.lower()))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return {m: _train(m, base / m) for m in ("se_resnet20", "resnet20")}
        finally:
            torch.set_num_threads(threads)


def test_analyse_writes_notebook_06s_figures_for_a_cli_trained_checkpoint(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["analyse", str(runs["se_resnet20"]), "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    notebook = json.loads((ROOT / "notebooks" / "06_excitation_per_class.ipynb").read_text())
    saved = {  # every figure notebook 06 saves under a fixed name (the Fig. 7 bands are named by class)
        line.split("save_figure(fig", 1)[1].split('"', 2)[1]
        for cell in notebook["cells"]
        for line in "".join(cell["source"]).splitlines()
        if "save_figure(fig" in line and ', "06_' in line
    }
    assert {"06_fig6_class_excitations", "06_class_separation_by_depth", "06_gate_saturation"} <= saved
    for stem in saved:
        assert (out / f"{stem}.png").stat().st_size > 0, stem
        assert (out / f"{stem}.pdf").is_file(), stem
    assert len(list(out.glob("06_fig7_band_*.png"))) == 2
    provenance = json.loads((out / "06_fig6_class_excitations.json").read_text())
    assert provenance["checkpoint"] == str((runs["se_resnet20"] / "checkpoint.pt").resolve())
    assert provenance["model"] == "se_resnet20" and provenance["synthetic"] is True
    # the data recorded beside the checkpoint (synthetic, 40 test images: 4 per class), not the profile's
    assert provenance["images_per_class"] == 4 and provenance["num_images"] == 40
    executed = json.loads((out / "06_excitation_per_class.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "PERMUTATIONS = 19" in "".join(injected[0]["source"])
    assert "06_fig6_class_excitations.png" in printed and str(out) in printed


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda runs, tmp: tmp / "missing.pt", "does not exist"),
        (
            lambda runs, tmp: _write(tmp / "notes.pt", b"not a checkpoint"),
            "could not be read as a checkpoint",
        ),
        (lambda runs, tmp: runs["resnet20"], "a network without SE blocks"),
    ],
    ids=["missing", "not-a-checkpoint", "no-se-blocks"],
)
def test_analyse_refuses_bad_input_in_one_sentence_and_exit_2(runs, tmp_path, capsys, make, words):
    out = tmp_path / "out"
    assert cli.main(["analyse", str(make(runs, tmp_path)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # refused before anything is written


def test_analyse_refuses_an_unknown_notebook_parameter(runs, capsys):
    assert cli.main(["analyse", str(runs["se_resnet20"]), "--set", "EPOCHS=3"]) == 2
    err = capsys.readouterr().err
    assert "notebook 06 has no such parameter" in err and "IMAGES_PER_CLASS" in err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- other networks, default arguments
def _stats(model: nn.Module, blocks: list[str] | None = None, classes: int = 3):
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(4 * classes, 3, 32, 32, generator=gen)
    labels = torch.arange(classes).repeat_interleave(4)
    with ExcitationRecorder(model, blocks, num_classes=classes) as recorder:
        recorder.update(images, labels)
    return recorder.stats([f"class {k}" for k in range(classes)])


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_fig6_with_defaults_on_torchvision_uses_every_block_the_recorder_found():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=3)
    stats = _stats(model)
    assert stats.blocks == list(find_blocks(model)) and len(stats.blocks) > 3
    assert _titles(plot_class_excitations(stats)) == stats.blocks
    assert _titles(plot_class_band(stats, 0)) == stats.blocks
    plot_excitation_heatmaps(stats)


class _Gated(nn.Module):
    """A hand-built SE network: its SE modules are no library's type, so their gates are named by hand."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.attend = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 2, 1), nn.ReLU(), nn.Conv2d(2, 8, 1)
        )
        self.sigm = nn.Sigmoid()
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = x * self.sigm(self.attend(x))
        return self.head(x.mean((2, 3)))


def test_fig6_with_defaults_on_hand_named_gates():
    torch.manual_seed(0)
    model = _Gated()
    assert find_blocks(model) == {}
    stats = _stats(model, blocks=["sigm"])
    assert stats.blocks == ["sigm"]
    fig = plot_class_excitations(stats)  # used to fail: 'sigm' is not a paper block name
    assert _titles(fig) == ["sigm"]
    assert len(fig.axes[0].lines) == 1 + 3  # the dashed "all" line and one per class
