"""Training curves and result tables from per-epoch histories.

Runs are passed as ``{run: history}``, ``{run: [history per seed]}``, ``{run: {seed: history}}`` or a
:func:`histories_frame`; a history is a list of :class:`~senet_lib.train.HistoryRow` dicts, a
:class:`~senet_lib.train.History`, a :class:`~senet_lib.train.RunRecord` or a
:class:`~senet_lib.train.Run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..train.history import History, HistoryRow, RunRecord
from ..train.runs import Run

#: Per-epoch numbers :func:`histories_frame` keeps (others are ignored).
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_sec")
_LABELS = {"acc": "accuracy", "loss": "loss", "lr": "learning rate"}


# --------------------------------------------------------------------------- normalising input
#: What one history may be given as.
HistoryLike = History | Run | RunRecord | Sequence[HistoryRow]


def _epochs_of(history: HistoryLike) -> list[HistoryRow]:
    """The rows of ``history`` (see the module docstring for the forms)."""
    if isinstance(history, Run):
        history = history.history
    if isinstance(history, History):
        return history.to_list()
    if isinstance(history, Mapping):
        if "history" in history:  # a RunRecord
            return _epochs_of(history["history"])
        raise TypeError(
            "A history given as a dict must be a run record with a 'history' key holding per-epoch dicts; "
            f"got keys {sorted(history)}."
        )
    if isinstance(history, Sequence) and not isinstance(history, str):
        rows = list(history)
        if all(isinstance(row, Mapping) for row in rows):
            return [HistoryRow(**row) for row in rows]
    raise TypeError(
        f"Cannot read a training history from {type(history).__name__}: pass a list of per-epoch "
        "dicts, a History, a Run or a run record with a 'history' key."
    )


def split_metric(metric: str) -> tuple[str, str]:
    """``"test_acc"`` → ``("test", "acc")``; a metric without a split gives ``("", metric)``."""
    split, _, quantity = metric.partition("_")
    if split in ("train", "test") and quantity:
        return split, quantity
    return "", metric


def _is_single_history(value: Any) -> bool:
    """True when ``value`` is one history, False when it is a collection of several (seeds)."""
    if isinstance(value, (History, Run)):
        return True
    if isinstance(value, Mapping):
        return "history" in value
    if isinstance(value, (list, tuple)):
        return len(value) == 0 or isinstance(value[0], Mapping) and "epoch" in value[0]
    return True


def _seeds_of(value: Any) -> list[tuple[Any, Any]]:
    """``[(seed, history), ...]`` for one run's value (one history or several)."""
    if _is_single_history(value):
        return [(_record_seed(value, 0), value)]
    if isinstance(value, Mapping):
        return list(value.items())
    return [(_record_seed(h, i), h) for i, h in enumerate(value)]


def _record_seed(history: Any, default: int) -> Any:
    """The seed a run record or Run carries, else ``default`` (its position)."""
    if isinstance(history, Mapping) and "seed" in history:
        return history["seed"]
    if isinstance(history, Run) and history.record is not None:
        return history.record["seed"]
    return default


def histories_frame(histories: Mapping[str, Any] | pd.DataFrame) -> pd.DataFrame:
    """A long frame, one row per (run, seed, epoch, metric), with ``split`` and ``quantity`` columns.

    Raises:
        TypeError: a value cannot be read as a history (the message says what to pass).
        ValueError: no epochs at all, or a frame without the needed columns.
    """
    if isinstance(histories, pd.DataFrame):
        missing = {"run", "epoch", "metric", "value"} - set(histories.columns)
        if missing:
            raise ValueError(
                f"The history frame lacks column(s) {', '.join(sorted(missing))}; "
                "build it with histories_frame()."
            )
        frame = histories.copy()
        if "seed" not in frame:
            frame["seed"] = 0
    else:
        rows = []
        for run, value in histories.items():
            for seed, history in _seeds_of(value):
                for epoch in _epochs_of(history):
                    for metric in METRICS:
                        if epoch.get(metric) is not None:
                            rows.append(
                                {
                                    "run": str(run),
                                    "seed": seed,
                                    "epoch": int(epoch["epoch"]),
                                    "metric": metric,
                                    "value": float(epoch[metric]),
                                }
                            )
        frame = pd.DataFrame(rows, columns=["run", "seed", "epoch", "metric", "value"])
    if frame.empty:
        raise ValueError("No epochs to plot: the histories are empty (train for at least one epoch).")
    parts = [split_metric(m) for m in frame["metric"]]
    frame["split"] = [split for split, _ in parts]
    frame["quantity"] = [quantity for _, quantity in parts]
    return frame


