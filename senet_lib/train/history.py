"""The per-epoch history of a run: :class:`History`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict

from ..checkpoint import (
    atomic_write_json,
)


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
    """Per-epoch training records: dicts with ``epoch`` (1-based), ``train_loss``, ``train_acc``,
    ``test_loss``, ``test_acc``, ``lr`` (at the epoch's first step), ``seconds`` (train + test)
    and ``images_per_sec`` (training throughput)."""

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
        """Consecutive epochs trained on the same device in the same precision: ``first`` and ``last``
        epoch, ``device_name`` and ``precision`` (None for epochs of runs too old to say). One
        segment for a run that never moved; more when it was resumed elsewhere."""
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
