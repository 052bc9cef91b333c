"""The notebooks' one call: :func:`train_or_load`, the :class:`Run` it returns, and the run folders
and names it derives from the recipe."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from ..checkpoint import (
    atomic_write_json,
    load_checkpoint,
    read_checkpoint,
    restore_earlier_run,
)
from ..env import (
    get_paths,
    seed_everything,
)
from ..models import create_model
from ..pretrained import PretrainedMatch, find_pretrained
from .config import TrainConfig
from .distributed import is_main
from .history import History
from .loop import CHECKPOINT_NAME, _resolve_device, fit
from .records import RECORD_NAME, RunRecord, _dataset_descriptor, run_record
from .runtime import run_environment

if TYPE_CHECKING:
    from ..data import ImageDataset


def default_run_name(model_name: str, data: ImageDataset, config: TrainConfig, **model_options: Any) -> str:
    """``<model>-<dataset>-n<train size>-<hash>-seed<seed>``.

    The 8-digit hash covers the recipe (runtime-only fields left out), the dataset (name, sizes,
    subset notes; the generator seed for synthetic data, not the folder CIFAR was read from) and
    the model options, so a quick or subset run never shares a folder with a full one."""
    identity = _dataset_descriptor(data)
    if not identity["synthetic"]:
        identity.pop("source")  # the folder CIFAR was read from does not change the run
    key = json.dumps(
        {"recipe": config.recipe(), "data": identity, "model": model_options},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{model_name}-{data.name}-n{len(data.train.labels)}-{digest}-seed{config.seed}"


def seeded_model(model_name: str, num_classes: int, seed: int, **model_options: Any) -> nn.Module:
    """``create_model`` after seeding every generator with ``seed``: the initial weights a run's
    recipe gives (the one place a run's model is seeded before training)."""
    seed_everything(seed)
    return create_model(model_name, num_classes, **model_options)


def run_folder(
    model_name: str,
    data: ImageDataset,
    config: TrainConfig,
    checkpoint_dir: str | Path | None = None,
    **model_options: Any,
) -> Path:
    """``<checkpoint_dir>/<default_run_name>``: where :func:`train_or_load` keeps this run
    (default folder: ``get_paths().checkpoints``)."""
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else get_paths().checkpoints
    return folder / default_run_name(model_name, data, config, **model_options)


@dataclass
class Run:
    """What :func:`train_or_load` returns: the model (eval mode), its :class:`History`, the run
    record (``record.json``; None for a pretrained network), the run folder (None for a pretrained
    network), the checkpoint file, and where the model came from: ``"run"`` (a finished run
    loaded from its folder), ``"trained"`` (trained or resumed now) or ``"pretrained"`` (the
    repository's network). Unpacks as ``model, history = train_or_load(...)``."""

    model: nn.Module
    history: History
    record: RunRecord | None
    folder: Path | None
    checkpoint: Path
    source: Literal["run", "pretrained", "trained"]

    def __iter__(self) -> Iterator[Any]:
        yield self.model
        yield self.history


def train_or_load(
    model_name: str,
    data: ImageDataset,
    config: TrainConfig,
    run_name: str | None = None,
    checkpoint_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    use_pretrained: bool = True,
    **model_options: Any,
) -> Run:
    """Load a finished run, resume a partial one, load the shipped network, or train from scratch; print which.

    The run lives in ``<checkpoint_dir>/<run_name>`` (default folder: ``get_paths().checkpoints``;
    default name: :func:`default_run_name`). A run record is written there as ``record.json``. A copy
    of the run from an earlier session under ``/kaggle/input`` (read-only) is copied there first
    (:func:`senet_lib.checkpoint.restore_earlier_run`) and continued.
    With no run there and ``use_pretrained``, a network in ``pretrained/`` trained with the same
    model, options, data sizes and recipe (:func:`senet_lib.pretrained.find_pretrained`) is loaded
    instead of training; nothing is written then.

    Returns:
        A :class:`Run` (``model, history = train_or_load(...)`` still works), the model in eval
        mode on ``device``.
    """
    device = _resolve_device(device)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else get_paths().checkpoints
    run_name = run_name or default_run_name(model_name, data, config, **model_options)
    run_dir = checkpoint_dir / run_name
    ckpt_path = run_dir / CHECKPOINT_NAME
    restore_earlier_run(run_name, run_dir)  # a Kaggle session's run, attached read-only: copied back here
    if ckpt_path.exists():
        payload = read_checkpoint(ckpt_path)
        saved_history = History(payload.get("history", []))
        if len(saved_history) >= config.epochs:
            model = create_model(model_name, data.num_classes, **model_options)
            model, _ = load_checkpoint(ckpt_path, model=model, device=device)
            best = saved_history.best_test_acc
            print(
                f"Loaded finished run {run_name} ({len(saved_history)} epochs, best test accuracy "
                f"{100 * best:.2f}%) from {ckpt_path}."
            )
            record_path = run_dir / RECORD_NAME
            record = json.loads(record_path.read_text()) if record_path.exists() else None
            return Run(model, saved_history, record, run_dir, ckpt_path, "run")
        print(f"Resuming {run_name} from epoch {len(saved_history)} of {config.epochs} ({ckpt_path}).")
        model = create_model(model_name, data.num_classes, **model_options)
        history = fit(model, data, config, run_dir=run_dir, resume=True, device=device)
    else:
        shipped = _find_shipped(model_name, data, config, model_options) if use_pretrained else None
        if shipped is not None:
            model, _ = load_checkpoint(shipped.path, device=device)
            print(f"Loaded the repository's pretrained network {shipped.describe()} from {shipped.path}.")
            return Run(model, History(shipped.history), None, None, shipped.path, "pretrained")
        print(f"Training {run_name} for {config.epochs} epochs on {device}; checkpoints go to {run_dir}.")
        model = seeded_model(model_name, data.num_classes, config.seed, **model_options)
        history = fit(model, data, config, run_dir=run_dir, device=device)
    record = run_record(model, data, config, history, run_environment(device, config), history.total_seconds)
    if is_main():  # several processes (torchrun): rank 0 writes
        atomic_write_json(run_dir / RECORD_NAME, record)
    model.eval()
    return Run(model, history, record, run_dir, ckpt_path, "trained")


def _find_shipped(
    model_name: str, data: ImageDataset, config: TrainConfig, model_options: Mapping[str, Any]
) -> PretrainedMatch | None:
    arch = {"name": model_name, "num_classes": int(data.num_classes), **model_options}
    return find_pretrained(arch, _dataset_descriptor(data), config.to_dict())
