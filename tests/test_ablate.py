"""The ablation runner (senet_lib.train.ablate) and ``python -m senet_lib ablate``, and CIFAR-100
through the command line: tiny synthetic or fake-CIFAR runs of one or two steps."""

from __future__ import annotations

import json
import math

import pytest
import torch

from senet_lib import cli, create_model
from senet_lib.cost import count_macs
from senet_lib.data import make_synthetic
from senet_lib.env import get_paths
from senet_lib.train import (
    ABLATIONS,
    AblationError,
    TrainConfig,
    ablation_grid,
    differences,
    run_ablation,
    summarize,
)
from senet_lib.train import ablate as ablate_module


@pytest.fixture(scope="module")
def tiny_data():
    return make_synthetic(n_train=32, n_test=16, seed=0)


def tiny_config(**changes) -> TrainConfig:
    values = dict(epochs=1, batch_size=16, lr=0.05, milestones=(1,), precision="fp32", progress=False, seed=0)
    values.update(changes)
    return TrainConfig(**values)


def test_grids_name_the_papers_variants():
    grid = ablation_grid("reduction", "se_resnet20", values=[4, 16, 64])
    assert list(grid) == ["no SE", "reduction=4", "reduction=16", "reduction=64"]
    assert grid["no SE"] == ("resnet20", {}) and grid["reduction=64"] == ("se_resnet20", {"reduction": 64})
    # the default value is the standard SE network, one run shared by every grid
    assert grid["reduction=16"] == ablation_grid("placement")["se_placement=standard"] == ("se_resnet20", {})
    stages = ablation_grid("stages", "se_resnet50", baseline=False)
    assert [opts.get("se_stages") for _, opts in stages.values()] == [[2], [3], [4], [5], None]
    assert list(ablation_grid("inner", baseline=False).values())[1] == (
        "se_resnet20",
        {"se_placement": "3x3"},
    )
    assert list(ablation_grid("nosqueeze", baseline=False).values())[1][1] == {"se_squeeze": "none"}
    assert set(ABLATIONS) == {"reduction", "squeeze", "gate", "stages", "placement", "inner", "nosqueeze"}
    with pytest.raises(AblationError, match="Unknown ablation 'depth'"):
        ablation_grid("depth")
    with pytest.raises(AblationError, match="'resnet20' is not a registered SE model"):
        ablation_grid("gate", "resnet20")
    with pytest.raises(
        AblationError, match="'se_gate=softmax' of the gate ablation cannot be built: Unknown gate"
    ):
        ablation_grid("gate", values=["softmax"])


def test_grid_trains_each_variant_and_seed_once_and_resumes(tiny_data, tmp_path, monkeypatch):
    grid = {"no SE": ("resnet20", {}), "r=4": ("se_resnet20", {"reduction": 4})}
    config = tiny_config(max_steps_per_epoch=1)
    result = run_ablation(grid, tiny_data, config, seeds=(0, 1), ablation="reduction", device="cpu")
    runs = result.runs
    assert len(runs) == 4 and sorted(runs["seed"]) == [0, 0, 1, 1]
    assert set(runs["variant"]) == {"no SE", "r=4"} and runs["final_acc"].between(0, 100).all()
    # one record per run in the results folder, kind train, tagged with its ablation and variant
    records = sorted(get_paths().results.glob("ablation_reduction_*.json"))
    assert len(records) == 4
    record = json.loads(records[0].read_text())
    assert record["kind"] == "train" and record["ablation"] == "reduction" and record["variant"] in grid
    # the summary: mean ± std over the two seeds, cost from the models themselves
    summary = result.summary
    assert list(summary["variant"]) == ["no SE", "r=4"] and list(summary["seeds"]) == [2, 2]
    se_rows = runs[runs["variant"] == "r=4"]["final_acc"]
    assert math.isclose(summary.loc[1, "final_acc_mean"], se_rows.mean())
    assert math.isclose(summary.loc[1, "final_acc_std"], se_rows.std())
    se = create_model("se_resnet20", 10, reduction=4)
    assert summary.loc[1, "params"] == sum(p.numel() for p in se.parameters())
    assert summary.loc[1, "macs"] == count_macs(se, (1, 3, 32, 32)).total
    assert summary.loc[1, "params"] > summary.loc[0, "params"]

    # Again: every run is found (nothing is trained), one more seed trains only that seed's runs.
    trained = []
    real = ablate_module.train_or_load
    monkeypatch.setattr(ablate_module, "train_or_load", lambda *a, **k: trained.append(a[0]) or real(*a, **k))
    again = run_ablation(grid, tiny_data, config, seeds=(0, 1), ablation="reduction", device="cpu")
    assert trained == [] and again.runs["final_acc"].tolist() == runs["final_acc"].tolist()
    run_ablation(grid, tiny_data, config, seeds=(0, 1, 2), ablation="reduction", device="cpu")
    assert trained == ["resnet20", "se_resnet20"]


