"""Training: the recipe (:class:`TrainConfig`), the per-step machinery (:class:`Trainer`), the
epoch loop with resumable checkpoints (:func:`fit`) and the notebooks' one call
(:func:`train_or_load`).

The recipe defaults follow the paper's CIFAR setting (SGD with momentum 0.9, weight decay 5e-4,
lr 0.1 divided by 10 at epochs 30/60/90; flip + 4-pixel pad + random crop). Mixed precision
comes from :func:`senet_lib.env.get_precision` (bf16 on recent GPUs, fp16 + GradScaler on older
ones, bf16 on CPUs with native bf16 units, fp32 on other CPUs and MPS). Accuracies are fractions in [0, 1].

A run folder holds ``checkpoint.pt`` (weights, optimizer/scheduler/scaler and RNG state,
history, recipe), ``history.json`` (one row per epoch) and, from :func:`train_or_load`,
``record.json``. A killed run continues from its last checkpoint with ``resume=True``.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import random
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import (
    CheckpointError,
    arch_config_of,
    atomic_write_json,
    claim_run_folder,
    load_checkpoint,
    read_checkpoint,
    remove_stale_temps,
    save_checkpoint,
)
from .data import PIPELINES
from .env import (
    default_channels_last,
    environment_record,
    get_device,
    get_paths,
    get_precision,
    git_commit,
    seed_everything,
)
from .errors import UserError
from .models import create_model
from .pretrained import PretrainedMatch, find_pretrained

if TYPE_CHECKING:
    from .data import ImageDataset
    from .profiles import Profile

__all__ = [
    "CHECKPOINT_NAME",
    "ConfigError",
    "HISTORY_NAME",
    "RECORD_NAME",
    "RecipeMismatchError",
    "RunExistsError",
    "SCHEDULES",
    "History",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "default_run_name",
    "environment_record",
    "fit",
    "resolve_channels_last",
    "run_environment",
    "run_record",
    "train_or_load",
    "write_record",
]

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.json"
RECORD_NAME = "record.json"
SCHEDULES = ("step", "cosine", "onecycle")
PRECISIONS = (None, "bf16", "fp16", "fp32")
#: Fields that change how a run is executed or reported, not what it computes.
RUNTIME_FIELDS = ("progress", "print_freq", "save_every", "compile", "channels_last")
#: A temporary ``record.json`` this old (seconds) is left over: :func:`train_or_load` writes the
#: record after :func:`fit` has released the run folder, so a fresh one may still be in flight.
STALE_RECORD_AGE = 60.0


#: The largest seed torch accepts (``torch.manual_seed`` takes a signed 64-bit value).
MAX_SEED = 2**63 - 1


class ConfigError(ValueError, UserError):
    """An invalid :class:`TrainConfig` value: ``field`` names it, ``problem`` says what it must be."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Invalid TrainConfig: {field} {problem}; fix that value.")
        self.field, self.problem = field, problem


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


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; ``epoch`` and ``step`` (1-based) say where."""

    def __init__(self, message: str, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


# --------------------------------------------------------------------------- recipe
@dataclass
class TrainConfig:
    """One training recipe, as plain values (JSON-ready through :meth:`to_dict`).

    ``precision=None`` takes the device's default (:func:`senet_lib.env.get_precision`);
    ``channels_last=None`` turns it on for CUDA and for CPUs training in bf16. ``cutmix`` is the probability that a batch
    is mixed (alpha 1.0). ``save_every`` is in epochs (0 = only at the end), ``print_freq`` in
    steps (0 = the progress bar only). ``max_steps_per_epoch`` shortens epochs for smoke runs.
    """

    epochs: int
    batch_size: int
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = True
    schedule: str = "step"
    milestones: tuple[int, ...] = (30, 60, 90)
    gamma: float = 0.1
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    cutout: int = 0
    cutout_count: int = 1
    cutmix: float = 0.0
    precision: str | None = None
    channels_last: bool | None = None
    compile: bool = False
    pipeline: str = "auto"
    seed: int = 0
    save_every: int = 1
    print_freq: int = 0
    max_steps_per_epoch: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        """Check every value (type and range); the one place a recipe is validated.

        Raises:
            ConfigError: the first invalid value, named with what it must be (a ``ValueError``).
        """
        if isinstance(self.milestones, (list, tuple)):
            self.milestones = tuple(self.milestones)
        milestones = self.milestones if isinstance(self.milestones, tuple) else ()
        whole = _is_whole
        checks: list[tuple[str, bool, str]] = [
            ("epochs", whole(self.epochs, 1), "must be a whole number, at least 1"),
            ("batch_size", whole(self.batch_size, 1), "must be a whole number, at least 1"),
            ("lr", _is_number(self.lr) and self.lr > 0, "must be a finite positive number"),
            ("momentum", _is_number(self.momentum) and 0 <= self.momentum < 1, "must be in [0, 1)"),
            ("nesterov", isinstance(self.nesterov, bool), "must be True or False"),
            (
                "nesterov",
                not (self.nesterov and self.momentum == 0),
                "needs a momentum above 0 (Nesterov momentum without momentum does nothing)",
            ),
            (
                "weight_decay",
                _is_number(self.weight_decay) and self.weight_decay >= 0,
                "must be a finite number, 0 or more",
            ),
            ("decay_norm_and_bias", isinstance(self.decay_norm_and_bias, bool), "must be True or False"),
            ("schedule", self.schedule in SCHEDULES, f"must be one of {', '.join(SCHEDULES)}"),
            (
                "milestones",
                isinstance(self.milestones, tuple)
                and all(whole(m, 1) for m in milestones)
                and all(a < b for a, b in zip(milestones, milestones[1:], strict=False)),
                "must be positive epoch numbers in increasing order",
            ),
            ("gamma", _is_number(self.gamma) and 0 < self.gamma <= 1, "must be in (0, 1]"),
            (
                "warmup_epochs",
                whole(self.warmup_epochs, 0) and whole(self.epochs, 1) and self.warmup_epochs < self.epochs,
                f"must be between 0 and epochs - 1 ({self.epochs} epochs)",
            ),
            (
                "label_smoothing",
                _is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
                "must be in [0, 1)",
            ),
            ("cutout", whole(self.cutout, 0), "must be a whole number of pixels, 0 (off) or more"),
            ("cutout_count", whole(self.cutout_count, 1), "must be a whole number, at least 1"),
            (
                "cutmix",
                _is_number(self.cutmix) and 0 <= self.cutmix <= 1,
                "is a probability per batch, in [0, 1]",
            ),
            ("precision", self.precision in PRECISIONS, "must be bf16, fp16, fp32 or None"),
            (
                "channels_last",
                self.channels_last is None or isinstance(self.channels_last, bool),
                "must be True, False or None",
            ),
            ("compile", isinstance(self.compile, bool), "must be True or False"),
            ("pipeline", self.pipeline in PIPELINES, f"must be one of {', '.join(PIPELINES)}"),
            (
                "seed",
                whole(self.seed, 0) and self.seed <= MAX_SEED,
                f"must be a whole number in 0..{MAX_SEED}",
            ),
            (
                "save_every",
                whole(self.save_every, 0),
                "must be a whole number of epochs, 0 (only at the end) or more",
            ),
            ("print_freq", whole(self.print_freq, 0), "must be a whole number of steps, 0 (off) or more"),
            (
                "max_steps_per_epoch",
                self.max_steps_per_epoch is None or whole(self.max_steps_per_epoch, 1),
                "must be None or a whole number, at least 1",
            ),
            ("progress", isinstance(self.progress, bool), "must be True or False"),
        ]
        for field, ok, problem in checks:
            if not ok:
                raise ConfigError(field, f"{problem} (got {getattr(self, field)!r})")
        for name in ("epochs", "batch_size", "warmup_epochs", "cutout", "cutout_count", "seed"):
            setattr(self, name, int(getattr(self, name)))  # e.g. numpy integers → int (JSON-ready)
        self.milestones = tuple(int(m) for m in milestones)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain values (``milestones`` as a list)."""
        values = asdict(self)
        values["milestones"] = list(self.milestones)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` (or its JSON round trip)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown TrainConfig field(s) {', '.join(unknown)}: remove them (valid: {', '.join(sorted(known))})."
            )
        return cls(**dict(values))

    @classmethod
    def from_profile(cls, profile: Profile, **overrides: Any) -> TrainConfig:
        """The recipe of a :class:`~senet_lib.profiles.Profile` (seed = its first seed), with overrides."""
        names = {f.name for f in fields(cls)}
        values = {name: getattr(profile, name) for name in names if hasattr(profile, name)}
        values["seed"] = profile.seeds[0] if profile.seeds else 0
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"TrainConfig has no field(s) {', '.join(unknown)}: use one of {', '.join(sorted(names))}."
            )
        values.update(overrides)
        return cls(**values)

    def recipe(self) -> dict[str, Any]:
        """The values that determine what training computes (runtime-only fields left out)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}


def _is_whole(value: Any, least: int) -> bool:
    """An integer (not a bool) of at least ``least``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def _is_number(value: Any) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- optimizer and schedule
def parameter_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = True) -> list[dict]:
    """SGD parameter groups; with ``decay_norm_and_bias=False`` every 0-/1-D parameter (biases,
    norm-layer scales and shifts) goes into a second group with ``weight_decay=0``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": params, "weight_decay": weight_decay, "group": "all"}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay, "group": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "group": "no_decay"},
    ]


class LRFactor:
    """Multiplier of the base LR at optimizer step ``s`` (0-based) for the step and cosine schedules.

    * ``step``: ``gamma ** (milestones passed)``, where milestone ``m`` is passed from epoch
      index ``m`` on (i.e. after ``m`` full epochs), times the warm-up ramp.
    * ``cosine``: linear warm-up ``(s + 1) / W`` over ``W`` steps, then
      ``0.5 * (1 + cos(pi * (s - W) / (T - W)))``, reaching 0 at ``s = T``.

    A plain-attribute callable so that ``LambdaLR.state_dict`` stores it as values.
    """

    def __init__(
        self, kind: str, steps_per_epoch: int, total_steps: int, warmup_steps: int, milestones, gamma: float
    ) -> None:
        self.kind = kind
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.milestones = tuple(int(m) for m in milestones)
        self.gamma = float(gamma)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            warm = (step + 1) / self.warmup_steps
            if self.kind == "cosine":
                return warm
        else:
            warm = 1.0
        if self.kind == "step":
            epoch = step // self.steps_per_epoch
            return warm * self.gamma ** sum(epoch >= m for m in self.milestones)
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step LR scheduler for ``config.schedule``.

    ``onecycle`` is :class:`torch.optim.lr_scheduler.OneCycleLR` with peak ``config.lr``, its
    rising phase ``warmup_epochs`` long (30 % of the run when 0) and momentum held at
    ``config.momentum`` (no momentum cycling).
    """
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=total,
            pct_start=warmup / total if warmup else 0.3,
            cycle_momentum=False,
        )
    factor = LRFactor(config.schedule, steps_per_epoch, total, warmup, config.milestones, config.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def resolve_channels_last(device: torch.device, config: TrainConfig) -> bool:
    """``config.channels_last``, or when None the device's default for the run's precision
    (:func:`senet_lib.env.default_channels_last`: CUDA, and CPUs training in bf16)."""
    if config.channels_last is not None:
        return config.channels_last
    return default_channels_last(device, get_precision(device, config.precision))


def run_environment(device: torch.device, config: TrainConfig, profile: str | None = None) -> dict[str, Any]:
    """:func:`senet_lib.env.environment_record` for a run of ``config`` on ``device``: the precision it
    trains in and why, and whether it uses channels-last."""
    precision = get_precision(device, config.precision)
    record = environment_record(device, precision.name, profile, precision.reason)
    record["channels_last"] = resolve_channels_last(device, config)
    return record


def compile_reason(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot be used on ``device``, or None if it can."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if device.type == "mps":
        return "torch.compile does not support Apple MPS"
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (7, 0):
        major, minor = torch.cuda.get_device_capability(device)
        return f"this GPU has compute capability {major}.{minor} and torch.compile needs 7.0 or newer"
    return None


# --------------------------------------------------------------------------- per-step machinery
class Trainer:
    """Optimizer, LR schedule, mixed precision and the loss for one model: one call per step.

    :meth:`train_step` never waits for the device: running loss/accuracy sums and the first
    step with a non-finite loss are kept as device tensors and read by :meth:`metrics` and
    :meth:`check_finite`, which the caller calls when it wants to synchronise.
    """

    def __init__(
        self, model: nn.Module, config: TrainConfig, device: str | torch.device, steps_per_epoch: int
    ) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1 (got {steps_per_epoch}).")
        self.config = config
        self.device = torch.device(device)
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.precision = get_precision(self.device, config.precision)
        self.channels_last = resolve_channels_last(self.device, config)
        self.model = model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.optimizer = torch.optim.SGD(
            parameter_groups(model, config.weight_decay, config.decay_norm_and_bias),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
        )
        self.scheduler = build_scheduler(self.optimizer, config, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.use_grad_scaler)
        self.forward = self._maybe_compile(model)
        self.cutmix = self._build_cutmix(model) if config.cutmix > 0 else None
        self._cutmix_rng = torch.Generator().manual_seed(config.seed)
        self.step = 0  # optimizer steps taken so far (all epochs)
        self._first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        self.reset_metrics()

    # ----------------------------------------------------------------- construction helpers
    def _maybe_compile(self, model: nn.Module) -> nn.Module:
        if not self.config.compile:
            return model
        reason = compile_reason(self.device)
        if reason is not None:
            print(f"compile=True ignored: {reason}; training without torch.compile.")
            return model
        return torch.compile(model)

    @staticmethod
    def _build_cutmix(model: nn.Module) -> nn.Module:
        from torchvision.transforms import v2

        num_classes = (getattr(model, "arch_config", None) or {}).get("num_classes")
        if num_classes is None:
            raise ValueError("cutmix needs a model built by senet_lib.create_model (to know num_classes).")
        return v2.CutMix(alpha=1.0, num_classes=int(num_classes))

    # ----------------------------------------------------------------- properties
    @property
    def lr(self) -> float:
        """The learning rate the next step will use (first parameter group)."""
        return float(self.optimizer.param_groups[0]["lr"])

    # ----------------------------------------------------------------- training
    def reset_metrics(self) -> None:
        """Zero the running training loss/accuracy sums (call at the start of each epoch)."""
        self._loss_sum = torch.zeros((), dtype=torch.float32, device=self.device)
        self._correct = torch.zeros((), dtype=torch.long, device=self.device)
        self._seen = 0

    def _prepare(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step on the batch ``(x, y)``; returns the detached loss (no host sync)."""
        if not self.model.training:
            self.model.train()
        x, y = self._prepare(x, y)
        targets = y
        if self.cutmix is not None and float(torch.rand((), generator=self._cutmix_rng)) < self.config.cutmix:
            x, targets = self.cutmix(x, y)
        with self.precision.autocast(self.device):
            logits = self.forward(x)
            loss = self.criterion(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._step_scheduler()
        loss = loss.detach()
        self._track(loss, logits.detach(), y)
        self.step += 1
        return loss

    def _step_scheduler(self) -> None:
        if self.scheduler.last_epoch >= self.total_steps:
            return  # e.g. a benchmark running past the planned steps: hold the last LR
        with warnings.catch_warnings():
            # With fp16 the scaler skips steps with overflowing gradients; the schedule still advances.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)`")
            self.scheduler.step()

    def _track(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[0]
        self._loss_sum += loss.float() * n
        self._correct += (logits.argmax(dim=1) == y).sum()
        self._seen += n
        bad_now = ~torch.isfinite(loss) & (self._first_bad < 0)
        self._first_bad = torch.where(bad_now, torch.full_like(self._first_bad, self.step), self._first_bad)

    @property
    def images_seen(self) -> int:
        """Training images since :meth:`reset_metrics`."""
        return self._seen

    def metrics(self) -> tuple[float, float]:
        """Mean training loss and accuracy since :meth:`reset_metrics` (synchronises)."""
        if self._seen == 0:
            return float("nan"), float("nan")
        return float(self._loss_sum) / self._seen, int(self._correct) / self._seen

    def first_nonfinite_step(self) -> int | None:
        """The 0-based global step whose loss was first NaN/inf, or None (synchronises)."""
        bad = int(self._first_bad)
        return None if bad < 0 else bad

    def check_finite(self, note: str = "") -> None:
        """Raise :class:`TrainingDiverged` if any loss so far was NaN/inf (synchronises).

        The message names the epoch and step (1-based) and what to try; ``note`` is appended.
        """
        bad = self.first_nonfinite_step()
        if bad is None:
            return
        epoch, step = bad // self.steps_per_epoch + 1, bad % self.steps_per_epoch + 1
        message = (
            f"Training diverged: the loss became NaN or infinite at epoch {epoch}, step {step} of "
            f"{self.steps_per_epoch}; lower the learning rate (lr={self.config.lr:g}), add warm-up epochs, "
            f"or train in fp32 (precision={self.precision.name})."
        )
        raise TrainingDiverged(f"{message} {note}".strip(), epoch=epoch, step=step)

    # ----------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> tuple[float, float]:
        """Mean cross-entropy and accuracy of the model over ``loader`` (eval mode, autocast)."""
        was_training = self.model.training
        self.model.eval()
        loss_sum = torch.zeros((), dtype=torch.float32, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        try:
            for x, y in loader:
                x, y = self._prepare(x, y)
                with self.precision.autocast(self.device):
                    logits = self.forward(x)
                loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
                correct += (logits.argmax(dim=1) == y).sum()
                seen += y.shape[0]
        finally:
            self.model.train(was_training)
        if seen == 0:
            raise ValueError("The evaluation loader yielded no batches: give it a non-empty test split.")
        return float(loss_sum) / seen, int(correct) / seen

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Optimizer, scheduler, scaler, step count and CutMix RNG: tensors and plain values only."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "cutmix_rng": self._cutmix_rng.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the optimizer before the scheduler)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state.get("step", 0))
        if state.get("cutmix_rng") is not None:
            self._cutmix_rng.set_state(state["cutmix_rng"].cpu())


# --------------------------------------------------------------------------- history
class History:
    """Per-epoch training records: dicts with ``epoch`` (1-based), ``train_loss``, ``train_acc``,
    ``test_loss``, ``test_acc``, ``lr`` (at the epoch's first step), ``seconds`` (train + test)
    and ``images_per_sec`` (training throughput)."""

    KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_sec")

    def __init__(self, rows: Iterable[Mapping[str, Any]] | None = None) -> None:
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows or []]

    def append(self, row: Mapping[str, Any]) -> None:
        self.rows.append(dict(row))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    def __repr__(self) -> str:
        best = self.best_test_acc
        return f"History({len(self)} epochs" + (f", best test acc {best:.4f})" if best is not None else ")")

    def column(self, key: str) -> list[Any]:
        """One value per epoch, e.g. ``history.column("test_acc")``."""
        return [row.get(key) for row in self.rows]

    def to_list(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]

    @property
    def best_test_acc(self) -> float | None:
        values = [v for v in self.column("test_acc") if v is not None]
        return max(values) if values else None

    @property
    def final_test_acc(self) -> float | None:
        return self.rows[-1].get("test_acc") if self.rows else None

    @property
    def total_seconds(self) -> float:
        return float(sum(r.get("seconds", 0.0) for r in self.rows))

    def to_json(self, path: str | Path | None = None) -> str:
        """The rows as a JSON list; also written (atomically) to ``path`` when given."""
        if path is not None:
            atomic_write_json(path, self.rows)
        return json.dumps(self.rows, indent=2)

    @classmethod
    def from_json(cls, source: str | Path) -> History:
        """Read a history from JSON text or from a file path."""
        text = str(source)
        if isinstance(source, Path) or not text.lstrip().startswith("["):
            text = Path(source).read_text()
        return cls(json.loads(text))


# --------------------------------------------------------------------------- the epoch loop
def _resolve_device(device: str | torch.device | None) -> torch.device:
    return device if isinstance(device, torch.device) else get_device(device)


def _rng_state() -> dict[str, Any]:
    """Torch (CPU and CUDA), NumPy and Python RNG states as tensors and plain values."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


class _EpochLoaders:
    """Train/test loaders from :func:`senet_lib.data.make_loaders` whose shuffle depends only on
    ``seed + epoch``, so a resumed run sees the same batches as an uninterrupted one."""

    def __init__(
        self, data: ImageDataset, config: TrainConfig, device: torch.device, channels_last: bool
    ) -> None:
        self.data, self.config, self.device, self.channels_last = data, config, device, channels_last
        self.train, self.test = self._make(config.seed)
        self._epoch = 0

    def _make(self, seed: int):
        from .data import make_loaders

        return make_loaders(
            self.data,
            self.config.batch_size,
            self.device,
            pipeline=self.config.pipeline,
            cutout=self.config.cutout,
            cutout_count=self.config.cutout_count,
            channels_last=self.channels_last,
            seed=seed,
        )

    def train_for_epoch(self, epoch: int):
        """The training loader, positioned for 0-based ``epoch``."""
        if hasattr(self.train, "set_epoch"):
            self.train.set_epoch(epoch)
        elif epoch != self._epoch:
            self.train, _ = self._make(self.config.seed + epoch)
        self._epoch = epoch
        return self.train


def _check_resumable(saved: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    """Refuse to resume a checkpoint whose recipe differs from ``config`` (names the fields)."""
    saved_recipe = {k: v for k, v in saved.items() if k not in RUNTIME_FIELDS}
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
    """One epoch of :meth:`Trainer.train_step` calls under a tqdm bar, synchronising only every
    ``print_freq`` steps (or ~10 times for the bar) and at the end, where non-finite losses raise.

    Returns ``(train_loss, train_acc, images, seconds)``.
    """
    trainer.reset_metrics()
    trainer.model.train()
    sync_every = config.print_freq or (max(1, steps // 10) if config.progress else 0)
    bar = tqdm(
        total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress, leave=True
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
) -> History:
    """Train ``model`` on ``data`` with ``config``; return the per-epoch :class:`History`.

    With ``run_dir``, writes ``checkpoint.pt`` every ``save_every`` epochs and at the end, and
    ``history.json`` every epoch (both atomically). ``resume=True`` continues the checkpoint in
    ``run_dir`` (weights, optimizer, LR position, RNG state, history); a finished run returns at
    once, and with no checkpoint there training starts afresh.

    While it runs, the process holds ``run_dir`` exclusively
    (:func:`senet_lib.checkpoint.claim_run_folder`: a second run on the same folder stops at
    once, naming this one), and temporary files a killed save left there are removed first.

    Raises:
        TrainingDiverged: the loss became NaN/inf (epoch and step named; checkpoints untouched).
        RunExistsError: ``run_dir`` already holds a checkpoint and ``resume`` is False (a ``FileExistsError``).
        RecipeMismatchError: resuming with another recipe (a ``ValueError``).
        senet_lib.checkpoint.RunFolderBusy: another live run holds ``run_dir``.
        senet_lib.checkpoint.OutputError: ``run_dir`` cannot be written, or the disk is full.
        senet_lib.checkpoint.CheckpointError: the checkpoint to resume is corrupt or not resumable.
        ValueError: too little data for one batch.
    """
    device = _resolve_device(device)
    if run_dir is None:
        if resume:
            raise ValueError("resume=True needs run_dir, the folder of the run to continue.")
        return _fit(model, data, config, None, False, device)
    run_dir = Path(run_dir)
    with claim_run_folder(run_dir):
        removed = remove_stale_temps(run_dir, (CHECKPOINT_NAME, HISTORY_NAME))
        removed += remove_stale_temps(run_dir, (RECORD_NAME,), min_age=STALE_RECORD_AGE)
        if removed:
            print(
                f"Removed {len(removed)} temporary file(s) left in {run_dir} by an interrupted save "
                f"({', '.join(p.name for p in removed)}).",
                file=sys.stderr,
            )
        return _fit(model, data, config, run_dir, resume, device)


def _fit(
    model: nn.Module,
    data: ImageDataset,
    config: TrainConfig,
    run_dir: Path | None,
    resume: bool,
    device: torch.device,
) -> History:
    """:func:`fit`'s epoch loop, for a run folder this process holds (or none)."""
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
    if payload is None:
        seed_everything(config.seed)

    loaders = _EpochLoaders(data, config, device, resolve_channels_last(device, config))
    steps = len(loaders.train)
    if config.max_steps_per_epoch is not None:
        steps = min(steps, config.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(
            f"The training split ({len(data.train.labels)} images) is smaller than one batch "
            f"({config.batch_size}): lower the batch size or use more training images."
        )
    trainer = Trainer(model, config, device, steps_per_epoch=steps)
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
        _set_rng_state(payload["extra"]["rng"])
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
        test_loss, test_acc = trainer.evaluate(loaders.test)
        if not math.isfinite(test_loss):
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
        }
        history.append(row)
        if config.progress:
            print(
                f"epoch {epoch + 1}/{config.epochs}: train loss {train_loss:.4f}, acc {100 * train_acc:.2f}% | "
                f"test loss {test_loss:.4f}, acc {100 * test_acc:.2f}% | lr {lr:.4g} | "
                f"{row['images_per_sec']:.0f} img/s, {row['seconds']:.1f} s"
            )
        done = epoch + 1
        if run_dir is not None:
            if done == config.epochs or (config.save_every and done % config.save_every == 0):
                save_checkpoint(
                    ckpt_path,
                    model,
                    trainer.state_dict(),
                    done,
                    history,
                    config.to_dict(),
                    extra={"rng": _rng_state(), "steps_per_epoch": steps},
                )
                saved_note = _kept_note(ckpt_path, done)
            history.to_json(run_dir / HISTORY_NAME)
    return history


# --------------------------------------------------------------------------- notebooks' one call
def _dataset_descriptor(data: ImageDataset) -> dict[str, Any]:
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


def train_or_load(
    model_name: str,
    data: ImageDataset,
    config: TrainConfig,
    run_name: str | None = None,
    checkpoint_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    use_pretrained: bool = True,
    **model_options: Any,
) -> tuple[nn.Module, History]:
    """Load a finished run, resume a partial one, load the shipped network, or train from scratch; print which.

    The run lives in ``<checkpoint_dir>/<run_name>`` (default folder: ``get_paths().checkpoints``;
    default name: :func:`default_run_name`). A run record is written there as ``record.json``.
    With no run there and ``use_pretrained``, a network in ``pretrained/`` trained with the same
    model, options, data sizes and recipe (:func:`senet_lib.pretrained.find_pretrained`) is loaded
    instead of training; nothing is written then.

    Returns:
        ``(model, history)``, the model in eval mode on ``device``.
    """
    device = _resolve_device(device)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else get_paths().checkpoints
    run_name = run_name or default_run_name(model_name, data, config, **model_options)
    run_dir = checkpoint_dir / run_name
    ckpt_path = run_dir / CHECKPOINT_NAME
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
            return model, saved_history
        print(f"Resuming {run_name} from epoch {len(saved_history)} of {config.epochs} ({ckpt_path}).")
        model = create_model(model_name, data.num_classes, **model_options)
        history = fit(model, data, config, run_dir=run_dir, resume=True, device=device)
    else:
        shipped = _find_shipped(model_name, data, config, model_options) if use_pretrained else None
        if shipped is not None:
            model, _ = load_checkpoint(shipped.path, device=device)
            print(f"Loaded the repository's pretrained network {shipped.describe()} from {shipped.path}.")
            return model, History(shipped.history)
        print(f"Training {run_name} for {config.epochs} epochs on {device}; checkpoints go to {run_dir}.")
        seed_everything(config.seed)
        model = create_model(model_name, data.num_classes, **model_options)
        history = fit(model, data, config, run_dir=run_dir, device=device)
    record = run_record(model, data, config, history, run_environment(device, config), history.total_seconds)
    atomic_write_json(run_dir / RECORD_NAME, record)
    model.eval()
    return model, history


def _find_shipped(
    model_name: str, data: ImageDataset, config: TrainConfig, model_options: Mapping[str, Any]
) -> PretrainedMatch | None:
    arch = {"name": model_name, "num_classes": int(data.num_classes), **model_options}
    return find_pretrained(arch, _dataset_descriptor(data), config.to_dict())


# --------------------------------------------------------------------------- result records
def run_record(
    model: nn.Module,
    data: ImageDataset,
    config: TrainConfig,
    history: History,
    env_record: Mapping[str, Any],
    wall_time: float,
) -> dict[str, Any]:
    """One JSON-ready record of a training run: model, dataset, recipe, seed, device, versions,
    commit, per-epoch history, final and best test accuracy and wall time (seconds)."""
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
