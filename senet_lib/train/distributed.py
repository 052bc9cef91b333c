"""Several training processes, one model: torchrun's process group, :class:`DistributedTrainer` and
synchronised BatchNorm.

:func:`init_distributed` reads torchrun's ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, joins the group
(``nccl`` on CUDA, ``gloo`` on the CPU) and returns a :class:`DistContext`; without those variables
it does nothing, so callers share one code path. Only rank 0 prints and writes files. Each process
trains on its slice of every global batch; DDP averages the gradients, and losses, accuracies and
the first non-finite step are reduced so every rank stops on the same numbers. With ``sync_bn``
BatchNorm uses the global batch's statistics (``nn.SyncBatchNorm`` on GPUs, :class:`CpuSyncBatchNorm`
on the CPU, which ``nn.SyncBatchNorm`` refuses).
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..env import get_device
from ..errors import UserError
from .config import TrainConfig
from .trainer import RunPlan, Trainer


class DistributedError(RuntimeError, UserError):
    """The processes cannot form a group as asked (no backend, more processes than GPUs, MPS)."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` (``local_rank`` on this machine), the
    ``backend`` (None in a single process) and whether BatchNorm is synchronised (``sync_bn``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    sync_bn: bool = False

    @property
    def enabled(self) -> bool:
        """True when more than one process trains the model."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one process that writes files and prints."""
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        """What a run record says about the processes."""
        return {"world_size": self.world_size, "backend": self.backend, "sync_bn": self.sync_bn}


_SINGLE = DistContext()
_context = _SINGLE


def get_context() -> DistContext:
    """The context :func:`init_distributed` set up, else the single-process one."""
    return _context


def is_main() -> bool:
    """True in a single process and on rank 0."""
    return _context.is_main


def launched_by_torchrun() -> bool:
    """True when the environment says this process is one of several (``WORLD_SIZE`` > 1).

    Raises:
        DistributedError: ``WORLD_SIZE`` is set but is not a whole number (one sentence naming it).
    """
    value = os.environ.get("WORLD_SIZE", "").strip()
    if not value:
        return False
    if not value.isascii() or not value.isdigit():
        raise DistributedError(
            f"WORLD_SIZE is {value!r}, not a number of processes: unset it to train in one process, or start "
            "the processes with torchrun (torchrun --nproc_per_node=N -m senet_lib train ...), which sets it."
        )
    return int(value) > 1


def _env_int(name: str) -> int:
    value = os.environ.get(name, "").strip()
    if not value.isascii() or not value.isdigit():
        raise DistributedError(
            f"WORLD_SIZE is set but {name} is {os.environ.get(name)!r}: start the processes with torchrun "
            "(torchrun --nproc_per_node=N -m senet_lib train ...), which sets both."
        )
    return int(value)


def _process_device(name: str | None, local_rank: int, world_size: int) -> torch.device:
    """``cuda:<local_rank>`` on a CUDA machine, else the CPU; MPS cannot join a process group."""
    device = get_device(name)
    if device.type == "mps":
        raise DistributedError(
            "Apple MPS has no torch.distributed backend: train in one process, or pass --device cpu "
            "to use several CPU processes (gloo)."
        )
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise DistributedError(
            f"torchrun started {world_size} processes on this machine but it has {count} CUDA GPU(s): "
            f"use --nproc_per_node={count} (one process per GPU)."
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def init_distributed(
    device: str | None = None, sync_bn: bool = False
) -> tuple[DistContext, torch.device | None]:
    """Join torchrun's process group; returns ``(context, this process's device)``.

    In a single process nothing happens: the single-process context and ``None`` come back. A CUDA
    index in ``device`` is replaced by ``LOCAL_RANK``. Ranks other than 0 stop printing for good.
    """
    global _context
    if not launched_by_torchrun():
        return _SINGLE, None
    if not dist.is_available():
        raise DistributedError(
            "This PyTorch build has no torch.distributed: train in one process, or install a build with it."
        )
    rank, world_size, local_rank = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if rank >= world_size or local_rank >= world_size:  # the group would wait for a process that never comes
        raise DistributedError(
            f"RANK {rank} and LOCAL_RANK {local_rank} must be below WORLD_SIZE {world_size}: start the processes "
            "with torchrun (torchrun --nproc_per_node=N -m senet_lib train ...), which numbers them."
        )
    chosen = _process_device(device, local_rank, world_size)
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    if not dist.is_initialized():
        options = {"device_id": chosen} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, **options)
    _context = DistContext(rank, world_size, local_rank, dist.get_backend(), bool(sync_bn))
    if not _context.is_main:
        builtins.print = _silent_print
    return _context, chosen


def _silent_print(*args: Any, **kwargs: Any) -> None:
    """``print`` on ranks other than 0: nothing (rank 0 speaks for all)."""


def cleanup() -> None:
    """Leave the process group (if this process joined one). A rank other than 0 stays silent,
    so that an error that stopped every rank is printed once, by rank 0."""
    global _context
    if _context.enabled and dist.is_initialized():
        dist.destroy_process_group()
    _context = _SINGLE


# --------------------------------------------------------------------------- collectives
def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over all processes, in place (unchanged in a single process)."""
    if _context.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_min(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``'s elementwise minimum over all processes, in place."""
    if _context.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process, so that all
    evaluate the model rank 0 saves."""
    if not _context.enabled:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def barrier() -> None:
    """Wait until every process gets here (nothing in a single process)."""
    if _context.enabled:
        dist.barrier()


class _SyncBatchNorm(torch.autograd.Function):
    """Batch normalisation over every process's batch, with ``nn.BatchNorm2d``'s closed-form backward:
    ``dx = w / sigma * (dy - mean(dy) - x_hat * mean(dy * x_hat))``, the means all-reduced."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> Any:
        dims = (0, 2, 3)
        sums = torch.cat([x.sum(dims), x.new_tensor([x.numel() // x.shape[1]])])
        dist.all_reduce(sums)
        n, mean = sums[-1], sums[:-1] / sums[-1]
        centred = x - mean[None, :, None, None]
        var = centred.square().sum(dims)
        dist.all_reduce(var)
        var /= n
        invstd = torch.rsqrt(var + eps)
        x_hat = centred * invstd[None, :, None, None]
        ctx.save_for_backward(x_hat, weight, invstd, n)
        ctx.mark_non_differentiable(mean, var, n)
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None], mean, var, n

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor, *unused: Any) -> Any:
        x_hat, weight, invstd, n = ctx.saved_tensors
        dims, channels = (0, 2, 3), x_hat.shape[1]
        sums = torch.cat([dy.sum(dims), (dy * x_hat).sum(dims)])
        grad_bias, grad_weight = sums[:channels].clone(), sums[channels:].clone()
        dist.all_reduce(sums)
        mean_dy, mean_dy_xhat = (sums / n).split(channels)
        scale = (invstd * weight)[None, :, None, None]
        dx = (dy - mean_dy[None, :, None, None] - x_hat * mean_dy_xhat[None, :, None, None]) * scale
        return dx, grad_weight, grad_bias, None


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics cover every process's batch (for gloo on the CPU);
    plain BatchNorm2d in eval mode or outside a process group."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (
            self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        ):
            return super().forward(x)
        ones = torch.ones(x.shape[1], device=x.device)
        weight = self.weight if self.affine else ones
        bias = self.bias if self.affine else torch.zeros_like(ones)
        y, mean, var, n = _SyncBatchNorm.apply(x.float(), weight, bias, self.eps)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * n / (n - 1).clamp(min=1), momentum)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm synchronised across processes (``nn.SyncBatchNorm`` on a GPU,
    :class:`CpuSyncBatchNorm` on the CPU), changed in place and returned."""
    if torch.device(device).type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = CpuSyncBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            if child.affine:
                synced.weight, synced.bias = child.weight, child.bias
            synced.running_mean, synced.running_var = child.running_mean, child.running_var
            synced.num_batches_tracked = child.num_batches_tracked
            synced.train(child.training)
            setattr(model, name, synced)
        else:
            convert_sync_batchnorm(child, device)
    return model


class _Counted:
    """A loader wrapped to count the images it yields (``seen``): a process's share of the test split."""

    def __init__(self, loader: Iterable) -> None:
        self.loader, self.seen = loader, 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            self.seen += int(y.shape[0])
            yield x, y


class DistributedTrainer(Trainer):
    """:class:`Trainer` for one process of several, training through ``DistributedDataParallel``;
    metrics, the NaN check and evaluation are reduced over the processes."""

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        plan: RunPlan | str | torch.device | None,
        steps_per_epoch: int,
        context: DistContext,
    ) -> None:
        plan = plan if isinstance(plan, RunPlan) else RunPlan.resolve(config, plan)
        if context.sync_bn:
            model = convert_sync_batchnorm(model, plan.device)
        super().__init__(model, config, plan, steps_per_epoch)
        self.context = context
        compiled = self.forward is not self.model
        self._eval_forward = self.forward  # evaluation needs no gradient sync: the plain model
        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.forward = torch.compile(ddp) if compiled else ddp

    @property
    def images_seen(self) -> int:
        """Training images since :meth:`reset_metrics`, over all processes (equal slices)."""
        return self._seen * self.context.world_size

    def metrics(self) -> tuple[float, float]:
        """Mean training loss and accuracy over every process's images (a collective)."""
        totals = torch.stack(
            [
                self._loss_sum.double(),
                self._correct.double(),
                torch.tensor(float(self._seen), device=self.device),
            ]
        )
        loss_sum, correct, seen = all_reduce_sum(totals.to(torch.float64)).tolist()
        if seen == 0:
            return float("nan"), float("nan")
        return loss_sum / seen, correct / seen

    def first_nonfinite_step(self) -> int | None:
        """The first step whose loss was NaN/inf on any process (a collective): every rank stops together."""
        never = torch.iinfo(torch.long).max
        bad = torch.where(self._first_bad < 0, torch.full_like(self._first_bad, never), self._first_bad)
        first = int(all_reduce_min(bad.clone()))
        return None if first == never else first

    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> tuple[float, float]:
        """Loss and accuracy over every process's part of the test split, with rank 0's buffers."""
        broadcast_buffers(self.model)
        counted = _Counted(loader)
        train_forward, self.forward = self.forward, self._eval_forward
        try:
            loss, acc = super().evaluate(counted)
        finally:
            self.forward = train_forward
        seen = counted.seen
        totals = torch.tensor([loss * seen, acc * seen, float(seen)], dtype=torch.float64, device=self.device)
        loss_sum, correct, total = all_reduce_sum(totals).tolist()
        return loss_sum / total, round(correct) / total

    @torch.no_grad()
    def evaluate_flip_tta(self, loader: Iterable) -> float:
        """Flip-TTA accuracy over every process's part of the test split, with rank 0's buffers."""
        broadcast_buffers(self.model)
        counted = _Counted(loader)
        acc, seen = super().evaluate_flip_tta(counted), counted.seen
        totals = torch.tensor([acc * seen, float(seen)], dtype=torch.float64, device=self.device)
        correct, total = all_reduce_sum(totals).tolist()
        return round(correct) / total


def make_trainer(
    model: nn.Module, config: TrainConfig, plan: RunPlan, steps_per_epoch: int, context: DistContext
) -> Trainer:
    """A :class:`DistributedTrainer` when ``context`` has several processes, else a :class:`Trainer`."""
    if context.enabled:
        return DistributedTrainer(model, config, plan, steps_per_epoch, context)
    return Trainer(model, config, plan, steps_per_epoch)