# --------------------------------------------------------------------------- curves
def plot_curves(
    histories: Mapping[str, Any] | pd.DataFrame,
    metrics: Iterable[str] = ("train_acc", "test_acc", "train_loss", "test_loss"),
    title: str | None = None,
    axes: Sequence[plt.Axes] | None = None,
    palette: str | Sequence | None = None,
    log_loss: bool = True,
) -> plt.Figure:
    """Line plots per epoch, one panel per quantity; train dashed, test solid, mean ± std over seeds.

    ``train_X``/``test_X`` share the panel ``X``; ``log_loss`` puts the loss panel on a log scale.
    """
    import seaborn as sns

    metrics = tuple(metrics)
    frame = histories_frame(histories)
    unknown = sorted(set(metrics) - set(frame["metric"]))
    if unknown:
        raise ValueError(
            f"No values for metric(s) {', '.join(unknown)}; available: {', '.join(sorted(set(frame['metric'])))}."
        )
    frame = frame[frame["metric"].isin(metrics)]
    quantities = list(dict.fromkeys(split_metric(m)[1] for m in metrics))
    if axes is None:
        fig, axes = plt.subplots(1, len(quantities), figsize=(5.2 * len(quantities), 3.8), squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(axes)
        fig = axes[0].figure
    if len(axes) != len(quantities):
        raise ValueError(f"Need {len(quantities)} axes (one per {', '.join(quantities)}), got {len(axes)}.")
    runs = list(dict.fromkeys(frame["run"]))
    styles = [s for s in ("test", "train", "") if s in set(frame["split"])]
    dashes = {"test": "", "train": (4, 2), "": (1, 1)}
    for ax, quantity in zip(axes, quantities, strict=True):
        part = frame[frame["quantity"] == quantity]
        sns.lineplot(
            data=part,
            x="epoch",
            y="value",
            hue="run",
            hue_order=runs,
            style="split",
            style_order=styles,
            dashes={s: dashes[s] for s in styles},
            errorbar="sd",
            marker="o" if part["epoch"].nunique() <= 12 else None,
            palette=palette,
            ax=ax,
        )
        ax.set_ylabel(_LABELS.get(quantity, quantity))
        ax.set_xlabel("epoch")
        ax.set_title(_LABELS.get(quantity, quantity))
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax is not axes[-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
        if quantity == "loss" and log_loss and (part["value"] > 0).all():
            ax.set_yscale("log")  # an early test loss far above the rest would flatten the curves
            ax.set_ylabel("loss (log scale)")
        if quantity == "acc":
            ax.set_ylim(max(0.0, part["value"].min() - 0.05), min(1.0, part["value"].max() + 0.05))
    if axes[-1].get_legend() is not None:  # beside the panels, where it hides no curve
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    n_seeds = frame.groupby("run")["seed"].nunique().max()
    if n_seeds > 1:
        axes[0].annotate(
            f"mean ± std over {n_seeds} seeds", xy=(0.02, 0.02), xycoords="axes fraction", fontsize=8
        )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_gap(
    histories: Mapping[str, Any] | pd.DataFrame,
    first: str,
    second: str,
    metric: str = "test_acc",
    tail: float = 0.25,
    title: str | None = None,
) -> plt.Figure:
    """Zoom in on a difference of a few tenths of a point: both runs' ``metric`` over the last ``tail``
    of the epochs, and ``second − first`` per epoch in points, paired by seed and epoch.

    Raises:
        ValueError: a run or the metric is missing, or the two runs share no seed and epoch.
    """
    if not 0 < tail <= 1:
        raise ValueError(f"tail must lie in (0, 1], got {tail}.")
    frame = histories_frame(histories)
    frame = frame[frame["metric"] == metric]
    missing = [run for run in (first, second) if run not in set(frame["run"])]
    if missing:
        raise ValueError(
            f"No {metric} for run(s) {', '.join(missing)}; runs with it: {sorted(set(frame['run']))}."
        )
    wide = frame.pivot_table(index=["seed", "epoch"], columns="run", values="value").dropna(
        subset=[first, second]
    )
    if wide.empty:
        raise ValueError(f"{first} and {second} share no (seed, epoch): they cannot be paired.")
    percent = 100 * wide[[first, second]]
    diff = (percent[second] - percent[first]).groupby(level="epoch")
    mean_diff, std_diff = diff.mean(), diff.std(ddof=1)
    by_epoch = percent.groupby(level="epoch").mean()
    epochs = by_epoch.index.to_numpy()
    start = epochs[min(len(epochs) - 1, int(np.floor((1 - tail) * len(epochs))))]
    zoom = by_epoch[by_epoch.index >= start]
    seeds = wide.index.get_level_values("seed").nunique()

    fig, (ax_zoom, ax_diff) = plt.subplots(1, 2, figsize=(10.4, 3.8))
    for run in (first, second):
        ax_zoom.plot(zoom.index, zoom[run], label=run, marker="o" if len(zoom) <= 12 else None)
    low, high = float(zoom.min().min()), float(zoom.max().max())
    pad = max(0.1, 0.1 * (high - low))
    ax_zoom.set(
        xlabel="epoch",
        ylabel=f"{_LABELS['acc']} (%)",
        ylim=(low - pad, high + pad),
        title=f"{metric}, last {len(zoom)} of {len(epochs)} epochs (zoomed)",
    )
    ax_zoom.legend(fontsize=8)
    ax_diff.axhline(0, color="grey", lw=1, ls="--")
    ax_diff.plot(mean_diff.index, mean_diff.to_numpy(), color="C2", lw=1.2)
    if seeds > 1:
        ax_diff.fill_between(
            mean_diff.index, mean_diff - std_diff, mean_diff + std_diff, color="C2", alpha=0.2, lw=0
        )
    ax_diff.axvline(start, color="0.85", lw=0.8, zorder=0)
    final = float(mean_diff.iloc[-1])
    tail_mean = float(mean_diff[mean_diff.index >= start].mean())
    ax_diff.annotate(
        f"last epoch: {final:+.2f} points\nmean over the last {len(zoom)} epochs: {tail_mean:+.2f}"
        + (f" (mean of {seeds} seeds)" if seeds > 1 else " (one seed)"),
        xy=(0.02, 0.95),
        xycoords="axes fraction",
        va="top",
        fontsize=9,
    )
    ax_diff.set(xlabel="epoch", ylabel="difference (points)", title=f"{metric}: {second} − {first}, paired")
    ax_diff.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- table
def _summary(history: Any) -> dict[str, float]:
    """Final/best test accuracy, wall time and mean throughput of one history."""
    epochs = _epochs_of(history)
    if not epochs:
        raise ValueError("An empty history cannot be summarised: train for at least one epoch.")
    test_acc = [e["test_acc"] for e in epochs if e.get("test_acc") is not None]
    speeds = [e["images_per_sec"] for e in epochs if e.get("images_per_sec")]
    return {
        "epochs": len(epochs),
        "final_test_acc": test_acc[-1] if test_acc else np.nan,
        "best_test_acc": max(test_acc) if test_acc else np.nan,
        "final_train_loss": epochs[-1].get("train_loss", np.nan),
        "wall_time_s": float(sum(e.get("seconds", 0.0) or 0.0 for e in epochs)),
        "images_per_sec": float(np.mean(speeds)) if speeds else np.nan,
    }


def results_table(
    runs: Mapping[str, Any] | Sequence[Mapping[str, Any]], per_seed: bool = False
) -> pd.DataFrame:
    """Final and best test accuracy, wall time and img/s per run (mean ± std over seeds; ``per_seed``:
    one row each); ``runs`` as in the module docstring, or a list of run records."""
    if isinstance(runs, Sequence) and not isinstance(runs, str):
        grouped: dict[str, list] = {}
        for record in runs:
            if not isinstance(record, Mapping):
                raise TypeError("results_table takes a dict of histories or a list of run-record dicts.")
            name = record.get("run") or record.get("run_name") or record.get("model")
            if isinstance(name, Mapping):  # run_record() stores the model's arch_config
                name = name.get("name")
            if name is None:
                raise ValueError("A run record needs a 'run' or 'model' key to name its row.")
            grouped.setdefault(str(name), []).append(record)
        runs = grouped
    rows = []
    for run, value in runs.items():
        for seed, history in _seeds_of(value):
            rows.append({"run": str(run), "seed": seed, **_summary(history)})
    if not rows:
        raise ValueError("No runs to summarise.")
    table = pd.DataFrame(rows)
    if per_seed:
        return table.set_index(["run", "seed"])
    numeric = [
        "epochs",
        "final_test_acc",
        "best_test_acc",
        "final_train_loss",
        "wall_time_s",
        "images_per_sec",
    ]
    grouped_frame = table.groupby("run", sort=False)
    out = grouped_frame[numeric].mean()
    out.insert(0, "seeds", grouped_frame["seed"].nunique())
    if (out["seeds"] > 1).any():
        std = grouped_frame[["final_test_acc", "best_test_acc", "wall_time_s", "images_per_sec"]].std(ddof=1)
        for column in std.columns:
            out.insert(out.columns.get_loc(column) + 1, f"{column}_std", std[column])
    out["epochs"] = out["epochs"].astype(int)
    return out


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """A display copy of :func:`results_table`: accuracies as ``"91.2 ± 0.3 %"``, times rounded."""
    shown = pd.DataFrame(index=table.index)
    shown["seeds"] = table.get("seeds", 1)
    shown["epochs"] = table["epochs"]
    for column in ("final_test_acc", "best_test_acc"):
        std = table.get(f"{column}_std")
        shown[column] = [
            f"{100 * m:.2f} ± {100 * s:.2f} %" if std is not None and not np.isnan(s) else f"{100 * m:.2f} %"
            for m, s in zip(table[column], std if std is not None else [np.nan] * len(table), strict=True)
        ]
    shown["wall_time_s"] = table["wall_time_s"].round(1)
    shown["images_per_sec"] = table["images_per_sec"].round(0)
    return shown
