"""Saving and loading trained networks: resumable checkpoints and small shareable weight files.

Two file kinds, both read by :func:`load_checkpoint` with ``torch.load(weights_only=True)``:

* **checkpoint** (``checkpoint.pt``, written by :func:`save_checkpoint`): fp32 weights, the
  optimizer / scheduler / scaler state, RNG state, epoch, history and recipe, everything needed
  to resume a run. Only tensors and plain Python values are stored, never pickled objects.
* **weights** (written by :func:`export_weights`): fp16 weights and the architecture, plus a
  sidecar JSON with the recipe, data, accuracy, commit and the file's SHA-256, small enough to
  ship in the repository for trained CIFAR networks.

Every write is atomic: the file is written to a temporary name in the same folder, flushed to
disk and renamed over the old one, so an interrupted save never destroys the previous file. Files
get the mode the umask allows (0644 under the usual umask 022), as ``open()`` would give; a folder that cannot be written or a full disk ends in :class:`OutputError`, one sentence.

A run folder is claimed by one process at a time (:func:`claim_run_folder`, a lock file naming
the run that holds it), and temporary files that a killed save left behind are removed by the
next run that claims the folder (:func:`remove_stale_temps`). A run of an earlier Kaggle session, attached
read-only under ``/kaggle/input``, is copied back to be resumed (:func:`restore_earlier_run`). :func:`check_writable` tests an
output folder before any work starts.
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