def test_a_stopped_grid_resumes_its_run_folder(tiny_data, tmp_path):
    """A run killed after its checkpoint (no record yet) is resumed, not restarted."""
    grid = {"r=8": ("se_resnet20", {"reduction": 8})}
    short = tiny_config(epochs=1, max_steps_per_epoch=1)
    run_ablation(grid, tiny_data, short, ablation="g", checkpoint_dir=tmp_path, results_dir=tmp_path / "a")
    longer = tiny_config(epochs=2, max_steps_per_epoch=1)
    # epochs is part of the recipe, so this is another run folder: a fresh 2-epoch run
    result = run_ablation(
        grid, tiny_data, longer, ablation="g", checkpoint_dir=tmp_path, results_dir=tmp_path / "b"
    )
    assert result.runs.loc[0, "epochs"] == 2 and len(list(tmp_path.glob("se_resnet20-*"))) == 2


def test_summary_of_one_seed_has_no_spread():
    import pandas as pd

    runs = pd.DataFrame(
        [
            {
                "variant": "b",
                "model": "m",
                "seed": 0,
                "final_acc": 50.0,
                "best_acc": 51.0,
                "params": 2,
                "macs": 3,
            },
            {
                "variant": "a",
                "model": "m",
                "seed": 0,
                "final_acc": 40.0,
                "best_acc": 41.0,
                "params": 1,
                "macs": 1,
            },
            {
                "variant": "a",
                "model": "m",
                "seed": 1,
                "final_acc": 44.0,
                "best_acc": 45.0,
                "params": 1,
                "macs": 1,
            },
        ]
    )
    summary = summarize(runs, order=["a", "b"])
    assert list(summary["variant"]) == ["a", "b"]
    assert summary.loc[0, "final_acc_mean"] == 42.0 and math.isclose(summary.loc[0, "final_acc_std"], 8**0.5)
    assert math.isnan(summary.loc[1, "final_acc_std"])


def test_differences_pool_the_seed_spread_over_the_grid():
    import pandas as pd

    # three variants, two seeds each: within-variant spreads 1, 2 and 3 points (sample variances 2, 8, 18)
    acc = {"no SE": (80.0, 82.0), "standard": (90.0, 94.0), "wide": (84.0, 90.0)}
    runs = pd.DataFrame(
        [{"variant": v, "seed": s, "final_acc": a} for v, pair in acc.items() for s, a in enumerate(pair)]
    )
    table = differences(runs, "standard").set_index("variant")
    pooled = ((2 + 8 + 18) / 3) ** 0.5
    assert list(table.index) == ["no SE", "wide"]
    assert math.isclose(table.loc["no SE", "pooled_sd"], pooled)
    assert math.isclose(table.loc["no SE", "diff"], -11.0) and math.isclose(table.loc["wide", "diff"], -5.0)
    assert math.isclose(table.loc["wide", "error"], pooled)  # sqrt(1/2 + 1/2)
    assert table.loc["no SE", "exceeds_noise"] and not table.loc["wide", "exceeds_noise"]  # 2·3.06 = 6.1
    with pytest.raises(ValueError, match="is not a variant"):
        differences(runs, "narrow")


