"""The epoch loop with resumable checkpoints: :func:`fit`."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checkpoint import (
    CheckpointError,
    claim_run_folder,
    load_checkpoint,
    remove_stale_temps,
    save_checkpoint,
)
from ..data import make_loaders
from ..env import (
    device_name,
)
from ..errors import UserError
from ..models import zero_residual_branches
from .config import TrainConfig, core_recipe
from .distributed import get_context, is_main, make_trainer
from .history import RECORD_NAME, STALE_RECORD_AGE, History, dataset_descriptor
from .trainer import RunPlan, Trainer, TrainingDiverged, rng_state, set_rng_state

if TYPE_CHECKING:
    from ..data import ImageDataset


CHECKPOINT_NAME = "checkpoint.pt"

HISTORY_NAME = "history.json"


class RunExistsError(FileExistsError, UserError):
    """The run folder already holds a checkpoint and ``resume`` was not asked for; ``path`` is it."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class RecipeMismatchError(ValueError, UserError):
    """A checkpoint was trained with another recipe; ``differences`` names each field (saved vs now)."""

    def __init__(self, message: str, path: Path, differences: str) -> None:
        super().__init__(message)
        self.path, self.differences = path, differences


# --------------------------------------------------------------------------- the epoch loop
class _EpochLoaders:
    """Train/test loaders from :func:`senet_lib.data.make_loaders` whose shuffle depends only on
    ``seed + epoch`` (their ``set_epoch``), so a resumed run sees the same batches as an uninterrupted one."""

    def __init__(
        self, data: ImageDataset, config: TrainConfig, device: torch.device, channels_last: bool
    ) -> None:
        self.train, self.test = make_loaders(
            data,
            config.batch_size,
            device,
            pipeline=config.pipeline,
            cutout=config.cutout,
            cutout_count=config.cutout_count,
            channels_last=channels_last,
            seed=config.seed,
            rank=get_context().rank,  # several processes (torchrun): each takes its share
            world_size=get_context().world_size,
        )

    def train_for_epoch(self, epoch: int):
        """The training loader, positioned for 0-based ``epoch``."""
        self.train.set_epoch(epoch)
        return self.train


