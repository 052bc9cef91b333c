"""Training curves and result tables (senet_lib.plots.training) and the README results builder."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from senet_lib.plots.training import histories_frame, plot_curves, plot_gap, results_table

ROOT = Path(__file__).resolve().parents[1]


def fake_history(peak: float) -> list[dict]:
    """Three epochs whose test accuracy is 0.5·peak, peak, then peak − 0.1 (best ≠ final)."""
    test_acc = [0.5 * peak, peak, peak - 0.1]
    return [
        {
            "epoch": e + 1,
            "train_loss": 2.0 / (e + 1),
            "train_acc": acc + 0.02,
            "test_loss": 2.2 / (e + 1),
            "test_acc": acc,
            "lr": 0.1,
            "seconds": 10.0,
            "images_per_sec": 100.0 * (e + 1),
        }
        for e, acc in enumerate(test_acc)
    ]


def test_results_table_means_and_std_over_seeds():
    table = results_table({"plain": [fake_history(0.8), fake_history(0.6)], "se": fake_history(0.9)})
    assert table.loc["plain", "seeds"] == 2 and table.loc["se", "seeds"] == 1
    # best is the epoch-2 peak, final the last epoch (peak − 0.1); means over the two seeds
    assert math.isclose(table.loc["plain", "best_test_acc"], 0.7)
    assert math.isclose(table.loc["plain", "final_test_acc"], 0.6)
    assert math.isclose(table.loc["plain", "final_test_acc_std"], math.sqrt(2) * 0.1)
    assert table.loc["se", "wall_time_s"] == 30.0 and table.loc["se", "images_per_sec"] == 200.0


def test_results_table_from_run_records():
    records = [{"model": {"name": "se_resnet20"}, "seed": s, "history": fake_history(0.7)} for s in (0, 1)]
    table = results_table(records)
    assert list(table.index) == ["se_resnet20"] and table.loc["se_resnet20", "seeds"] == 2


def test_curves_have_one_line_per_run_and_split():
    fig = plot_curves(
        {"plain": fake_history(0.8), "se": fake_history(0.9)}, metrics=("train_acc", "test_acc")
    )
    ax = fig.axes[0]
    ys = [list(line.get_ydata()) for line in ax.lines if len(line.get_ydata()) == 3]
    assert len(ys) == 4  # plain/se × train/test
    assert any(y == pytest.approx([0.45, 0.9, 0.8]) for y in ys)  # se's test curve
    assert any(y == pytest.approx([0.42, 0.82, 0.72]) for y in ys)  # plain's train curve
    plt.close(fig)


def test_the_gap_plot_zooms_in_and_draws_the_paired_difference():
    long = {
        "plain": [{**row, "epoch": e} for e, row in enumerate(fake_history(0.8) * 4, 1)],
        "se": [
            {**row, "epoch": e, "test_acc": row["test_acc"] + 0.0047}
            for e, row in enumerate(fake_history(0.8) * 4, 1)
        ],
    }
    fig = plot_gap(long, "plain", "se", tail=0.25)
    zoom, diff = fig.axes
    assert [len(line.get_xdata()) for line in zoom.lines] == [3, 3]  # the last quarter of 12 epochs
    low, high = zoom.get_ylim()
    assert high - low < 50  # zoomed, not the 0-100 % range
    paired = [line for line in diff.lines if len(line.get_xdata()) == 12][0]
    assert paired.get_ydata() == pytest.approx([0.47] * 12)  # se − plain, in points, every epoch
    assert any(
        "+0.47 points\nmean over the last 3 epochs: +0.47 (one seed)" in t.get_text() for t in diff.texts
    )
    plt.close(fig)
    two = plot_gap(
        {"plain": [fake_history(0.8)] * 2, "se": [fake_history(0.9), fake_history(0.7)]}, "plain", "se"
    )
    assert any("mean of 2 seeds" in t.get_text() for t in two.axes[1].texts)
    plt.close(two)
    with pytest.raises(ValueError, match="No test_acc for run"):
        plot_gap(long, "plain", "other")


def test_bad_input_says_what_to_do():
    with pytest.raises(ValueError, match="No epochs to plot"):
        histories_frame({"plain": []})
    with pytest.raises(ValueError, match="No values for metric"):
        plot_curves({"plain": fake_history(0.5)}, metrics=("test_top5",))


def _record(model: str, seed: int, acc: float, precision: str = "bf16") -> dict:
    return {
        "kind": "train",
        "model": {"name": model, "num_classes": 10},
        "dataset": {"name": "cifar10", "label": "CIFAR-10 (JPEG q75 copy)", "train_size": 50000},
        "recipe": {
            "epochs": 3,
            "schedule": "onecycle",
            "lr": 0.2,
            "batch_size": 256,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "cutout": 0,
        },
        "seed": seed,
        "precision": precision,
        "device_name": "Test GPU",
        "commit": "abc123",
        "history": fake_history(acc),
        "final_test_acc": acc - 0.1,
        "best_test_acc": acc,
        "wall_time_s": 120.0,
    }


def test_build_results_renders_records(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    runs = [("resnet20", 0.90, "bf16"), ("se_resnet20", 0.95, "bf16"), ("se_resnet20", 0.93, "bf16")]
    runs.append(("se_resnet20", 0.91, "fp32"))  # same recipe in another precision: its own row
    for i, (model, acc, precision) in enumerate(runs):
        (results / f"train_{i}.json").write_text(json.dumps(_record(model, i, acc, precision)))
    bench = {
        "kind": "benchmark",
        "device_name": "Test GPU",
        "torch": "2.x",
        "commit": "abc123",
        "settings": {"batch_size": 256, "steps": 20},
        "results": [
            {"model": "se_resnet50", "variant": "device+amp", "status": "ok", "images_per_sec": 21000.4},
            {"model": "se_resnet50", "variant": "baseline", "status": "failed", "error": "OOM"},
        ],
        "targets": [
            {
                "name": "se_images_per_sec",
                "goal": ">= 20,000",
                "measured": 21000.4,
                "applies": True,
                "met": True,
            },
            {"name": "speedup", "goal": ">= 5", "measured": None, "applies": False, "met": None},
        ],
    }
    (results / "bench_0.json").write_text(json.dumps(bench))
    runtimes = {
        "kind": "notebook_runtimes",
        "created": "2026-01-01T00:00:00+00:00",
        "profile": "quick",
        "device": "cpu",
        "device_name": "Test CPU",
        "torch": "2.x",
        "commit": "abc123",
        "fell_back_to_synthetic": ["05_train_cifar.ipynb"],
        "seconds": {"00_start_here.ipynb": 12.4, "05_train_cifar.ipynb": 99.6},
        "total_seconds": 112.0,
    }
    (results / "notebook_runtimes_quick_cpu.json").write_text(json.dumps(runtimes))
    readme = tmp_path / "README.md"
    readme.write_text(
        "x\n<!-- notebook-table:start -->\n<!-- notebook-table:end -->\n<!-- headline:start -->\n<!-- headline:end -->\n<!-- grid:start -->\n<!-- grid:end -->\n"
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text("<!-- results:start -->\nold\n<!-- results:end -->\n")
    (tmp_path / "docs" / "benchmarks.md").write_text("<!-- bench:start -->\n<!-- bench:end -->\n")

    def generated() -> str:
        return "".join(
            p.read_text()
            for p in (readme, tmp_path / "docs" / "results.md", tmp_path / "docs" / "benchmarks.md")
        )

    figures = tmp_path / "figures"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "build_results.py"),
        "--results",
        str(results),
        "--readme",
        str(readme),
        "--figures",
        str(figures),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    text = generated()
    assert "old" not in text and "CIFAR-10 (JPEG q75 copy)" in text and "Test GPU" in text
    assert "| resnet20 | bf16 | 0 | 80.00 | 90.00 |" in text
    assert "| se_resnet20 | bf16 | 1, 2 | 84.00 ± 1.41 | 94.00 ± 1.41 |" in text
    assert "| se_resnet20 | fp32 | 3 | 81.00 | 91.00 |" in text
    assert "SE paper v4, Table 4" in text  # their numbers, labelled as theirs
    assert "| se_resnet50 | device+amp | 21,000 |" in text and "failed: OOM" in text
    assert "| 12 s (quick) | not measured yet |" in text and "| 100 s (quick) |" in text
    assert "synthetic data in 05" in text and "Test CPU" in text
    runtimes.update(fell_back_to_synthetic=[], data_labels=["CIFAR-10 (JPEG q75 copy)"])
    (results / "notebook_runtimes_quick_cpu.json").write_text(json.dumps(runtimes))
    subprocess.run(cmd, check=True, capture_output=True)
    assert "CIFAR-10 (JPEG q75 copy) where the notebooks load data" in readme.read_text()
    text = generated()
    assert "| se_images_per_sec | >= 20,000 | 21,000 | yes |" in text and "| speedup |" not in text
    assert (figures / "results_curves_0.png").exists() and (figures / "results_curves_0.json").exists()
    assert subprocess.run([*cmd, "--check"], capture_output=True).returncode == 0
    results_md = tmp_path / "docs" / "results.md"
    results_md.write_text(results_md.read_text().replace("84.00", "99.00"))
    assert subprocess.run([*cmd, "--check"], capture_output=True).returncode == 1


def test_readme_matches_committed_results():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_results.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