def test_workers_train_in_separate_processes(tiny_data, tmp_path):
    grid = {"no SE": ("resnet20", {}), "SE": ("se_resnet20", {})}
    result = run_ablation(
        grid,
        tiny_data,
        tiny_config(max_steps_per_epoch=1),
        ablation="w",
        workers=2,
        device="cpu",
        checkpoint_dir=tmp_path / "runs",
        results_dir=tmp_path / "results",
    )
    assert sorted(result.runs["variant"]) == ["SE", "no SE"]
    assert len(list((tmp_path / "results").glob("ablation_w_*.json"))) == 2
    # the same grid in one process finds the records the workers wrote: same accuracies
    again = run_ablation(
        grid,
        tiny_data,
        tiny_config(max_steps_per_epoch=1),
        ablation="w",
        device="cpu",
        checkpoint_dir=tmp_path / "runs",
        results_dir=tmp_path / "results",
    )
    assert again.runs["final_acc"].tolist() == result.runs["final_acc"].tolist()


def test_bad_grids_and_workers_are_one_sentence(tiny_data):
    with pytest.raises(AblationError, match="no variants"):
        run_ablation({}, tiny_data, tiny_config())
    with pytest.raises(AblationError, match="workers must be"):
        run_ablation({"a": ("resnet20", {})}, tiny_data, tiny_config(), workers=0)


ABLATE = ["ablate", "--profile", "quick", "--dataset", "synthetic", "--epochs", "1", "--max-steps", "1",
          "--batch-size", "16", "--train-subset", "32", "--test-subset", "16", "--no-progress",
          "--device", "cpu", "--precision", "fp32"]  # fmt: skip


def test_cli_ablate_prints_the_table_and_writes_records(tmp_path, capsys):
    args = [*ABLATE, "inner", "--model", "se_resnet20", "--no-baseline", "--seeds", "0",
            "--results-dir", str(tmp_path / "res"), "--save-dir", str(tmp_path / "runs")]  # fmt: skip
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "paper Table 15" in out and "se_placement=3x3" in out and "se_placement=standard" in out
    assert len(list((tmp_path / "res").glob("ablation_inner_*.json"))) == 2


def test_cli_ablate_in_a_checkout_records_into_build_results(tmp_path, monkeypatch, capsys):
    """Without --results-dir or SENET_RESULTS_DIR, ablate leaves the checkout's committed results/ alone."""
    from senet_lib import env
    from senet_lib.cli import options

    checkout = tmp_path / "checkout"
    (checkout / "results").mkdir(parents=True)
    monkeypatch.setattr(env, "REPO_ROOT", checkout)
    monkeypatch.setattr(options, "REPO_ROOT", checkout)
    monkeypatch.delenv("SENET_RESULTS_DIR", raising=False)
    args = [
        *ABLATE,
        "gate",
        "--values",
        "sigmoid",
        "--no-baseline",
        "--seeds",
        "0",
        "--save-dir",
        str(tmp_path / "runs"),
    ]
    assert cli.main(args) == 0
    assert len(list((checkout / "build" / "results").glob("ablation_gate_*.json"))) == 1
    assert not list((checkout / "results").iterdir())