def _check_resumable(saved: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    """Refuse to resume a checkpoint whose recipe differs from ``config`` (names the fields)."""
    saved_recipe = json.loads(json.dumps(core_recipe(saved)))
    current = json.loads(json.dumps(config.recipe()))
    differing = sorted(k for k in set(saved_recipe) | set(current) if saved_recipe.get(k) != current.get(k))
    if differing:
        details = ", ".join(
            f"{k}: saved {saved_recipe.get(k)!r} vs now {current.get(k)!r}" for k in differing
        )
        raise RecipeMismatchError(
            f"{path} was trained with another recipe ({details}): pass the same TrainConfig to resume, "
            "or use another run folder (or resume=False in an empty one) to start afresh.",
            path,
            details,
        )


def _kept_note(path: Path, epoch: int) -> str:
    return f"The last good checkpoint, {path} (epoch {epoch}), is untouched."


def _postfix(loss: float, acc: float, images_per_sec: float, **extra: float) -> dict[str, str]:
    values = {"loss": f"{loss:.3f}", "acc": f"{100 * acc:.1f}%", "img/s": f"{images_per_sec:.0f}"}
    values.update({k: f"{100 * v:.1f}%" for k, v in extra.items()})
    return values


def _train_epoch(
    trainer: Trainer, loader: Iterable, steps: int, epoch: int, config: TrainConfig, saved_note: str
) -> tuple[float, float, int, float]:
    """One epoch of :meth:`Trainer.train_step` under a tqdm bar, synchronising only now and then;
    returns ``(train_loss, train_acc, images, seconds)``."""
    trainer.reset_metrics()
    trainer.model.train()
    sync_every = config.print_freq or (max(1, steps // 10) if config.progress else 0)
    bar = tqdm(
        total=steps,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        disable=not (config.progress and is_main()),
        leave=True,
    )
    start = time.perf_counter()
    try:
        for index, (x, y) in enumerate(loader):
            if index >= steps:
                break
            trainer.train_step(x, y)
            bar.update(1)
            if sync_every and (index + 1) % sync_every == 0:
                trainer.check_finite(note=saved_note)
                loss, acc = trainer.metrics()
                rate = trainer.images_seen / (time.perf_counter() - start)
                bar.set_postfix(_postfix(loss, acc, rate), refresh=False)
                if config.print_freq:
                    print(
                        f"epoch {epoch + 1} step {index + 1}/{steps}: loss {loss:.4f}, acc {100 * acc:.2f}%, "
                        f"lr {trainer.lr:.4g}, {rate:.0f} img/s"
                    )
        trainer.check_finite(note=saved_note)
        loss, acc = trainer.metrics()
        seconds = time.perf_counter() - start
        bar.set_postfix(_postfix(loss, acc, trainer.images_seen / max(seconds, 1e-9)), refresh=True)
        return loss, acc, trainer.images_seen, seconds
    finally:
        bar.close()


def fit(
    model: nn.Module,
    data: ImageDataset,
    config: TrainConfig,
    run_dir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    plan: RunPlan | None = None,
) -> History:
    """Train ``model`` on ``data`` with ``config``; return the per-epoch :class:`History`.

    ``fit`` does not seed (:meth:`RunPlan.build_model` does). With ``run_dir`` it holds the folder
    (:func:`senet_lib.checkpoint.claim_run_folder`), writes ``checkpoint.pt`` every ``save_every``
    epochs and at the end and ``history.json`` every epoch; ``resume=True`` continues its checkpoint.

    Raises:
        TrainingDiverged: the loss became NaN/inf (epoch and step named; checkpoints untouched).
        RunExistsError: ``run_dir`` already holds a checkpoint and ``resume`` is False.
        RecipeMismatchError: resuming with another recipe.
        senet_lib.checkpoint.RunFolderBusy: another live run holds ``run_dir``.
        senet_lib.checkpoint.OutputError: ``run_dir`` cannot be written, or the disk is full.
        senet_lib.checkpoint.CheckpointError: the checkpoint to resume is corrupt or not resumable.
        ValueError: too little data for one batch.
    """
    plan = plan if plan is not None else RunPlan.resolve(config, device, run_dir=run_dir)
    if run_dir is None:
        if resume:
            raise ValueError("resume=True needs run_dir, the folder of the run to continue.")
        return _fit(model, data, config, None, False, plan)
    run_dir = Path(run_dir)
    if not is_main():  # several processes: rank 0 holds the folder and writes; the others only read
        return _fit(model, data, config, run_dir, resume, plan)
    with claim_run_folder(run_dir):
        removed = remove_stale_temps(run_dir, (CHECKPOINT_NAME, HISTORY_NAME))
        removed += remove_stale_temps(run_dir, (RECORD_NAME,), min_age=STALE_RECORD_AGE)
        if removed:
            print(
                f"Removed {len(removed)} temporary file(s) left in {run_dir} by an interrupted save "
                f"({', '.join(p.name for p in removed)}).",
                file=sys.stderr,
            )
        return _fit(model, data, config, run_dir, resume, plan)


def _fit(
    model: nn.Module,
    data: ImageDataset,
    config: TrainConfig,
    run_dir: Path | None,
    resume: bool,
    plan: RunPlan,
) -> History:
    """:func:`fit`'s epoch loop, for a run folder this process holds (or none)."""
    device = plan.device
    ckpt_path = run_dir / CHECKPOINT_NAME if run_dir is not None else None
    payload = None
    if ckpt_path is not None and ckpt_path.exists():
        if not resume:
            raise RunExistsError(
                f"{ckpt_path} already exists: pass resume=True to continue that run, or choose another run_dir.",
                ckpt_path,
            )
        model, payload = load_checkpoint(ckpt_path, model=model, device=device)
        _check_resumable(payload["config"], config, ckpt_path)
    if payload is None and config.zero_init_residual:
        zero_residual_branches(model)

    loaders = _EpochLoaders(data, config, device, plan.channels_last)
    steps = len(loaders.train)
    if config.max_steps_per_epoch is not None:
        steps = min(steps, config.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(
            f"The training split ({len(data.train.labels)} images) is smaller than one batch "
            f"({config.batch_size}): lower the batch size or use more training images."
        )
    trainer = make_trainer(model, config, plan, steps, get_context())
    where = {"device_name": device_name(device), "precision": trainer.precision.name}
    history = History()
    start_epoch = 0
    saved_note = "No checkpoint has been written yet."
    if payload is not None:
        saved_steps = payload["extra"].get("steps_per_epoch", steps)
        if saved_steps != steps:
            raise ValueError(
                f"{ckpt_path} was trained with {saved_steps} steps per epoch but this data and recipe give "
                f"{steps}: resume with the same dataset (and subset), or start a new run folder."
            )
        if not payload.get("trainer_state") or "rng" not in payload["extra"]:
            raise CheckpointError(
                f"{ckpt_path} holds weights but no optimizer or RNG state (it was not written by fit), so it "
                "cannot be resumed: train in another run folder, or delete it to start afresh."
            )
        trainer.load_state_dict(payload["trainer_state"])
        history = History(payload["history"])
        start_epoch = int(payload["epoch"])
        set_rng_state(payload["extra"]["rng"])
        saved_note = _kept_note(ckpt_path, start_epoch)
        if start_epoch >= config.epochs:
            return history

    for epoch in range(start_epoch, config.epochs):
        train_loader = loaders.train_for_epoch(epoch)
        lr = trainer.lr
        epoch_start = time.perf_counter()
        train_loss, train_acc, images, train_seconds = _train_epoch(
            trainer, train_loader, steps, epoch, config, saved_note
        )
        done = epoch + 1
        evaluate = done == config.epochs or done % config.eval_every == 0
        test_loss, test_acc = trainer.evaluate(loaders.test) if evaluate else (None, None)
        if test_loss is not None and not math.isfinite(test_loss):
            raise TrainingDiverged(
                f"Training diverged: the test loss became NaN or infinite after epoch {epoch + 1}, step {steps}; "
                f"lower the learning rate (lr={config.lr:g}), add warm-up epochs, or train in fp32 "
                f"(precision={trainer.precision.name}). {saved_note}",
                epoch=epoch + 1,
                step=steps,
            )
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": lr,
            "seconds": time.perf_counter() - epoch_start,
            "images_per_sec": images / train_seconds if train_seconds > 0 else float("nan"),
            **where,
        }
        if config.tta and done == config.epochs:
            row["test_acc_flip"] = trainer.evaluate_flip_tta(loaders.test)
        history.append(row)
        if config.progress:
            tested = (
                f"test loss {test_loss:.4f}, acc {100 * test_acc:.2f}%"
                + (f" (flip-TTA {100 * row['test_acc_flip']:.2f}%)" if "test_acc_flip" in row else "")
                if test_loss is not None
                else "not evaluated"
            )
            print(
                f"epoch {done}/{config.epochs}: train loss {train_loss:.4f}, acc {100 * train_acc:.2f}% | "
                f"{tested} | lr {lr:.4g} | {row['images_per_sec']:.0f} img/s, {row['seconds']:.1f} s"
            )
        if run_dir is not None and is_main():
            if done == config.epochs or (config.save_every and done % config.save_every == 0):
                save_checkpoint(
                    ckpt_path,
                    model,
                    trainer.state_dict(),
                    done,
                    history,
                    config.to_dict(),
                    # the data too, so that `evaluate` of an unfinished or killed run needs no --dataset
                    extra={"rng": rng_state(), "steps_per_epoch": steps, "dataset": dataset_descriptor(data)},
                )
                saved_note = _kept_note(ckpt_path, done)
            history.to_json(run_dir / HISTORY_NAME)
    return history
