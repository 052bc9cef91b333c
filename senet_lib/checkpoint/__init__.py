"""Saving and loading trained networks: resumable checkpoints (``checkpoint.pt``, :func:`save_checkpoint`)
and small shareable fp16 weight files with a JSON sidecar (:func:`export_weights`), both read with
``torch.load(weights_only=True)``; atomic writes, the exclusive run-folder claim
(:func:`claim_run_folder`) and runs of an earlier Kaggle session (:func:`restore_earlier_run`).
"""

from .earlier import EARLIER_RUN_ROOTS, find_earlier_run, restore_earlier_run
from .files import (
    OutputError,
    atomic_write,
    atomic_write_json,
    check_fits,
    check_writable,
    create_json,
    read_json,
    remove_stale_temps,
    sha256_file,
    stale_temp_pattern,
)
from .lock import LOCK_HEARTBEAT, LOCK_NAME, LOCK_STALE_AFTER, RunFolderBusy, claim_run_folder
from .saved import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    MAX_EXPORT_BYTES,
    WEIGHTS_FORMAT,
    ArchitectureMismatchError,
    CheckpointError,
    MissingArchitectureError,
    arch_config_of,
    describe_arch,
    export_weights,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    verify_weights,
)

__all__ = [
    "EARLIER_RUN_ROOTS",
    "find_earlier_run",
    "restore_earlier_run",
    "OutputError",
    "atomic_write",
    "atomic_write_json",
    "sha256_file",
    "check_writable",
    "check_fits",
    "create_json",
    "read_json",
    "stale_temp_pattern",
    "remove_stale_temps",
    "RunFolderBusy",
    "LOCK_NAME",
    "LOCK_STALE_AFTER",
    "LOCK_HEARTBEAT",
    "claim_run_folder",
    "CHECKPOINT_FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "MissingArchitectureError",
    "ArchitectureMismatchError",
    "arch_config_of",
    "describe_arch",
    "save_checkpoint",
    "read_checkpoint",
    "load_checkpoint",
    "WEIGHTS_FORMAT",
    "MAX_EXPORT_BYTES",
    "export_weights",
    "verify_weights",
]
