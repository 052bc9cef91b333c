"""The throughput benchmark: it runs on a CPU and records what it measured. No timing thresholds."""

from __future__ import annotations

import json

import pytest
import torch

from senet_lib import bench, cli
from senet_lib.env import setup


def test_bench_runs_on_cpu_and_writes_a_record(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SENET_DEVICE", "cpu")
    args = ["bench", "--models", "se_resnet20", "resnet20", "--variants", "baseline", "device"]
    args += ["--batch-size", "4", "--steps", "2", "--warmup", "1", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    (path,) = list(tmp_path.glob("bench_*.json"))
    record = json.loads(path.read_text())
    expected = {"kind", "created", "environment", "device", "device_name", "torch", "commit"}
    expected |= {"settings", "data_note", "results", "summary", "targets", "reference_ratios"}
    assert expected <= set(record)
    assert (
        record["kind"] == "benchmark" and record["device"] == "cpu" and record["torch"] == torch.__version__
    )
    assert record["settings"]["synthetic"] is True and "synthetic" in record["data_note"]
    assert record["settings"]["batch_size"] == 4 and record["settings"]["steps"] == 2
    rows = record["results"]
    assert [(r["model"], r["variant"]) for r in rows] == [
        ("se_resnet20", "baseline"),
        ("se_resnet20", "device"),
        ("resnet20", "baseline"),
        ("resnet20", "device"),
    ]
    assert all(r["status"] == "ok" and r["images_per_sec"] > 0 and r["timed_steps"] == 2 for r in rows)
    assert [r["pipeline"] for r in rows[:2]] == ["torch", "device"]
    summary = record["summary"]
    assert (summary["se_model"], summary["plain_model"]) == ("se_resnet20", "resnet20")
    se_dev, plain_dev = rows[1]["images_per_sec"], rows[3]["images_per_sec"]
    assert summary["se_vs_plain_ratio_by_variant"]["device"] == pytest.approx(se_dev / plain_dev)
    assert {t["name"] for t in record["targets"]} == set(bench.TARGETS)
    out = capsys.readouterr().out
    assert "img/s" in out and str(path) in out and "20,000" in out


def _row(model: str, variant: str, ips: float | None) -> dict:
    status = "ok" if ips is not None else "failed"
    return {"model": model, "variant": variant, "status": status, "images_per_sec": ips}


def test_summary_ratios_and_speedup():
    settings = bench.BenchSettings(
        models=("se_resnet50", "resnet50"),
        variants=("baseline", "device+amp", "device+amp+cl"),
        batch_size=8,
        steps=1,
        warmup=0,
    )
    results = [
        _row("se_resnet50", "baseline", 100.0),
        _row("se_resnet50", "device+amp", 600.0),
        _row("se_resnet50", "device+amp+cl", 900.0),
        _row("resnet50", "baseline", 125.0),
        _row("resnet50", "device+amp", 650.0),
        _row("resnet50", "device+amp+cl", None),
    ]
    summary = bench.summarize(results, settings)
    assert summary["best_variant"] == "device+amp+cl" and summary["se_images_per_sec"] == 900.0
    assert summary["se_vs_plain_ratio_by_variant"] == pytest.approx(
        {"baseline": 0.8, "device+amp": 600 / 650}
    )
    assert summary["se_vs_plain_ratio"] is None  # the plain model failed at the best variant
    assert summary["speedup_device_amp_vs_baseline"] == pytest.approx(6.0)
    assert summary["speedup_best_amp_vs_baseline"] == pytest.approx(9.0)


def test_targets_say_when_they_apply():
    env = setup(seed=None, device="cpu", verbose=False)
    summary = {
        "se_model": "se_resnet50",
        "plain_model": "resnet50",
        "se_images_per_sec": 25_000.0,
        "se_vs_plain_ratio": 0.9,
        "speedup_device_amp_vs_baseline": None,
    }
    checks = {c["name"]: c for c in bench.check_targets(summary, env)}
    assert checks["se_images_per_sec"]["met"] is True and checks["se_images_per_sec"]["applies"] is False
    assert checks["se_vs_plain_ratio"]["met"] is False and checks["se_vs_plain_ratio"]["applies"] is True
    assert checks["speedup_device_amp_vs_baseline"]["met"] is None
    assert checks["speedup_device_amp_vs_baseline"]["applies"] is False  # a GPU goal


def test_a_failing_variant_is_recorded_not_raised(monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("no compiler here\nsecond line")

    monkeypatch.setattr(bench, "_build", broken)
    settings = bench.BenchSettings(
        models=("resnet20",), variants=("device",), batch_size=2, steps=1, warmup=0
    )
    row = bench.measure("resnet20", None, "device", settings, torch.device("cpu"))
    assert row["status"] == "failed" and row["images_per_sec"] is None
    assert row["error"] == "RuntimeError: no compiler here"


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="device\\+amp"):
        bench.BenchSettings(models=("resnet20",), variants=("turbo",), batch_size=2, steps=1, warmup=0)
