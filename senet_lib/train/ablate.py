"""Ablation grids (paper §6, Tables 10–16): many ``create_model`` variants, one recipe, several seeds,
trained by :func:`run_ablation` through :func:`train_or_load` (stopped grids go on)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..checkpoint import atomic_write_json, read_json
from ..cost import count_macs, count_parameters
from ..env import get_paths
from ..errors import UserError
from ..models import create_model, list_models
from .config import TrainConfig
from .history import RunRecord, run_record
from .runs import default_run_name, train_or_load
from .trainer import RunPlan

if TYPE_CHECKING:
    import pandas as pd

    from ..data import ImageDataset


#: A grid: variant label → (model name, ``create_model`` options).
Grid = Mapping[str, tuple[str, Mapping[str, Any]]]

#: The paper's ablations (§6) → (the table, the option varied, its default values).
ABLATIONS: dict[str, tuple[str, str, tuple[Any, ...]]] = {
    "reduction": ("Table 10", "reduction", (2, 4, 8, 16, 32)),
    "squeeze": ("Table 11", "se_squeeze", ("max", "avg")),
    "gate": ("Table 12", "se_gate", ("relu", "tanh", "sigmoid")),
    "stages": ("Table 13", "se_stages", ()),  # the network's own stages, one at a time, then all
    "placement": ("Table 14", "se_placement", ("standard", "pre", "post", "identity")),
    "inner": ("Table 15", "se_placement", ("standard", "3x3")),
    "nosqueeze": ("Table 16", "se_squeeze", ("avg", "none")),
}


#: ``create_model``'s defaults for the options the ablations vary: a variant at the default is built
#: without the option, so grids share its runs (``reduction=16`` of Table 10 is ``standard`` of Table 14).
_DEFAULTS: dict[str, Any] = {
    "reduction": 16,
    "se_squeeze": "avg",
    "se_gate": "sigmoid",
    "se_placement": "standard",
}


class AblationError(ValueError, UserError):
    """A grid that cannot be built or run (unknown ablation, model or value)."""


def _stages_of(model: str) -> tuple[int, ...]:
    """The SE stages of ``model`` in the paper's numbering (conv2_x is 2)."""
    return (2, 3, 4, 5) if model.removeprefix("se_") in ("resnet50", "resnet101") else (2, 3, 4)


def ablation_grid(
    name: str, model: str = "se_resnet20", values: Sequence[Any] | None = None, baseline: bool = True
) -> dict[str, tuple[str, dict[str, Any]]]:
    """The variants of paper ablation ``name`` (:data:`ABLATIONS`) for SE network ``model``.

    ``values`` replaces the table's values; ``baseline`` adds the plain network first (``"no SE"``).
    A value equal to ``create_model``'s default is left out of the options, so the standard network
    is one run shared by every grid.
    """
    if name not in ABLATIONS:
        raise AblationError(f"Unknown ablation {name!r}: use one of {', '.join(ABLATIONS)}.")
    if not model.startswith("se_") or model not in list_models():
        se_models = ", ".join(list_models("se_*"))
        raise AblationError(f"{model!r} is not a registered SE model: use one of {se_models}.")
    _, option, defaults = ABLATIONS[name]
    if name == "stages":
        defaults = (*_stages_of(model), "all")
    grid: dict[str, tuple[str, dict[str, Any]]] = {}
    if baseline:
        grid["no SE"] = (model.removeprefix("se_"), {})
    for value in values if values is not None else defaults:
        try:
            if name == "stages":
                options = {} if value == "all" else {option: [int(value)]}
            else:
                value = int(value) if option == "reduction" else value
                options = {} if _DEFAULTS.get(option) == value else {option: value}
        except (TypeError, ValueError) as err:  # e.g. --values abc: not a number
            what = "a stage number or 'all'" if name == "stages" else "a whole number"
            raise AblationError(
                f"The {name} ablation's value {value!r} is not {what}: give another value."
            ) from err
        grid[f"{option}={value}"] = (model, options)
    for label, (model_name, options) in grid.items():
        try:
            create_model(model_name, **options)  # a bad value fails here, before any training
        except (TypeError, ValueError) as err:
            raise AblationError(f"Variant {label!r} of the {name} ablation cannot be built: {err}") from err
    return grid


@dataclass
class Ablation:
    """What :func:`run_ablation` returns: one row per run (:attr:`runs`) and one per variant (:attr:`summary`)."""

    runs: pd.DataFrame
    summary: pd.DataFrame


def _cost(
    model_name: str, options: Mapping[str, Any], num_classes: int, size: tuple[int, int]
) -> tuple[int, int]:
    """(parameters, multiply-accumulates of one image of ``size``) of a variant, as its record keeps them."""
    model = create_model(model_name, num_classes, **options)
    return count_parameters(model), count_macs(model, (1, 3, *size)).total


def _record_path(results: Path, ablation: str, run_name: str) -> Path:
    return results / f"ablation_{ablation}_{run_name}.json"


