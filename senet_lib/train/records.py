"""Run records: the JSON-ready description of a finished run and where it is written."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import torch
from torch import nn

from ..checkpoint import (
    arch_config_of,
    atomic_write_json,
)
from ..env import (
    get_paths,
    git_commit,
)
from ..models import ArchConfig
from .config import TrainConfig
from .history import History, HistoryRow

if TYPE_CHECKING:
    from ..data import ImageDataset


RECORD_NAME = "record.json"
#: A temporary ``record.json`` this old (seconds) is left over: :func:`train_or_load` writes the
#: record after :func:`fit` has released the run folder, so a fresh one may still be in flight.
STALE_RECORD_AGE = 60.0


class DatasetDescriptor(TypedDict):
    """What a record says about the data: :func:`_dataset_descriptor`."""

    name: str
    label: str
    source: str | None
    synthetic: bool
    num_classes: int
    train_size: int
    test_size: int
    notes: list[str]


class RunRecord(TypedDict):
    """One training run as JSON (``record.json``, :func:`run_record`)."""

    kind: str  # "train"
    created: str  # UTC, ISO 8601
    model: ArchConfig | None
    dataset: DatasetDescriptor
    recipe: dict[str, Any]  # TrainConfig.to_dict()
    seed: int
    device: str | None
    device_name: str | None
    precision: str | None
    torch: str
    commit: str | None
    environment: dict[str, Any]
    epochs: int
    history: list[HistoryRow]
    final_test_acc: float | None
    best_test_acc: float | None
    wall_time_s: float
    segments: list[dict[str, Any]]  # History.segments(): more than one when a resumed run moved


def _dataset_descriptor(data: ImageDataset) -> DatasetDescriptor:
    return {
        "name": data.name,
        "label": getattr(data, "label", data.name),
        "source": getattr(data, "source", None),
        "synthetic": bool(getattr(data, "synthetic", False)),
        "num_classes": int(data.num_classes),
        "train_size": int(len(data.train.labels)),
        "test_size": int(len(data.test.labels)),
        "notes": [str(note) for note in getattr(data, "notes", [])],
    }


# --------------------------------------------------------------------------- result records
def run_record(
    model: nn.Module,
    data: ImageDataset,
    config: TrainConfig,
    history: History,
    env_record: Mapping[str, Any],
    wall_time: float,
) -> RunRecord:
    """One JSON-ready record of a training run: model, dataset, recipe, seed, device, versions,
    commit, per-epoch history, final and best test accuracy and wall time (seconds).

    ``device``, ``device_name``, ``precision`` and ``environment`` describe the process that finished
    the run; ``segments`` says where every epoch trained (:meth:`History.segments`), so a run resumed
    on another machine or in another precision says so."""
    history = history if isinstance(history, History) else History(history)
    return {
        "kind": "train",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": arch_config_of(model),
        "dataset": _dataset_descriptor(data),
        "recipe": config.to_dict(),
        "seed": config.seed,
        "device": env_record.get("device"),
        "device_name": env_record.get("device_name"),
        "precision": env_record.get("precision"),
        "torch": env_record.get("torch", torch.__version__),
        "commit": env_record.get("commit") or git_commit(),
        "environment": dict(env_record),
        "epochs": len(history),
        "history": history.to_list(),
        "final_test_acc": history.final_test_acc,
        "best_test_acc": history.best_test_acc,
        "wall_time_s": float(wall_time),
        "segments": history.segments(),
    }


def write_record(record: Mapping[str, Any], folder: str | Path | None = None) -> Path:
    """Write ``record`` as JSON into ``folder`` (default: ``get_paths().results``); return its path.

    The name is ``train_<model>_<dataset>_seed<seed>_<UTC time>.json`` (a suffix avoids clashes).
    """
    folder = Path(folder) if folder is not None else get_paths().results
    model = (record.get("model") or {}).get("name", "model")
    dataset = (record.get("dataset") or {}).get("name", "data")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem = f"train_{model}_{dataset}_seed{record.get('seed', 0)}_{stamp}"
    path = folder / f"{stem}.json"
    counter = 1
    while path.exists():
        path = folder / f"{stem}-{counter}.json"
        counter += 1
    return atomic_write_json(path, dict(record))
