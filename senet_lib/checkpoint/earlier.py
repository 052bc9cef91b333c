"""Runs of an earlier Kaggle session, attached read-only under ``/kaggle/input/<name>/``:
:func:`restore_earlier_run` copies the most advanced copy of a run into the writable checkpoint folder,
where :func:`senet_lib.train.train_or_load` resumes it."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import UserError
from .lock import LOCK_NAME
from .saved import CheckpointError, read_checkpoint

__all__ = ["EARLIER_RUN_ROOTS", "find_earlier_run", "restore_earlier_run"]

#: Read-only folders searched for ``[*/[*/[*/]]]checkpoints/<run>/checkpoint.pt``.
EARLIER_RUN_ROOTS: tuple[Path, ...] = (Path("/kaggle/input"),)
CHECKPOINT_FILE = "checkpoint.pt"


def _epochs(checkpoint: Path) -> int:
    try:
        return len(read_checkpoint(checkpoint).get("history", []))
    except CheckpointError:
        return -1  # unreadable: never chosen over a readable copy


def find_earlier_run(run_name: str, roots: tuple[Path, ...] | None = None) -> Path | None:
    """The run folder ``checkpoints/<run_name>`` under ``roots`` (up to three folders deep) whose
    checkpoint has the most epochs, or None."""
    found = []
    for root in EARLIER_RUN_ROOTS if roots is None else roots:
        if not root.is_dir():
            continue
        for depth in ("", "*/", "*/*/", "*/*/*/"):
            found += [p.parent for p in root.glob(f"{depth}checkpoints/{run_name}/{CHECKPOINT_FILE}")]
    scored = [(_epochs(folder / CHECKPOINT_FILE), str(folder), folder) for folder in found]
    scored = [s for s in scored if s[0] >= 0]
    return max(scored)[2] if scored else None


def restore_earlier_run(run_name: str, run_dir: Path, roots: tuple[Path, ...] | None = None) -> Path | None:
    """Copy the best earlier copy of ``run_name`` to ``run_dir`` (which must not hold a checkpoint yet);
    return where it came from, or None when there is none. The earlier copy is only read."""
    if (run_dir / CHECKPOINT_FILE).exists():
        return None
    source = find_earlier_run(run_name, roots)
    if source is None:
        return None
    partial = run_dir.with_name(run_dir.name + ".copying")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(source, partial, ignore=shutil.ignore_patterns(LOCK_NAME, "*.tmp"))
        if run_dir.exists():
            _merge(partial, run_dir)
        else:
            partial.replace(run_dir)
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise UserError(
            f"Could not copy the earlier run {source} to {run_dir} ({err}): free some space or set "
            "SENET_CHECKPOINT_DIR to a writable folder."
        ) from None
    print(f"Found an earlier session's run in {source} (read-only): copied it to {run_dir} to continue.")
    return source


def _merge(partial: Path, run_dir: Path) -> None:
    """Move the copied files into an existing run folder that has no checkpoint (the checkpoint last)."""
    files = sorted(partial.iterdir(), key=lambda p: p.name == CHECKPOINT_FILE)
    for path in files:
        path.replace(run_dir / path.name)
    partial.rmdir()
