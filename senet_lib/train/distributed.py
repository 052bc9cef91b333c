"""Several training processes, one model: the process group that ``torchrun`` sets up, read here.

``torchrun --nproc_per_node=N -m senet_lib train ...`` starts N copies of the command with the
environment variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``. :func:`init_distributed` reads them, joins the process group (``nccl`` on CUDA,
each process on ``cuda:<LOCAL_RANK>``; ``gloo`` on the CPU) and returns a :class:`DistContext`
(rank, world size, whether this is the main process). Without those variables it returns the
single-process context and does nothing, so every caller can use the same code.

The rest is small collectives used by the training loop (:func:`all_reduce_sum`,
:func:`all_reduce_min`, :func:`broadcast_buffers`, :func:`barrier`) and :func:`cleanup`.
Processes other than rank 0 print nothing (``print`` is silenced there, as in torchvision's
reference scripts): checkpoints, records, progress bars and messages come from rank 0 only.
"""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..env import get_device
from ..errors import UserError

__all__ = [
    "DistContext",
    "DistributedError",
    "all_reduce_min",
    "all_reduce_sum",
    "barrier",
    "broadcast_buffers",
    "cleanup",
    "get_context",
    "init_distributed",
    "is_main",
    "launched_by_torchrun",
]


class DistributedError(RuntimeError, UserError):
    """The processes cannot form a group as asked (no backend, more processes than GPUs, MPS)."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes (``local_rank`` on this
    machine), the ``backend`` (None in a single process) and whether BatchNorm is synchronised
    across processes (``sync_bn``)."""

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
    """True when the environment says this process is one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _env_int(name: str) -> int:
    value = os.environ.get(name)
    if value is None or not value.isdigit():
        raise DistributedError(
            f"WORLD_SIZE is set but {name} is {value!r}: start the processes with torchrun "
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

    In a single process (no ``WORLD_SIZE`` > 1 in the environment) nothing happens: the
    single-process context and ``None`` (choose the device as usual) come back. ``device`` is the
    ``--device`` option (a CUDA index in it is replaced by ``LOCAL_RANK``). Ranks other than 0
    stop printing for good (their error messages too: rank 0 says the same; tracebacks of
    unexpected errors still reach stderr).
    """
    global _context
    if not launched_by_torchrun():
        return _SINGLE, None
    if not dist.is_available():
        raise DistributedError(
            "This PyTorch build has no torch.distributed: train in one process, or install a build with it."
        )
    rank, world_size, local_rank = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
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
