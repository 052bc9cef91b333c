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

Several processes (``torchrun --nproc_per_node=N -m senet_lib train ...``) train one model with
``DistributedDataParallel`` (:mod:`~senet_lib.train.distributed`, :mod:`~senet_lib.train.ddp`):
the global batch and learning rate stay the recipe's, rank 0 writes every file.
"""

from ..env import environment_record
from .ablate import (
    ABLATIONS,
    Ablation,
    AblationError,
    ablation_grid,
    recorded_ablations,
    run_ablation,
    summarize,
)
from .config import MAX_SEED, PRECISIONS, RUNTIME_FIELDS, SCHEDULES, ConfigError, TrainConfig
from .ddp import CpuSyncBatchNorm, DistributedTrainer, convert_sync_batchnorm
from .distributed import DistContext, DistributedError, cleanup, get_context, init_distributed, is_main
from .history import History, HistoryRow
from .loop import CHECKPOINT_NAME, HISTORY_NAME, RecipeMismatchError, RunExistsError, fit
from .optim import LRFactor, build_scheduler, parameter_groups
from .records import (
    RECORD_NAME,
    STALE_RECORD_AGE,
    DatasetDescriptor,
    RunRecord,
    _dataset_descriptor,
    run_record,
    write_record,
)
from .runs import Run, default_run_name, run_folder, seeded_model, train_or_load
from .runtime import compile_reason, resolve_channels_last, run_environment
from .trainer import Trainer, TrainingDiverged

__all__ = [
    "ABLATIONS",
    "Ablation",
    "AblationError",
    "CHECKPOINT_NAME",
    "ConfigError",
    "CpuSyncBatchNorm",
    "DistContext",
    "DistributedError",
    "DistributedTrainer",
    "HISTORY_NAME",
    "RECORD_NAME",
    "RecipeMismatchError",
    "RunExistsError",
    "Run",
    "RunRecord",
    "HistoryRow",
    "SCHEDULES",
    "History",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "ablation_grid",
    "cleanup",
    "convert_sync_batchnorm",
    "default_run_name",
    "environment_record",
    "fit",
    "get_context",
    "init_distributed",
    "is_main",
    "resolve_channels_last",
    "run_environment",
    "run_folder",
    "seeded_model",
    "recorded_ablations",
    "run_ablation",
    "run_record",
    "summarize",
    "train_or_load",
    "write_record",
]