def test_cli_ablate_bad_value_is_one_line(capsys):
    assert cli.main([*ABLATE, "reduction", "--values", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reduction=0" in err and "cannot be built" in err


# --------------------------------------------------------------------------- CIFAR-100 on the command line
def test_cifar100_trains_evaluates_and_ablates_from_the_command_line(tmp_path, capsys, fake_cifar):
    fake_cifar(tmp_path / "data", "cifar100", per_file=300)
    data = ["--dataset", "cifar100", "--data-dir", str(tmp_path / "data"), "--no-download"]
    tiny = ["--profile", "quick", "--epochs", "1", "--max-steps", "1", "--batch-size", "16",
            "--train-subset", "100", "--test-subset", "100", "--no-progress", "--device", "cpu",
            "--precision", "fp32"]  # fmt: skip
    save = ["--save-dir", str(tmp_path / "runs")]
    assert cli.main(["train", "--model", "se_resnet20", *data, *tiny, *save, "--run-name", "c100"]) == 0
    record = json.loads((tmp_path / "runs" / "c100" / "record.json").read_text())
    assert record["dataset"]["name"] == "cifar100" and record["model"]["num_classes"] == 100
    weights = torch.load(tmp_path / "runs" / "c100" / "checkpoint.pt", weights_only=False)["state_dict"]
    assert weights["fc.weight"].shape[0] == 100
    capsys.readouterr()
    where = ["--data-dir", str(tmp_path / "data"), "--no-download", "--device", "cpu"]
    assert cli.main(["evaluate", str(tmp_path / "runs" / "c100" / "checkpoint.pt"), *where]) == 0
    assert "CIFAR-100" in capsys.readouterr().out
    ablate = ["ablate", "gate", "--values", "sigmoid", "--seeds", "0", "--results-dir", str(tmp_path / "res")]
    assert cli.main([*ablate, *data, *tiny, *save]) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "res").glob("ablation_gate_*.json")]
    assert len(records) == 2 and {r["dataset"]["name"] for r in records} == {"cifar100"}