def _train_one(
    task: tuple[str, str, dict[str, Any], TrainConfig, str, str | None, Path, Path, str | None],
) -> dict[str, Any]:
    """Train or load one (variant, seed); write its results record unless it exists; one table row."""
    label, model_name, options, config, ablation, device, checkpoints, results, profile = task
    data = _WORKER_DATA["data"]
    run_name = default_run_name(model_name, data, config, **options)
    path = _record_path(results, ablation, run_name)
    if path.is_file():
        try:
            record: RunRecord | dict[str, Any] = read_json(path)
        except (OSError, ValueError) as err:
            raise AblationError(f"{path} is not valid JSON ({err}): repair or delete it.") from err
    else:
        run = train_or_load(
            model_name,
            data,
            config,
            checkpoint_dir=checkpoints,
            device=device,
            use_pretrained=False,
            **options,
        )
        record = run.record or run_record(
            run.model,
            data,
            config,
            run.history,
            RunPlan.resolve(config, device, profile=profile).record(),
            run.history.total_seconds,
        )
        size = (int(data.train.images.shape[-2]), int(data.train.images.shape[-1]))
        params, macs = _cost(model_name, options, data.num_classes, size)
        record = {
            **record,
            "kind": "train",
            "ablation": ablation,
            "variant": label,
            "run_name": run_name,
            "cost": {"params": params, "macs": macs, "input_size": [1, 3, *size]},
        }
        atomic_write_json(path, record)
    return _row(record, path.name, label)


def _row(record: Mapping[str, Any], file_name: str, label: str | None = None) -> dict[str, Any]:
    """One row of the per-run table from an ablation record (accuracies in %)."""
    model = record.get("model") or {}
    options = {k: v for k, v in model.items() if k not in ("name", "num_classes")}
    return {
        "ablation": record["ablation"],
        "variant": label or record["variant"],
        "model": model.get("name"),
        "options": json.dumps(options, sort_keys=True),
        "dataset": (record.get("dataset") or {}).get("label"),
        "train_size": (record.get("dataset") or {}).get("train_size"),
        "seed": int(record["seed"]),
        "final_acc": 100 * float(record["final_test_acc"]),
        "best_acc": 100 * float(record["best_test_acc"]),
        "epochs": int(record["epochs"]),
        "wall_time_s": float(record["wall_time_s"]),
        "device": record.get("device_name") or record.get("device"),
        "params": int(record["cost"]["params"]),
        "macs": int(record["cost"]["macs"]),
        "record": file_name,
    }


#: The dataset of this process's runs (set once per worker process by :func:`_init_worker`).
_WORKER_DATA: dict[str, Any] = {}


def _init_worker(data: ImageDataset, threads: int | None) -> None:
    _WORKER_DATA["data"] = data
    if threads:
        torch.set_num_threads(threads)


def run_ablation(
    grid: Grid,
    data: ImageDataset,
    config: TrainConfig,
    seeds: Sequence[int] = (0,),
    ablation: str = "ablation",
    workers: int = 1,
    device: str | None = None,
    checkpoint_dir: str | Path | None = None,
    results_dir: str | Path | None = None,
    profile: str | None = None,
) -> Ablation:
    """Train every variant of ``grid`` with ``config`` once per seed and tabulate the results.

    Each run is :func:`train_or_load`'s; its record goes to ``<results_dir>/ablation_<ablation>_<run>.json``
    once, and a run whose record is there is not touched again. ``workers > 1`` trains that many at a
    time in spawned processes.
    """
    if not grid:
        raise AblationError("The grid has no variants: pass e.g. ablation_grid('reduction').")
    if not seeds:
        raise AblationError("No seeds given: pass at least one, e.g. seeds=(0,).")
    if not isinstance(workers, int) or workers < 1:
        raise AblationError(f"workers must be a whole number, at least 1 (got {workers!r}).")
    checkpoints = Path(checkpoint_dir) if checkpoint_dir is not None else get_paths().checkpoints
    results = Path(results_dir) if results_dir is not None else get_paths().results
    results.mkdir(parents=True, exist_ok=True)
    tasks = [
        (
            label,
            model_name,
            dict(options),
            replace(config, seed=int(seed)),
            ablation,
            device,
            checkpoints,
            results,
            profile,
        )
        for label, (model_name, options) in grid.items()
        for seed in seeds
    ]
    if workers == 1:
        _init_worker(data, None)
        try:
            rows = [_train_one(task) for task in tasks]
        finally:
            _WORKER_DATA.clear()  # keep no reference to the dataset after the grid
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(data, threads)
        ) as pool:
            rows = list(pool.map(_train_one, tasks))
    import pandas as pd

    runs = pd.DataFrame(rows)
    return Ablation(runs=runs, summary=summarize(runs, order=list(grid)))


