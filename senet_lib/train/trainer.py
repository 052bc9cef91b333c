"""How a run executes: its settings resolved once (:class:`RunPlan`), the per-step :class:`Trainer`,
and every random generator's state (:func:`rng_state`), so a resumed run continues the same stream."""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..env import (
    Precision,
    default_channels_last,
    device_name,
    environment_record,
    format_rows,
    get_device,
    get_precision,
    seed_everything,
)
from ..errors import UserError
from ..models import create_model, eval_mode
from .config import TrainConfig
from .optim import build_scheduler, make_sgd


def flip_tta_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Flip test-time augmentation: the mean of the logits for ``x`` and its left-right mirror
    (images ``N×C×H×W``, width last), as float32."""
    return 0.5 * (model(x).float() + model(torch.flip(x, dims=(-1,))).float())


class TrainingDiverged(RuntimeError, UserError):
    """The loss became NaN or infinite; ``epoch`` and ``step`` (1-based) say where (with several
    processes, the first step where any of them saw it: every process stops there)."""

    def __init__(self, message: str, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


# --------------------------------------------------------------------------- per-step machinery
class Trainer:
    """Optimizer, LR schedule, mixed precision and the loss for one model: one call per step.

    :meth:`train_step` never waits for the device; :meth:`metrics` and :meth:`check_finite` do.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        plan: RunPlan | str | torch.device | None,
        steps_per_epoch: int,
    ) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1 (got {steps_per_epoch}).")
        self.config = config
        self.plan = plan if isinstance(plan, RunPlan) else RunPlan.resolve(config, plan)
        self.device = self.plan.device
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.precision = self.plan.precision
        self.channels_last = self.plan.channels_last
        self.model = model.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.optimizer = make_sgd(model, config, self.device)
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
        """``torch.compile(model, dynamic=False)`` for training when the plan says so; evaluation runs eager."""
        if self.plan.compile_note:
            print(f"{self.plan.compile_note}; training without torch.compile.")
        return torch.compile(model, dynamic=False) if self.plan.compile else model

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
        if self.channels_last and x.dim() == 4:  # image batches; anything else has no channels-last form
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
        """Raise :class:`TrainingDiverged` if any loss so far was NaN/inf (synchronises); ``note`` is appended."""
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
        loss_sum = torch.zeros((), dtype=torch.float32, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        with eval_mode(self.model):
            for x, y in loader:
                x, y = self._prepare(x, y)
                with self.precision.autocast(self.device):
                    logits = self.model(x)  # eager: no recompiles (see _maybe_compile)
                loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
                correct += (logits.argmax(dim=1) == y).sum()
                seen += y.shape[0]
        if seen == 0:
            raise ValueError("The evaluation loader yielded no batches: give it a non-empty test split.")
        return float(loss_sum) / seen, int(correct) / seen

    @torch.no_grad()
    def evaluate_flip_tta(self, loader: Iterable) -> float:
        """Accuracy with horizontal-flip test-time augmentation (:func:`flip_tta_logits`)."""
        correct, seen = torch.zeros((), dtype=torch.long, device=self.device), 0
        with eval_mode(self.model):
            for x, y in loader:
                x, y = self._prepare(x, y)
                with self.precision.autocast(self.device):
                    logits = flip_tta_logits(self.model, x)
                correct += (logits.argmax(dim=1) == y).sum()
                seen += y.shape[0]
        if seen == 0:
            raise ValueError("The evaluation loader yielded no batches: give it a non-empty test split.")
        return int(correct) / seen

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


def rng_state() -> dict[str, Any]:
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


def set_rng_state(state: Mapping[str, Any]) -> None:
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


# --------------------------------------------------------------------------- the run's settings, once
@dataclass(frozen=True)
class RunPlan:
    """How one run executes, resolved once (:meth:`resolve`) from the recipe, the profile and the
    machine: device, precision, channels-last, ``torch.compile`` (``compile_note`` says why off) and
    seed. Everything else reads these fields; ``str(plan)`` is the start-up banner."""

    device: torch.device
    precision: Precision
    channels_last: bool
    compile: bool
    seed: int
    profile: str | None = None
    model: str | None = None
    model_options: Mapping[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    compile_note: str | None = None

    @classmethod
    def resolve(
        cls,
        config: TrainConfig,
        device: str | torch.device | None = None,
        *,
        profile: str | None = None,
        model: str | None = None,
        model_options: Mapping[str, Any] | None = None,
        run_dir: str | Path | None = None,
    ) -> RunPlan:
        """The plan of a run of ``config`` on ``device`` (default: :func:`senet_lib.env.get_device`)."""
        device = device if isinstance(device, torch.device) else get_device(device)
        channels_last = (
            config.channels_last if config.channels_last is not None else default_channels_last(device)
        )
        wanted = config.compile if config.compile is not None else device.type == "cuda"
        reason = compile_reason(device) if wanted else None
        return cls(
            device=device,
            precision=get_precision(device, config.precision),
            channels_last=channels_last,
            compile=wanted and reason is None,
            seed=config.seed,
            profile=profile,
            model=model,
            model_options=dict(model_options or {}),
            run_dir=Path(run_dir) if run_dir is not None else None,
            compile_note=f"compile=True ignored: {reason}" if reason else None,
        )

    def record(self) -> dict[str, Any]:
        """:func:`senet_lib.env.environment_record` of this run, with its memory format and compilation."""
        record = environment_record(self.device, self.precision.name, self.profile, self.precision.reason)
        record["channels_last"] = self.channels_last
        record["compile"] = self.compile
        return record

    def __str__(self) -> str:
        precision = self.precision.name + (" + GradScaler" if self.precision.use_grad_scaler else "")
        if self.precision.reason:
            precision += f" ({self.precision.reason})"
        rows = [
            ("device", f"{self.device} — {device_name(self.device)}"),
            ("precision", precision),
            ("channels-last", "on" if self.channels_last else "off"),
            ("compile", "on" if self.compile else (self.compile_note or "off")),
            ("seed", str(self.seed)),
            ("profile", self.profile or "(none)"),
        ]
        if self.model is not None:
            options = ", ".join(f"{k}={v}" for k, v in sorted(self.model_options.items()))
            rows.append(("model", self.model + (f" ({options})" if options else "")))
        if self.run_dir is not None:
            rows.append(("run folder", str(self.run_dir)))
        return format_rows(rows)

    def build_model(self, num_classes: int) -> nn.Module:
        """The model, built after seeding every generator with the run's seed: the one place a run is seeded."""
        if self.model is None:
            raise ValueError("This RunPlan names no model: resolve it with model=<name>.")
        seed_everything(self.seed)
        return create_model(self.model, num_classes, **self.model_options)
