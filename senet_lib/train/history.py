"""What a run leaves behind: its :class:`History` and its record (:func:`run_record`, :func:`write_record`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import torch
from torch import nn

from ..checkpoint import arch_config_of, atomic_write_json, create_json
from ..env import get_paths, git_commit
from ..models import ArchConfig
from .config import TrainConfig

if TYPE_CHECKING:
    from ..data import ImageDataset


class HistoryRow(TypedDict, total=False):
    """One epoch of a :class:`History` (accuracies are fractions in [0, 1])."""

    epoch: int  # 1-based
    train_loss: float
    train_acc: float
    test_loss: float | None  # None: not evaluated this epoch (TrainConfig.eval_every)
    test_acc: float | None
    test_acc_flip: float  # flip-TTA accuracy, last epoch only and only with TrainConfig.tta
    lr: float  # at the epoch's first step
    seconds: float  # train + test
    images_per_sec: float  # training throughput
    device_name: str  # where the epoch trained (a resumed run may have moved); absent in older runs
    precision: str  # what it trained in: fp32, bf16 or fp16; absent in older runs


class History:
    """Per-epoch training rows: ``epoch`` (1-based), train/test loss and accuracy, ``lr``, ``seconds``,
    ``images_per_sec``."""

    KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_sec")

    def __init__(self, rows: Iterable[Mapping[str, Any]] | None = None) -> None:
        self.rows: list[HistoryRow] = [HistoryRow(**r) for r in rows or []]

    def append(self, row: Mapping[str, Any]) -> None:
        self.rows.append(HistoryRow(**row))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[HistoryRow]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> HistoryRow:
        return self.rows[index]

    def __repr__(self) -> str:
        best = self.best_test_acc
        return f"History({len(self)} epochs" + (f", best test acc {best:.4f})" if best is not None else ")")

    def column(self, key: str) -> list[Any]:
        """One value per epoch, e.g. ``history.column("test_acc")``."""
        return [row.get(key) for row in self.rows]

    def to_list(self) -> list[HistoryRow]:
        return [HistoryRow(**r) for r in self.rows]

    @property
    def best_test_acc(self) -> float | None:
        values = [v for v in self.column("test_acc") if v is not None]
        return max(values) if values else None

    @property
    def final_test_acc(self) -> float | None:
        return self.rows[-1].get("test_acc") if self.rows else None

    def segments(self) -> list[dict[str, Any]]:
        """Consecutive epochs trained on the same device and precision (``first``, ``last``,
        ``device_name``, ``precision``)."""
        out: list[dict[str, Any]] = []
        for row in self.rows:
            where = (row.get("device_name"), row.get("precision"))
            if out and (out[-1]["device_name"], out[-1]["precision"]) == where:
                out[-1]["last"] = row["epoch"]
            else:
                out.append(
                    {
                        "first": row["epoch"],
                        "last": row["epoch"],
                        "device_name": where[0],
                        "precision": where[1],
                    }
                )
        return out

    @property
    def total_seconds(self) -> float:
        return float(sum(r.get("seconds", 0.0) for r in self.rows))

    def to_json(self, path: str | Path | None = None) -> str:
        """The rows as a JSON list; also written (atomically) to ``path`` when given."""
        if path is not None:
            atomic_write_json(path, self.rows)
        return json.dumps(self.rows, indent=2)


RECORD_NAME = "record.json"
#: A temporary ``record.json`` this old (seconds) is left over: :func:`train_or_load` writes the
#: record after :func:`fit` has released the run folder, so a fresh one may still be in flight.
STALE_RECORD_AGE = 60.0


class DatasetDescriptor(TypedDict):
    """What a record says about the data: :func:`dataset_descriptor`."""

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


def dataset_descriptor(data: ImageDataset) -> DatasetDescriptor:
    """What a record says about its data: name, label, folder, sizes, whether synthetic, notes."""
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
    """One JSON-ready record of a training run; ``segments`` says where every epoch trained."""
    history = history if isinstance(history, History) else History(history)
    return {
        "kind": "train",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": arch_config_of(model),
        "dataset": dataset_descriptor(data),
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
    """Write ``record`` into a new file ``train_<model>_<dataset>_seed<seed>_<UTC time>[-N].json`` in
    ``folder`` (default: ``get_paths().results``), never replacing one; return its path."""
    folder = Path(folder) if folder is not None else get_paths().results
    model = (record.get("model") or {}).get("name", "model")
    dataset = (record.get("dataset") or {}).get("name", "data")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem = f"train_{model}_{dataset}_seed{record.get('seed', 0)}_{stamp}"
    counter = 0
    while True:
        path = folder / (f"{stem}.json" if counter == 0 else f"{stem}-{counter}.json")
        try:
            return create_json(path, dict(record))
        except FileExistsError:
            counter += 1