def recorded_ablations(
    folder: str | Path | None = None, ablation: str | None = None, dataset: str | None = None
) -> pd.DataFrame:
    """The per-run table of every ablation record in ``folder`` (default: results), optionally of one
    ``ablation`` and ``dataset``; several recipes are all listed, so group them before averaging."""
    import pandas as pd

    folder = Path(folder) if folder is not None else get_paths().results
    rows = []
    for path in sorted(folder.glob("ablation_*.json")) if folder.is_dir() else []:
        try:
            record = read_json(path)
        except (OSError, ValueError) as err:
            raise AblationError(f"{path} is not valid JSON ({err}): repair or delete it.") from err
        if not isinstance(record, dict) or not isinstance(record.get("dataset") or {}, dict):
            raise AblationError(f"{path} is not an ablation record: repair or delete it.")
        if ablation is not None and record.get("ablation") != ablation:
            continue
        if dataset is not None and (record.get("dataset") or {}).get("name") != dataset:
            continue
        rows.append(_row(record, path.name))
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per variant of a per-run table: seeds, mean and std (n − 1; NaN for one seed) of
    the final and best test accuracy (%), parameters and multiply-accumulates; grid order kept."""
    summary = (
        runs.groupby("variant", sort=False)
        .agg(
            model=("model", "first"),
            seeds=("seed", "count"),
            final_acc_mean=("final_acc", "mean"),
            final_acc_std=("final_acc", "std"),
            best_acc_mean=("best_acc", "mean"),
            best_acc_std=("best_acc", "std"),
            params=("params", "first"),
            macs=("macs", "first"),
        )
        .reset_index()
    )
    if order is not None:
        summary = summary.set_index("variant").loc[[v for v in order if v in set(summary["variant"])]]
        summary = summary.reset_index()
    return summary


def differences(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Each variant of a per-run table against variant ``reference``: the difference of their mean final
    test accuracies (points), its standard error and whether it exceeds twice that error.

    The seed-to-seed spread of one run is estimated once for the whole grid, pooled over every variant with
    more than one seed (``pooled_sd``, degrees of freedom Σ(seeds − 1)), so two seeds per variant still give
    a usable noise level; the error of a difference of means over ``n`` and ``m`` seeds is
    ``pooled_sd·√(1/n + 1/m)``. Variants are listed in the table's order, ``reference`` left out.
    """
    import pandas as pd

    if reference not in set(runs["variant"]):
        raise AblationError(
            f"{reference!r} is not a variant of this grid ({', '.join(dict.fromkeys(runs['variant']))}): "
            "name one of them."
        )
    groups = runs.groupby("variant", sort=False)["final_acc"]
    counts, means, variances = groups.count(), groups.mean(), groups.var()
    dof = int((counts - 1).clip(lower=0).sum())
    pooled_sd = float(((counts - 1) * variances.fillna(0.0)).sum() / dof) ** 0.5 if dof else float("nan")
    rows = []
    for variant in counts.index:
        if variant == reference:
            continue
        error = pooled_sd * (1 / counts[variant] + 1 / counts[reference]) ** 0.5
        diff = float(means[variant] - means[reference])
        rows.append(
            {
                "variant": variant,
                "seeds": int(counts[variant]),
                "diff": diff,
                "error": error,
                "exceeds_noise": bool(abs(diff) > 2 * error),
                "pooled_sd": pooled_sd,
            }
        )
    return pd.DataFrame(rows)


def grid_verdicts(runs: pd.DataFrame, model: str = "se_resnet20") -> list[dict[str, Any]]:
    """Per recorded ablation of a per-run table of one recipe, in :data:`ABLATIONS` order: its paper table,
    the standard SE variant, each variant's mean final test accuracy (grid order), every variant against
    standard SE (:func:`differences`) and those whose difference exceeds the noise, as ``(variant, points)``.
    A grid recorded without its standard variant (e.g. ``ablate reduction --values 4 8``) has nothing to be
    compared against and is left out."""
    verdicts = []
    for name, (table, _, _) in ABLATIONS.items():
        grid = runs[runs["ablation"] == name]
        if grid.empty:
            continue
        order = [v for v in ablation_grid(name, model) if v in set(grid["variant"])]
        order += [v for v in dict.fromkeys(grid["variant"]) if v not in order]
        means = grid.groupby("variant")["final_acc"].mean()
        standards = grid.loc[(grid["options"] == "{}") & (grid["model"] == model), "variant"]
        if standards.empty:
            continue
        standard = standards.iloc[0]
        against = differences(grid, standard)
        verdicts.append(
            {
                "ablation": name,
                "table": table,
                "standard": standard,
                "means": {v: float(means[v]) for v in order},
                "differences": against,
                "beyond": [(r.variant, r.diff) for r in against.itertuples() if r.exceeds_noise],
            }
        )
    return verdicts


def largest_recipe(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the recipe (dataset, training-set size, epochs) with the most SE runs in a per-run table of
    several recorded grids, so that one table or slide never mixes recipes."""
    se_runs = runs[runs["model"].str.startswith("se_")]
    if se_runs.empty:
        return runs
    dataset, train_size, epochs = se_runs.groupby(["dataset", "train_size", "epochs"]).size().idxmax()
    return runs[
        (runs["dataset"] == dataset) & (runs["train_size"] == train_size) & (runs["epochs"] == epochs)
    ]
