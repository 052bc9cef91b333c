"""The throughput benchmark: it runs on a CPU and records what it measured. No timing thresholds."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import pytest
import torch

from senet_lib.cli import run_command
from senet_lib.env import cpu_bf16_units, cpu_vector_isa, get_precision, setup
from senet_lib.train import RunPlan, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmark lives beside the package, not in it
import speed as bench  # noqa: E402
import train_speed  # noqa: E402


def bench_main(args: list[str]) -> int:
    """``python benchmarks/train_speed.py ARGS`` in this process."""
    return run_command(train_speed.parser(), args)


TINY = ["--batch-size", "4", "--steps", "2", "--warmup", "1", "--repeats", "2", "--min-seconds", "0"]
TINY += ["--train-images", "16"]


def _build_results():
    """scripts/build_results.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("build_results", ROOT / "scripts" / "build_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """One tiny CPU benchmark through the command line: (record, its path, what it printed).

    ``--profile-trace`` profiles the best SE variant for one step instead of five, and torch uses
    one thread (a 2-core test machine is often busy: spinning thread pools slow tiny steps down)."""
    out_dir = tmp_path_factory.mktemp("bench")
    profile_steps = bench.profile_steps
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        torch.set_num_threads(1)
        mp.setenv("SENET_DEVICE", "cpu")
        mp.delenv("SENET_PRECISION", raising=False)
        mp.setattr(
            bench.run, "profile_steps", lambda *args, **kwargs: profile_steps(*args, **kwargs, steps=1)
        )
        printed = io.StringIO()
        variants = ["seed-style", "default"]
        args = ["--models", "se_resnet20", "resnet20", "--variants", *variants, *TINY]
        with contextlib.redirect_stdout(printed):
            try:
                status = bench_main([*args, "--profile-trace", "--out", str(out_dir)])
            finally:
                torch.set_num_threads(threads)
    assert status == 0
    (path,) = list(out_dir.glob("bench_*.json"))
    return json.loads(path.read_text()), path, printed.getvalue()


def test_record_structure(cpu_run):
    record, _, _ = cpu_run
    expected = {"kind", "schema", "created", "environment", "backend", "dataloader_workers", "device"}
    expected |= {"device_name", "torch", "commit", "settings", "data_note", "results", "summary", "targets"}
    expected |= {"reference_ratios", "profile", "loop"}
    assert expected <= set(record)
    assert (record["kind"], record["schema"], record["device"]) == ("benchmark", 2, "cpu")
    assert record["torch"] == torch.__version__ and record["environment"]["device"] == "cpu"
    backend = record["backend"]
    assert backend["cpu_bf16_units"] == cpu_bf16_units() and backend["cuda"] is None
    assert backend["cpu_vector_isa"] == cpu_vector_isa() == record["environment"]["cpu_vector_isa"]
    assert backend["torch_threads"] == 1  # as the fixture set it
    assert record["dataloader_workers"] == 0  # the seed-style DataLoader on a CPU runs in the main process
    settings = record["settings"]
    assert (settings["batch_size"], settings["steps"], settings["repeats"], settings["warmup"]) == (
        4,
        2,
        2,
        1,
    )
    assert settings["min_seconds"] == 0 and settings["train_images"] == 16 and settings["synthetic"] is True
    assert [(r["model"], r["variant"]) for r in record["results"]] == [
        (m, v) for m in ("se_resnet20", "resnet20") for v in ("seed-style", "default")
    ]
    assert record["profile"] and {"op", "calls", "self_cpu_ms"} <= set(record["profile"][0])
    assert any("conv" in row["op"] for row in record["profile"])


def test_rows_report_the_median_of_their_repeats(cpu_run):
    record, _, _ = cpu_run
    for row in record["results"]:
        assert row["status"] == "ok", row
        repeats = row["repeats"]
        values = [r["images_per_sec"] for r in repeats]
        assert len(repeats) == 2 and all(r["steps"] == 2 for r in repeats)  # min_seconds 0: exactly `steps`
        assert values == pytest.approx([r["steps"] * 4 / r["seconds"] for r in repeats])
        assert row["images_per_sec"] == pytest.approx(statistics.median(values))
        assert (row["images_per_sec_min"], row["images_per_sec_max"]) == (min(values), max(values))
        spread = (max(values) - min(values)) / statistics.median(values)
        assert row["relative_spread"] == pytest.approx(spread)
        assert row["timed_steps"] == 4 and row["warmup_steps"] == 1 and row["first_step_seconds"] > 0
        assert row["compile_seconds"] is None and row["peak_memory_mb"] is None  # no compile, no CUDA
        assert row["compile_mode"] is None
        # the loader alone delivers batches faster than loader + training step
        assert row["loader_images_per_sec"] > row["images_per_sec_min"]


def test_seed_style_is_true_fp32_channels_first_torch_pipeline(cpu_run):
    record, _, _ = cpu_run
    for row in (r for r in record["results"] if r["variant"] == "seed-style"):
        assert (row["pipeline"], row["precision"], row["channels_last"]) == ("torch", "fp32", False)
        assert row["true_fp32"] is True and row["tf32"] is None and row["num_workers"] == 0


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("seed-style", ("torch", "fp32", False, False)),
        ("device-fp32", ("device", "fp32", False, False)),
        ("device-fp32-cl", ("device", "fp32", True, False)),
        ("device-bf16", ("device", "bf16", False, False)),
        ("device-bf16-cl", ("device", "bf16", True, False)),
    ],
)
def test_variants_build_what_they_say(variant, expected):
    settings = bench.BenchSettings(models=("resnet20",), variants=(variant,), batch_size=2, steps=1)
    data = bench.load_bench_data(settings)
    trainer, batches, info = bench.timing._build("resnet20", data, variant, settings, torch.device("cpu"))
    batches.close()
    assert (info["pipeline"], info["precision"], info["channels_last"], info["compile"]) == expected
    assert (trainer.precision.name, trainer.channels_last) == (info["precision"], info["channels_last"])
    assert trainer.precision.dtype == (torch.bfloat16 if info["precision"] == "bf16" else None)


def test_default_records_what_it_resolved_to(cpu_run):
    record, _, _ = cpu_run
    cpu = torch.device("cpu")
    expected = get_precision(cpu, None)
    channels_last = RunPlan.resolve(TrainConfig(epochs=1, batch_size=4), cpu).channels_last
    for row in (r for r in record["results"] if r["variant"] == "default"):
        assert (row["precision"], row["precision_reason"]) == (expected.name, expected.reason)
        assert row["channels_last"] is channels_last
        assert (row["pipeline_requested"], row["pipeline"]) == ("auto", "device")


def test_ratios_speedups_and_targets_come_from_the_medians(cpu_run):
    record, _, _ = cpu_run
    median = {(r["model"], r["variant"]): r["images_per_sec"] for r in record["results"]}
    summary = record["summary"]
    assert (summary["se_model"], summary["plain_model"]) == ("se_resnet20", "resnet20")
    assert summary["se_vs_plain_ratio_by_variant"] == pytest.approx(
        {v: median["se_resnet20", v] / median["resnet20", v] for v in ("seed-style", "default")}
    )
    assert summary["speedup_default_vs_seed_style"] == pytest.approx(
        {m: median[m, "default"] / median[m, "seed-style"] for m in ("se_resnet20", "resnet20")}
    )
    targets = {t["name"]: t for t in record["targets"]}
    assert set(targets) == set(bench.TARGETS)
    cpu_target = targets["cpu_default_vs_seed_style"]
    assert cpu_target["applies"] is True
    assert cpu_target["measured"] == pytest.approx(summary["speedup_default_vs_seed_style"]["se_resnet20"])
    assert cpu_target["met"] == (cpu_target["measured"] >= 2.0)
    loop_target = targets["fit_vs_bare_step"]
    assert loop_target["applies"] is True
    assert loop_target["measured"] == pytest.approx(record["loop"]["fit_vs_bare_step"])
    assert loop_target["met"] == (loop_target["measured"] >= 0.9)
    # a CPU run interleaves its variants, so default and seed-style are also compared round by round
    assert record["settings"]["interleave"] is True
    for model in ("se_resnet20", "resnet20"):
        rates = {
            v: [t["images_per_sec"] for t in r["repeats"]]
            for r in record["results"]
            for v in ("default", "seed-style")
            if r["model"] == model and r["variant"] == v
        }
        assert [t["round"] for r in record["results"] if r["model"] == model for t in r["repeats"]] == [
            0,
            1,
        ] * 2
        paired = summary["speedup_default_vs_seed_style_by_round"][model]
        assert paired["rounds"] == pytest.approx(
            [d / b for d, b in zip(rates["default"], rates["seed-style"], strict=True)]
        )
    cpu_only = {"cpu_default_vs_seed_style", "fit_vs_bare_step"}
    assert not any(targets[k]["applies"] for k in targets if k not in cpu_only)


def test_printed_table_and_rendered_readme_section(cpu_run):
    record, path, printed = cpu_run
    row = record["results"][0]
    line = next(x for x in printed.splitlines() if x.startswith("se_resnet20   seed-style"))
    assert f"{row['images_per_sec']:,.0f}" in line and f"{50 * row['relative_spread']:.1f}%" in line
    assert str(path) in printed and "20,000" in printed and "default resolved to" in printed
    section = _build_results().bench_section([{**record, "_file": path.name}])
    assert f"| se_resnet20 | seed-style | {row['images_per_sec']:,.0f} | " in section
    assert "| fp32 | channels-first | torch |" in section and "median of 2 repeats" in section
    assert "| cpu_default_vs_seed_style |" in section and "`default` over `seed-style`" in section
    # the overview line above the collapsed details: the SE model's speed-up, round by round, and the file
    overview = next(x for x in section.split("<details>")[0].splitlines() if path.name in x)
    summary = record["summary"]
    paired = summary["speedup_default_vs_seed_style_by_round"]["se_resnet20"]
    assert f"| {summary['speedup_default_vs_seed_style']['se_resnet20']:.2f}× |" in overview
    assert f"| {paired['min']:.2f}–{paired['max']:.2f}× |" in overview
    assert f"| {record['loop']['fit_vs_bare_step']:.3f} |" in overview
    units = ", ".join(record["backend"]["cpu_bf16_units"]) or "none"
    isa = record["backend"]["cpu_vector_isa"]
    assert f"| {units} ({isa}) |" in overview if isa else f"| {units} |" in overview
    assert f"vector ISA {isa}" in printed if isa else "vector ISA" not in printed
    cpu_id = record["environment"]["cpu_id"]
    assert f"({cpu_id})" in printed if cpu_id else "family" not in printed
    # a record from before the vector ISA was recorded shows the bf16 units alone
    old_backend = {k: v for k, v in record["backend"].items() if k != "cpu_vector_isa"}
    old_section = _build_results().bench_section([{**record, "backend": old_backend, "_file": path.name}])
    assert f"| {units} |" in old_section.split("<details>")[0]
    # oldest first by creation time, whatever the file names (they begin with the machine's name)
    early = {**record, "created": "2026-01-01T00:00:00+00:00", "_file": "bench_z_machine.json"}
    late = {**record, "created": "2026-02-01T00:00:00+00:00", "_file": "bench_a_machine.json"}
    both = _build_results().bench_section([late, early])
    assert both.index("bench_z_machine.json") < both.index("bench_a_machine.json")
    loop = record["loop"]
    assert f"{loop['fit_vs_bare_step']:.3f} × bare" in printed
    assert f"{loop['fit_vs_bare_step']:.3f} × the bare step" in section and "| fit_vs_bare_step |" in section
    # a miss by a hair does not round up to the goal it missed
    hair = {**record, "loop": {**loop, "fit_vs_bare_step": 0.898}, "_file": path.name}
    hair["targets"] = [
        {**t, "measured": 0.898, "met": False} if t["name"] == "fit_vs_bare_step" else t
        for t in record["targets"]
    ]
    hair_section = _build_results().bench_section([hair])
    assert "| 0.898 |" in hair_section.split("<details>")[0] and "| 0.898 | no |" in hair_section


def test_the_loop_runs_fit_with_the_defaults_and_leaves_out_its_warm_up_epoch(cpu_run):
    record, _, _ = cpu_run
    loop = record["loop"]
    assert loop["status"] == "ok", loop
    assert (loop["model"], loop["batch_size"], loop["epochs"]) == ("se_resnet20", 4, 3)  # repeats + 1
    assert (loop["train_images"], loop["test_images"]) == (16, 3)  # a test split a fifth of the training one
    assert loop["steps_per_epoch"] == 4 and loop["pipeline"] == "DeviceLoader"
    assert loop["precision"] == get_precision(torch.device("cpu"), None).name
    history = loop["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3] and [r["warm_up"] for r in history] == [
        True,
        False,
        False,
    ]
    assert all(r["test_acc"] is not None for r in history)  # evaluated every epoch
    timed = history[1:]
    assert loop["fit_train"]["images_per_sec"] == pytest.approx(
        statistics.median(r["images_per_sec"] for r in timed)
    )
    epoch_rates = [16 / r["seconds"] for r in timed]
    assert loop["fit_epoch"]["images_per_sec"] == pytest.approx(statistics.median(epoch_rates))
    assert loop["fit_vs_bare_step"] == pytest.approx(
        loop["fit_train"]["images_per_sec"] / loop["bare_step"]["images_per_sec"]
    )
    assert record["summary"]["fit_vs_bare_step"] == loop["fit_vs_bare_step"]
    # the whole epoch also holds the test pass and the checkpoint: never faster than its training phase
    assert loop["epoch_vs_bare_step"] < loop["fit_vs_bare_step"]
    assert 0 < loop["test_seconds_share"] < 1


def test_loop_ratios_come_from_the_timed_epochs(monkeypatch):
    """Known rates in, known ratios out: the warm-up epoch (10 img/s here) must not enter the medians."""
    from speed import loop as loop_module

    from senet_lib.train import History

    info = {"precision": "fp32", "channels_last": False, "pipeline": "DeviceLoader", "steps_per_epoch": 2}
    halves = iter([[100.0, 120.0, 100.0], [90.0, 130.0, 110.0]])  # timed before fit, then after it

    class FakeBareStep:
        def __init__(self, *args, **kwargs) -> None:
            self.info = info

        def rates(self) -> list[float]:
            return next(halves)

    monkeypatch.setattr(loop_module, "_BareStep", FakeBareStep)
    rows = [(10.0, 1.0), (90.0, 0.5), (80.0, 0.4), (70.0, 0.5)]  # (training img/s, epoch seconds)
    history = History(
        {"epoch": i + 1, "images_per_sec": ips, "seconds": s, "test_acc": 0.5}
        for i, (ips, s) in enumerate(rows)
    )
    monkeypatch.setattr(loop_module, "fit", lambda *a, **k: history)
    settings = bench.BenchSettings(models=("resnet20",), variants=("default",), batch_size=8, repeats=3)
    result = bench.measure_loop("resnet20", settings, torch.device("cpu"))
    assert result["status"] == "ok" and result["epochs"] == 4
    assert result["bare_step_before_fit"] == [100.0, 120.0, 100.0]
    assert result["bare_step_after_fit"] == [90.0, 130.0, 110.0]
    assert result["bare_step"]["images_per_sec"] == 105.0  # the median over both halves
    assert result["fit_vs_bare_step"] == pytest.approx(80 / 105)  # median(90, 80, 70) / 105
    # 2 steps of 8 images over 0.5, 0.4 and 0.5 s: 32, 40 and 32 img/s, median 32
    assert result["epoch_vs_bare_step"] == pytest.approx(32 / 105)
    # e.g. 16 images at 80 img/s = 0.2 s of the epoch's 0.4 s: the other half is test pass and saving
    assert result["test_seconds_share"] == pytest.approx(
        statistics.median([1 - 16 / 90 / 0.5, 0.5, 1 - 16 / 70 / 0.5])
    )


def test_a_failing_loop_is_recorded_and_no_loop_skips_it(monkeypatch, tmp_path):
    from speed import loop as loop_module

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full\nmore")

    monkeypatch.setattr(loop_module, "fit", broken)
    settings = bench.BenchSettings(
        models=("resnet20",), variants=("default",), batch_size=2, steps=1, repeats=1
    )
    settings = dataclasses.replace(settings, warmup=1, min_seconds=0.0, train_images=4)
    result = bench.measure_loop("resnet20", settings, torch.device("cpu"))
    assert (result["status"], result["error"], result["fit_vs_bare_step"]) == (
        "failed",
        "RuntimeError: disk full",
        None,
    )
    seen = []
    monkeypatch.setattr(bench, "main_bench", lambda s, **k: seen.append(s) or tmp_path)
    assert bench_main(["--models", "resnet20", "--no-loop", *TINY]) == 0
    assert seen[0].loop is False
    record = bench.run_benchmark(dataclasses.replace(settings, loop=False), verbose=False)
    assert record["loop"] is None and "fit_vs_bare_step" not in record["summary"]
    assert not {t["name"]: t for t in record["targets"]}["fit_vs_bare_step"]["applies"]


def _row(model: str, variant: str, repeats: list[float] | None) -> dict:
    if repeats is None:
        return {"model": model, "variant": variant, "status": "failed", "images_per_sec": None}
    return {"model": model, "variant": variant, "status": "ok", **bench.throughput_stats(repeats)}


def test_summary_uses_medians_not_means():
    settings = bench.BenchSettings(
        models=("se_resnet50", "resnet50"),
        variants=("seed-style", "device-bf16", "default"),
        batch_size=8,
    )
    results = [
        _row("se_resnet50", "seed-style", [100.0, 90.0, 1000.0]),  # median 100, mean 397
        _row("se_resnet50", "device-bf16", [600.0, 610.0, 50.0]),  # median 600
        _row("se_resnet50", "default", [900.0, 880.0, 5000.0]),  # median 900
        _row("resnet50", "seed-style", [125.0, 125.0, 125.0]),
        _row("resnet50", "device-bf16", [650.0, 640.0, 660.0]),
        _row("resnet50", "default", None),
    ]
    summary = bench.summarize(results, settings)
    assert summary["best_variant"] == "default" and summary["se_images_per_sec"] == 900.0
    assert summary["se_vs_plain_ratio_by_variant"] == pytest.approx(
        {"seed-style": 0.8, "device-bf16": 600 / 650}
    )
    assert summary["se_vs_plain_ratio"] is None  # the plain model failed at the best variant
    assert summary["speedup_default_vs_seed_style"] == pytest.approx({"se_resnet50": 9.0})
    assert summary["speedup_best_vs_seed_style"]["resnet50"] == {"variant": "device-bf16", "speedup": 5.2}


def test_throughput_stats():
    stats = bench.throughput_stats([30.0, 10.0, 20.0, 100.0])
    assert stats == {
        "images_per_sec": 25.0,
        "images_per_sec_min": 10.0,
        "images_per_sec_max": 100.0,
        "relative_spread": 90.0 / 25.0,
    }
    with pytest.raises(ValueError, match="--repeats"):
        bench.throughput_stats([])


def test_targets_say_when_they_apply():
    cpu_env = setup(seed=None, device="cpu", verbose=False)
    summary = {
        "se_model": "se_resnet50",
        "plain_model": "resnet50",
        "se_images_per_sec": 25_000.0,
        "se_vs_plain_ratio": 0.9,
        "speedup_default_vs_seed_style": {"se_resnet50": 6.0},
    }
    h100 = dataclasses.replace(cpu_env, device=torch.device("cuda"), device_name="NVIDIA H100 80GB HBM3")
    on_gpu = {c["name"]: c for c in bench.check_targets(summary, h100)}
    assert on_gpu["se_images_per_sec"]["applies"] is True and on_gpu["se_images_per_sec"]["met"] is True
    assert on_gpu["se_vs_plain_ratio"]["applies"] is True and on_gpu["se_vs_plain_ratio"]["met"] is False
    assert (
        on_gpu["cuda_default_vs_seed_style"]["measured"] == 6.0
        and on_gpu["cuda_default_vs_seed_style"]["met"]
    )
    assert on_gpu["cpu_default_vs_seed_style"]["applies"] is False
    on_cpu = {c["name"]: c for c in bench.check_targets(summary, cpu_env)}
    assert not any(c["applies"] for c in on_cpu.values())
    small = {**summary, "se_model": "se_resnet20", "plain_model": "resnet20"}
    small["speedup_default_vs_seed_style"] = {"se_resnet20": 1.5}
    cpu_check = {c["name"]: c for c in bench.check_targets(small, cpu_env)}["cpu_default_vs_seed_style"]
    assert (cpu_check["applies"], cpu_check["measured"], cpu_check["met"]) == (True, 1.5, False)


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("steps", 0, "--steps"),
        ("steps", -3, "--steps"),
        ("repeats", 0, "--repeats"),
        ("repeats", -1, "--repeats"),
        ("warmup", 0, "--warmup"),
        ("batch_size", 0, "--batch-size"),
        ("min_seconds", -1.0, "--min-seconds"),
        ("max_steps", 1, "--max-steps"),
        ("train_images", 2, "--train-images"),
        ("num_workers", -1, "--num-workers"),
    ],
)
def test_invalid_settings_are_refused(field, value, flag):
    values = {"models": ("resnet20",), "variants": ("default",), "batch_size": 4, "steps": 2, field: value}
    with pytest.raises(ValueError, match=flag):
        bench.BenchSettings(**values)


@pytest.mark.parametrize(
    "option", [["--steps", "0"], ["--repeats", "0"], ["--repeats", "-2"], ["--min-seconds", "-1"]]
)
def test_cli_refuses_zero_and_negative_values(option, capsys, monkeypatch, tmp_path):
    """0 is not replaced by a default (the option comes last, after tiny settings, so a regression
    runs a quick benchmark and fails here instead of a long one)."""
    monkeypatch.setenv("SENET_DEVICE", "cpu")
    args = ["--models", "resnet20", "--variants", "device-fp32", *TINY, "--out", str(tmp_path)]
    assert bench_main([*args, *option]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option[0] in err
    assert not list(tmp_path.iterdir())  # refused before anything ran


def test_variant_aliases_and_unknown_variants():
    settings = bench.BenchSettings(
        models=("resnet20",), variants=("baseline", "device+amp", "+compile", "seed-style"), batch_size=2
    )
    assert settings.variants == ("seed-style", "device-bf16", "device-bf16-cl-compile")
    with pytest.raises(ValueError, match="seed-style"):
        bench.BenchSettings(models=("resnet20",), variants=("turbo",), batch_size=2)


def test_defaults_by_device():
    cuda = bench.default_settings(torch.device("cuda"))
    assert (cuda.models, cuda.batch_size) == (("se_resnet50", "resnet50"), 256)
    assert cuda.variants == tuple(v for v in bench.VARIANTS if v != "device-fp32-cl")
    assert "device-bf16-cl-compile" in cuda.variants
    cpu = bench.default_settings(torch.device("cpu"))
    assert (cpu.models, cpu.batch_size, cpu.repeats, cpu.min_seconds) == (
        ("se_resnet20", "resnet20"),
        128,
        3,
        3.0,
    )
    with_bf16 = ("seed-style", "device-fp32", "device-fp32-cl", "device-bf16", "device-bf16-cl", "default")
    if cpu_bf16_units():
        assert cpu.variants == with_bf16 and bench.skipped_note(torch.device("cpu")).startswith(
            "torch.compile"
        )
    else:  # emulated bf16 would spend the default run's minutes at a tenth of fp32's speed
        assert cpu.variants == ("seed-style", "device-fp32", "device-fp32-cl", "default")
        assert "no native bf16 units" in bench.skipped_note(torch.device("cpu"))
    assert "device-fp32-cl" not in cuda.variants
    assert (cpu.interleave, cuda.interleave) == (True, False)  # CUDA rows keep their own peak memory
    assert bench.default_variants(torch.device("mps")) == ("seed-style", "device-fp32", "default")


def test_seed_style_switches_tf32_off_on_cuda_and_restores_it(monkeypatch):
    """Runs without a GPU: the TF32 switches are plain flags, and the timing itself is replaced
    (the fake warm-up notes the flags, then stops the row)."""
    seen = {}

    def fake_start(row, model_name, data, variant, settings, device):
        seen[variant] = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        raise RuntimeError("timing replaced")

    monkeypatch.setattr(bench.timing, "start_variant", fake_start)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        settings = bench.BenchSettings(models=("resnet20",), variants=("seed-style",), batch_size=2)
        cuda = torch.device("cuda")
        seed_row = bench.measure("resnet20", None, "seed-style", settings, cuda)
        device_row = bench.measure("resnet20", None, "device-fp32", settings, cuda)
        assert seen == {"seed-style": (False, False), "device-fp32": (True, True)}
        assert seed_row["tf32"] == {"matmul_allow_tf32": False, "cudnn_allow_tf32": False}
        assert device_row["tf32"] == {"matmul_allow_tf32": True, "cudnn_allow_tf32": True}
        assert seed_row["error"] == "RuntimeError: timing replaced"
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class _CountingTrainer:
    """Stands in for a Trainer: counts steps of about a millisecond."""

    def __init__(self) -> None:
        self.steps = 0

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        time.sleep(0.001)
        return torch.zeros(())


def test_a_repeat_runs_at_least_steps_and_min_seconds_and_at_most_max_steps():
    batches = itertools.repeat((torch.zeros(1), torch.zeros(1)))
    cpu = torch.device("cpu")
    base = {"models": ("resnet20",), "variants": ("default",), "batch_size": 2}
    timing, _ = bench.timing._timed_repeat(
        _CountingTrainer(), batches, bench.BenchSettings(**base, steps=3, min_seconds=0.05), cpu
    )
    assert timing["steps"] > 3 and timing["seconds"] >= 0.05  # 1 ms steps: the time limit ends it
    assert timing["images_per_sec"] == pytest.approx(timing["steps"] * 2 / timing["seconds"])
    capped = bench.BenchSettings(**base, steps=3, min_seconds=60.0, max_steps=5)
    assert bench.timing._timed_repeat(_CountingTrainer(), batches, capped, cpu)[0]["steps"] == 5
    exact = bench.BenchSettings(**base, steps=7, min_seconds=0.0)
    assert bench.timing._timed_repeat(_CountingTrainer(), batches, exact, cpu)[0]["steps"] == 7


def test_a_failing_variant_is_recorded_not_raised(monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("no compiler here\nsecond line")

    monkeypatch.setattr(bench.timing, "_build", broken)
    settings = bench.BenchSettings(models=("resnet20",), variants=("device-fp32",), batch_size=2, steps=1)
    row = bench.measure("resnet20", None, "device-fp32", settings, torch.device("cpu"))
    assert row["status"] == "failed" and row["images_per_sec"] is None
    assert row["error"] == "RuntimeError: no compiler here"


def _endless_batches():
    while True:
        yield torch.zeros(1), torch.zeros(1)


class _LoggingTrainer(_CountingTrainer):
    """A :class:`_CountingTrainer` that notes its variant in a shared log at every step, and fails
    from its ``fail_at``-th step on, if given."""

    def __init__(self, name: str, log: list[str], fail_at: int | None = None) -> None:
        super().__init__()
        self.name, self.log, self.fail_at = name, log, fail_at

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.log.append(self.name)
        if self.fail_at is not None and self.steps + 1 >= self.fail_at:
            raise RuntimeError(f"{self.name} broke")
        return super().train_step(x, y)


def _fake_starts(monkeypatch, log, fail_at=None):
    """Replace building and warming up a variant by a logging stand-in (no warm-up steps)."""

    def fake_start(row, model_name, data, variant, settings, device):
        row.update(status="warm")
        trainer = _LoggingTrainer(variant, log, (fail_at or {}).get(variant))
        return bench.timing.LiveVariant(row, trainer, _endless_batches())

    monkeypatch.setattr(bench.interleave, "start_variant", fake_start)


def test_interleaved_variants_are_timed_in_rounds_of_alternating_order(monkeypatch):
    log: list[str] = []
    _fake_starts(monkeypatch, log)
    variants = ("seed-style", "device-fp32", "default")
    settings = bench.BenchSettings(
        models=("resnet20",), variants=variants, batch_size=2, steps=2, repeats=3, min_seconds=0
    )
    rows = bench.measure_interleaved("resnet20", None, variants, settings, torch.device("cpu"))
    assert [r["variant"] for r in rows] == list(variants)
    forwards = [v for v in variants for _ in range(2)]  # 2 steps per repeat
    assert log == forwards + forwards[::-1] + forwards
    assert bench.round_order(variants, 1) == ["default", "device-fp32", "seed-style"]
    for row in rows:
        assert row["status"] == "ok" and [r["round"] for r in row["repeats"]] == [0, 1, 2]
        assert row["images_per_sec"] == pytest.approx(
            statistics.median(r["images_per_sec"] for r in row["repeats"])
        )


def test_a_variant_failing_mid_rounds_is_recorded_and_the_others_go_on(monkeypatch):
    log: list[str] = []
    _fake_starts(monkeypatch, log, fail_at={"device-fp32": 3})  # fails in its second repeat
    variants = ("seed-style", "device-fp32", "default")
    settings = bench.BenchSettings(
        models=("resnet20",), variants=variants, batch_size=2, steps=2, repeats=3, min_seconds=0
    )
    seed, broken, default = bench.measure_interleaved(
        "resnet20", None, variants, settings, torch.device("cpu")
    )
    assert broken["status"] == "failed" and broken["error"] == "RuntimeError: device-fp32 broke"
    assert broken["images_per_sec"] is None
    assert seed["status"] == default["status"] == "ok"
    assert len(seed["repeats"]) == len(default["repeats"]) == 3
    assert log.count("device-fp32") == 3  # two steps of round 0, the failing one, then no more


def test_paired_speedups_take_default_over_seed_style_round_by_round():
    def row(variant, rates, status="ok"):
        repeats = [{"images_per_sec": v, "round": i} for i, v in enumerate(rates)]
        return {"model": "m", "variant": variant, "status": status, "repeats": repeats}

    paired = bench.paired_speedups([row("seed-style", [100, 200, 100]), row("default", [210, 380, 190])], "m")
    assert paired["rounds"] == pytest.approx([2.1, 1.9, 1.9])
    assert (paired["min"], paired["median"], paired["max"]) == pytest.approx((1.9, 1.9, 2.1))
    sequential = [{**row("seed-style", [100]), "repeats": [{"images_per_sec": 100}]}, row("default", [200])]
    assert bench.paired_speedups(sequential, "m") is None  # repeats that name no round
    assert bench.paired_speedups([row("seed-style", [1]), row("default", [2], "failed")], "m") is None


def test_bench_rejects_unknown_model(capsys):
    assert bench_main(["--models", "se_resnet20", "vgg16"]) == 2
    assert "vgg16" in capsys.readouterr().err


def test_bench_checks_its_out_folder_before_measuring(tmp_path, monkeypatch, capsys):
    """A bad --out fails at once, in one line, before any model is built."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(bench, "main_bench", lambda *a, **k: pytest.fail("measured before checking --out"))
    code = bench_main(["--device", "cpu", "--out", str(blocker / "sub")])
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1


def test_a_cpu_without_bf16_units_skips_the_bf16_variants(monkeypatch):
    monkeypatch.setattr(bench.settings, "cpu_bf16_units", lambda: [])
    assert bench.default_variants(torch.device("cpu")) == (
        "seed-style",
        "device-fp32",
        "device-fp32-cl",
        "default",
    )
    monkeypatch.setattr(bench.settings, "cpu_bf16_units", lambda: ["AVX512-BF16"])
    assert "device-bf16-cl" in bench.default_variants(torch.device("cpu"))


# --------------------------------------------------------------------------- SE's cost (benchmarks/se_cost.py)
import se_cost  # noqa: E402


def test_se_cost_records_three_networks_side_by_side_and_a_profile_that_adds_up(tmp_path, capsys):
    args = [
        "--pairs",
        "se_resnet20:resnet20",
        "--batch-sizes",
        "4",
        "--repeats",
        "3",
        "--min-seconds",
        "0.01",
    ]
    assert (
        run_command(
            se_cost.parser(), [*args, "--warmup", "1", "--profile-steps", "1", "--out", str(tmp_path)]
        )
        == 0
    )
    (path,) = tmp_path.glob("se_cost_*.json")
    pair = json.loads(path.read_text())["pairs"][0]
    assert (pair["se_model"], pair["plain_model"], pair["batch_size"]) == ("se_resnet20", "resnet20", 4)
    networks = pair["networks"]
    assert set(networks) == {"plain", "se_fused", "se_reference"}
    for row in networks.values():  # a row is the median of its own repeats
        assert len(row["repeats"]) == 3 and row["images_per_sec"] == statistics.median(row["repeats"])
    rounds = [
        a / b for a, b in zip(networks["se_fused"]["repeats"], networks["plain"]["repeats"], strict=True)
    ]
    assert pair["ratios_per_round"]["se_fused/plain"] == rounds
    assert pair["ratios"]["se_fused/plain"] == statistics.median(rounds)
    assert pair["macs_per_image"]["se_resnet20"] > pair["macs_per_image"]["resnet20"]
    for side in ("se", "plain"):
        prof = pair["profile"][side]
        assert prof["compute_ms"] + prof["memory_bound_ms"] == pytest.approx(prof["ms_per_step"])
        assert prof["compute_ms"] > 0 and prof["memory_bound_ms"] > 0
        assert sum(prof["ops_ms"].values()) == pytest.approx(prof["ms_per_step"])
    kinds = {row["op"]: row["kind"] for row in pair["profile"]["largest_differences"]}
    assert all(
        kind == ("compute" if se_cost.is_compute(op) else "memory-bound") for op, kind in kinds.items()
    )
    assert se_cost.is_compute("aten::mkldnn_convolution") and not se_cost.is_compute("aten::addcmul")
    assert "se_fused/plain" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, problem",
    [
        (["--repeats", "0"], "--repeats must be at least 1"),
        (["--batch-sizes", "4", "8"], "one size of 1 or more per pair"),
    ],
)
def test_se_cost_refuses_bad_settings_in_one_sentence(extra, problem, tmp_path, capsys):
    assert (
        run_command(se_cost.parser(), ["--pairs", "se_resnet20:resnet20", "--out", str(tmp_path), *extra])
        == 2
    )
    assert problem in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
