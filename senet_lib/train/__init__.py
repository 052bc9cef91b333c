"""Training: the recipe and the profiles (:class:`TrainConfig`, :func:`get_settings`), the run's settings
resolved once (:class:`RunPlan`), the per-step machinery (:class:`Trainer`), the epoch loop with
resumable checkpoints (:func:`fit`), the notebooks' one call (:func:`train_or_load`), the shipped
networks (:func:`pick_pretrained`) and the paper's ablation grids (:func:`run_ablation`).

The recipe defaults follow the paper's CIFAR setting (SGD with momentum 0.9, weight decay 5e-4,
lr 0.1 divided by 10 at epochs 30/60/90; flip + 4-pixel pad + random crop). Mixed precision
comes from :func:`senet_lib.env.get_precision` (bf16 on recent GPUs, fp16 + GradScaler on older
ones, bf16 on CPUs with native bf16 units, fp32 on other CPUs and MPS). Accuracies are fractions in [0, 1].

A run folder holds ``checkpoint.pt`` (weights, optimizer/scheduler/scaler and RNG state,
history, recipe), ``history.json`` (one row per epoch) and, from :func:`train_or_load`,
``record.json``. A killed run continues from its last checkpoint with ``resume=True``.

Several processes (``torchrun --nproc_per_node=N -m senet_lib train ...``) train one model with
``DistributedDataParallel`` (:mod:`~senet_lib.train.distributed`):
the global batch and learning rate stay the recipe's, rank 0 writes every file.
"""

from ..checkpoint import load_checkpoint
from .ablate import (
    ABLATIONS,
    Ablation,
    AblationError,
    ablation_grid,
    recorded_ablations,
    run_ablation,
    summarize,
)
from .config import (
    MAX_SEED,
    PROFILE_SETTINGS,
    RUNTIME_FIELDS,
    SCHEDULES,
    ConfigError,
    Profile,
    TrainConfig,
    estimate_profile,
    get_settings,
)
from .distributed import (
    CpuSyncBatchNorm,
    DistContext,
    DistributedError,
    DistributedTrainer,
    cleanup,
    convert_sync_batchnorm,
    get_context,
    init_distributed,
    is_main,
)
from .history import (
    RECORD_NAME,
    STALE_RECORD_AGE,
    DatasetDescriptor,
    History,
    HistoryRow,
    RunRecord,
    dataset_descriptor,
    run_record,
    write_record,
)
from .loop import CHECKPOINT_NAME, HISTORY_NAME, RecipeMismatchError, RunExistsError, fit
from .optim import LRFactor, build_scheduler, parameter_groups
from .runs import (
    ComparisonError,
    PretrainedMatch,
    PretrainedWarning,
    Run,
    RunNameError,
    check_comparison,
    check_run_name,
    default_run_name,
    find_pretrained,
    list_pretrained,
    pick_pretrained,
    pick_pretrained_pair,
    pretrained_dir,
    recorded_profile,
    run_folder,
    same_recipe,
    train_or_load,
)
from .trainer import RunPlan, Trainer, TrainingDiverged, compile_reason

__all__ = [
    "ABLATIONS",
    "CHECKPOINT_NAME",
    "HISTORY_NAME",
    "MAX_SEED",
    "PROFILE_SETTINGS",
    "RECORD_NAME",
    "RUNTIME_FIELDS",
    "SCHEDULES",
    "STALE_RECORD_AGE",
    "Ablation",
    "AblationError",
    "ComparisonError",
    "ConfigError",
    "CpuSyncBatchNorm",
    "DatasetDescriptor",
    "DistContext",
    "DistributedError",
    "DistributedTrainer",
    "History",
    "HistoryRow",
    "LRFactor",
    "PretrainedMatch",
    "PretrainedWarning",
    "Profile",
    "RecipeMismatchError",
    "Run",
    "RunExistsError",
    "RunNameError",
    "RunPlan",
    "RunRecord",
    "Trainer",
    "TrainConfig",
    "TrainingDiverged",
    "ablation_grid",
    "build_scheduler",
    "check_comparison",
    "check_run_name",
    "cleanup",
    "compile_reason",
    "convert_sync_batchnorm",
    "dataset_descriptor",
    "default_run_name",
    "estimate_profile",
    "find_pretrained",
    "fit",
    "get_context",
    "get_settings",
    "init_distributed",
    "is_main",
    "list_pretrained",
    "load_checkpoint",
    "parameter_groups",
    "pick_pretrained",
    "pick_pretrained_pair",
    "pretrained_dir",
    "recorded_ablations",
    "recorded_profile",
    "run_ablation",
    "run_folder",
    "run_record",
    "same_recipe",
    "summarize",
    "train_or_load",
    "write_record",
]