# --------------------------------------------------------------------------- the results builder
def _builder():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "build_results.py"
    spec = importlib.util.spec_from_file_location("build_results", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ablation_record(variant: str, seed: int, acc: float, name: str = "cifar100") -> dict:
    label = {"cifar100": "CIFAR-100", "cifar10": "CIFAR-10"}[name]
    return {
        "kind": "train",
        "ablation": "reduction",
        "variant": variant,
        "model": {"name": "se_resnet20", "num_classes": 100},
        "dataset": {"name": name, "label": label, "train_size": 50000},
        "recipe": {"epochs": 40, "schedule": "onecycle", "lr": 0.2, "batch_size": 128, "momentum": 0.9},
        "seed": seed,
        "device_name": "Test CPU",
        "commit": "abc123",
        "final_test_acc": acc,
        "best_test_acc": acc,
        "wall_time_s": 60.0,
        "history": [],
        "cost": {"params": 272_095, "macs": 41_000_000},
        "_file": f"ablation_reduction_{variant}_{seed}.json",
    }


def test_results_builder_tables_ablation_grids_and_cifar100(tmp_path):
    builder = _builder()
    records = [
        _ablation_record("reduction=4", 0, 0.70),
        _ablation_record("reduction=4", 1, 0.72),
        _ablation_record("reduction=16", 0, 0.69),
    ]
    text = builder.train_section(records, tmp_path, write_figures=False)
    assert "*reduction* on CIFAR-100 (train 50000)" in text and "Test CPU" in text
    assert "| reduction=4 | se_resnet20 | 0, 1 | 71.00 ± 1.41 | 272,095 | 41.0 |" in text
    assert "| reduction=16 | se_resnet20 | 0 | 69.00 |" in text
    assert "SE paper v4, Table 5" in text  # CIFAR-100 references appear with CIFAR-100 records
    cifar10 = builder.train_section([_ablation_record("reduction=4", 0, 0.9, "cifar10")], tmp_path, False)
    assert "Table 5" not in cifar10 and "*reduction* on CIFAR-10 " in cifar10


def test_readme_grid_headline_names_what_exceeds_the_noise(tmp_path):
    builder = _builder()
    assert "No ablation grid is recorded yet" in builder.grid_headline(tmp_path)
    # gate grid, two seeds: ReLU 10 points below sigmoid (beyond a pooled spread of 1), tanh 0.5 below (within)
    acc = {
        "no SE": (0.80, 0.82),
        "se_gate=relu": (0.70, 0.72),
        "se_gate=tanh": (0.795, 0.815),
        "se_gate=sigmoid": (0.80, 0.82),
    }
    for variant, pair in acc.items():
        for seed, a in enumerate(pair):
            options = (
                {"se_gate": variant.split("=")[1]} if variant in ("se_gate=relu", "se_gate=tanh") else {}
            )
            name = "resnet20" if variant == "no SE" else "se_resnet20"
            record = {**_ablation_record(variant, seed, a, "cifar10"), "ablation": "gate", "epochs": 10}
            record["model"] = {"name": name, "num_classes": 10, **options}
            record["dataset"]["train_size"] = 10_000
            (tmp_path / f"ablation_gate_{variant}_{seed}.json").write_text(json.dumps(record))
    text = builder.grid_headline(tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| Table 12 (gate)"))
    assert "no SE 81.00 · se_gate=relu 71.00 · se_gate=tanh 80.50 · se_gate=sigmoid 81.00" in row
    assert "se_gate=relu -10.00" in row and "tanh -" not in row and "no SE +" not in row
    assert "(against se_gate=sigmoid)" in row and "10 epochs" in text and "10,000 training images" in text
    for seed in (0, 1):  # a grid recorded without its standard variant is left out, not a crash
        (tmp_path / f"ablation_gate_se_gate=sigmoid_{seed}.json").unlink()
    assert "| Table 12 (gate)" not in builder.grid_headline(tmp_path)


def test_recorded_grids_are_read_back_and_plotted(tiny_data, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from senet_lib.plots.ablation import plot_ablation
    from senet_lib.train import recorded_ablations

    grid = ablation_grid("nosqueeze", "se_resnet20", baseline=False)
    result = run_ablation(
        grid, tiny_data, tiny_config(max_steps_per_epoch=1), ablation="nosqueeze", results_dir=tmp_path
    )
    runs = recorded_ablations(tmp_path, ablation="nosqueeze", dataset="synthetic")
    assert sorted(runs["record"]) == sorted(result.runs["record"])
    assert (
        runs.set_index("variant")["macs"]["se_squeeze=none"]
        > runs.set_index("variant")["macs"]["se_squeeze=avg"]
    )
    assert recorded_ablations(tmp_path, ablation="gate").empty
    assert recorded_ablations(tmp_path, dataset="cifar100").empty
    fig = plot_ablation(summarize(runs, order=list(grid)), "Table 16", {"se_squeeze=avg": 22.28})
    assert "paper: 22.28 % err." in fig.axes[0].get_xticklabels()[0].get_text()
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == list(grid)
    (tmp_path / "ablation_broken.json").write_text("{")
    with pytest.raises(AblationError, match="ablation_broken.json is not valid JSON"):
        recorded_ablations(tmp_path)


def test_results_builder_pairs_se_and_plain_runs_by_seed(tmp_path):
    builder = _builder()

    def run(model: str, seed: int, acc: float) -> dict:
        record = _ablation_record("-", seed, acc, "cifar10")
        del record["ablation"]
        record["model"] = {"name": model, "num_classes": 10}
        record["precision"] = "bf16"
        return record

    records = [
        run("resnet20", 0, 0.8763),
        run("resnet20", 1, 0.8778),
        run("resnet20", 2, 0.8762),  # seed 2 has no SE twin: it must not enter the pairing
        run("se_resnet20", 0, 0.8790),
        run("se_resnet20", 1, 0.8761),
        run("se_resnet20", 3, 0.9000),  # nor seed 3, which has no plain twin
    ]
    text = builder.train_section(records, tmp_path, write_figures=False)
    line = next(ln for ln in text.splitlines() if ln.startswith("Paired by seed"))
    assert line == (
        "Paired by seed (bf16, seeds 0, 1): se_resnet20 − resnet20 = +0.27, -0.17 points"
        " (mean +0.05 ± 0.31); SE ahead in 1 of 2."
    )
    # One common seed is no comparison at all.
    one_pair = [records[0], records[3]]
    assert "Paired by seed" not in builder.train_section(one_pair, tmp_path, write_figures=False)
