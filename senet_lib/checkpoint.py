"""Saving and loading trained networks: resumable checkpoints and small shareable weight files.

Two file kinds, both read by :func:`load_checkpoint` with ``torch.load(weights_only=True)``:

* **checkpoint** (``checkpoint.pt``, written by :func:`save_checkpoint`): fp32 weights, the
  optimizer / scheduler / scaler state, RNG state, epoch, history and recipe, everything needed
  to resume a run. Only tensors and plain Python values are stored, never pickled objects.
* **weights** (written by :func:`export_weights`): fp16 weights and the architecture, plus a
  sidecar JSON with the recipe, data, accuracy, commit and the file's SHA-256, small enough to
  ship in the repository for trained CIFAR networks.

Every write is atomic: the file is written to a temporary name in the same folder, flushed to
disk and renamed over the old one, so an interrupted save never destroys the previous file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from .env import git_commit
from .models import create_model

CHECKPOINT_FORMAT = "senet_lib.checkpoint"
WEIGHTS_FORMAT = "senet_lib.weights"
FORMAT_VERSION = 1
#: Exported weight files larger than this trigger a warning: they are meant to live in git.
MAX_EXPORT_BYTES = 5 * 1024 * 1024


class CheckpointError(ValueError):
    """A file that is missing, corrupt, truncated, or not a senet_lib checkpoint."""


# --------------------------------------------------------------------------- atomic writes
def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it to ``path``.

    If ``write`` (or anything before the rename) fails, the temporary file is removed and an
    existing ``path`` is left exactly as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable where the OS allows opening folders (POSIX)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if isinstance(obj, (torch.device, torch.dtype)):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- architecture helpers
def arch_config_of(model: nn.Module) -> dict[str, Any] | None:
    """The model's ``arch_config`` (set by :func:`senet_lib.create_model`) as plain JSON values."""
    config = getattr(model, "arch_config", None)
    return None if config is None else _plain(config)


def _plain(obj: Any) -> Any:
    """Tuples → lists, recursively, so configs compare equal after a JSON round trip."""
    return json.loads(json.dumps(obj, default=_json_default))


def describe_arch(config: Mapping[str, Any] | None) -> str:
    """``"se_resnet20 (10 classes)"``, with any extra options, e.g. ``"(10 classes, reduction=8)"``."""
    if not config:
        return "a model without arch_config (not built by senet_lib.create_model)"
    parts = [f"{config.get('num_classes')} classes"]
    parts += [f"{k}={v}" for k, v in config.items() if k not in ("name", "num_classes")]
    return f"{config.get('name')} ({', '.join(parts)})"


def _state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of ``model`` (unwrapping ``torch.compile``), detached, on the CPU."""
    model = getattr(model, "_orig_mod", model)
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    trainer_state: dict | None,
    epoch: int,
    history: Iterable[Mapping[str, Any]],
    config: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a resumable checkpoint atomically and return its path.

    Args:
        path: where to write (usually ``<run_dir>/checkpoint.pt``).
        model: the network; its ``arch_config`` lets :func:`load_checkpoint` rebuild it.
        trainer_state: :meth:`senet_lib.train.Trainer.state_dict` (optimizer, scheduler, scaler), or None.
        epoch: the number of finished epochs.
        history: one plain dict per finished epoch.
        config: the training recipe as plain values (``TrainConfig.to_dict()``).
        extra: further plain values, e.g. RNG state.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "arch_config": arch_config_of(model),
        "state_dict": _state_dict(model),
        "trainer_state": trainer_state,
        "epoch": int(epoch),
        "history": _plain([dict(row) for row in history]),
        "config": _plain(dict(config)),
        "extra": dict(extra or {}),
        "torch_version": str(torch.__version__),
        "commit": git_commit(),
    }
    return atomic_write(path, lambda handle: torch.save(payload, handle))


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint or weights file as a dict of tensors and plain values (``weights_only``).

    Raises:
        CheckpointError: the file is missing, truncated/corrupt, or not written by senet_lib.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"There is no checkpoint at {path}: train the model first or check the path.")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # truncated zip, bad pickle, disallowed global, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path} could not be read as a checkpoint ({reason[:160]}); it is corrupt, truncated or not a "
            "senet_lib file: delete it and train again, or restore it from a backup."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") not in (CHECKPOINT_FORMAT, WEIGHTS_FORMAT):
        raise CheckpointError(
            f"{path} is not a senet_lib checkpoint or weights file: save it with "
            "senet_lib.checkpoint.save_checkpoint or export_weights, or load it with torch.load yourself."
        )
    return payload


def load_checkpoint(
    path: str | Path, model: nn.Module | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load weights from a checkpoint (or an exported weights file) into ``model``.

    Args:
        path: a file written by :func:`save_checkpoint` or :func:`export_weights`.
        model: the network to fill in; ``None`` builds it from the stored ``arch_config``.
        device: where the returned model (and the returned tensors) live.

    Returns:
        ``(model, payload)``: the model in eval mode, and the file's contents (``epoch``,
        ``history``, ``config``, ``trainer_state``, ... for checkpoints; ``meta`` for weights).

    Raises:
        CheckpointError: missing, corrupt or foreign file.
        ValueError: ``model`` is another architecture than the one stored (both are named).
    """
    path = Path(path)
    payload = read_checkpoint(path, device=device)
    stored = payload.get("arch_config")
    if model is None:
        if not stored:
            raise CheckpointError(
                f"{path} does not record its architecture: build the model yourself and pass model=..."
            )
        options = {k: v for k, v in stored.items() if k not in ("name", "num_classes")}
        model = create_model(stored["name"], stored["num_classes"], **options)
    else:
        given = arch_config_of(model)
        if stored and given and _plain(stored) != given:
            raise ValueError(
                f"{path.name} holds {describe_arch(stored)}; the model you passed is {describe_arch(given)}: "
                "build that architecture or pass model=None."
            )
    state = payload["state_dict"]
    if payload.get("format") == WEIGHTS_FORMAT:
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    target = getattr(model, "_orig_mod", model)
    try:
        target.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"The weights in {path.name} ({describe_arch(stored)}) do not fit the model you passed "
            f"({describe_arch(arch_config_of(model))}): build that architecture or pass model=None."
        ) from err
    model.to(device)
    model.eval()
    return model, payload


# --------------------------------------------------------------------------- shareable weights
def export_weights(model: nn.Module, path: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write a small fp16 weights file plus a sidecar JSON (``path.with_suffix(".json")``).

    The sidecar holds ``arch_config``, ``recipe``, ``data``, ``accuracy`` (from ``meta``; any
    other ``meta`` keys are kept too), the SHA-256 and size of the weights file, the torch
    version and the commit. :func:`load_checkpoint` reads the weights back as fp32.

    Returns:
        The path of the weights file.
    """
    path = Path(path)
    arch = arch_config_of(model)
    if arch is None:
        raise ValueError(
            "export_weights needs a model built by senet_lib.create_model (it has no arch_config), "
            "so that the file records which architecture to rebuild."
        )
    meta = _plain(dict(meta))
    state = {k: v.half() if v.is_floating_point() else v for k, v in _state_dict(model).items()}
    payload = {
        "format": WEIGHTS_FORMAT,
        "format_version": FORMAT_VERSION,
        "arch_config": arch,
        "state_dict": state,
        "meta": meta,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))
    size = path.stat().st_size
    if size > MAX_EXPORT_BYTES:
        warnings.warn(
            f"{path.name} is {size / 2**20:.1f} MiB, above the {MAX_EXPORT_BYTES // 2**20} MiB meant for files "
            "kept in git: share it outside the repository.",
            stacklevel=2,
        )
    sidecar = {
        "file": path.name,
        "sha256": sha256_file(path),
        "bytes": size,
        "dtype": "float16",
        "arch_config": arch,
        "recipe": meta.get("recipe"),
        "data": meta.get("data"),
        "accuracy": meta.get("accuracy"),
        "commit": meta.get("commit", git_commit()),
        "torch_version": str(torch.__version__),
        **{k: v for k, v in meta.items() if k not in ("recipe", "data", "accuracy", "commit")},
    }
    atomic_write_json(path.with_suffix(".json"), sidecar)
    return path


def verify_weights(path: str | Path) -> dict[str, Any]:
    """Check an exported weights file against its sidecar's SHA-256 and return the sidecar.

    Raises:
        CheckpointError: the sidecar is missing or the digest differs (the file changed or is damaged).
    """
    path = Path(path)
    sidecar_path = path.with_suffix(".json")
    if not sidecar_path.is_file():
        raise CheckpointError(
            f"{path.name} has no sidecar {sidecar_path.name}: export it again with export_weights."
        )
    sidecar = json.loads(sidecar_path.read_text())
    actual = sha256_file(path)
    if actual != sidecar.get("sha256"):
        raise CheckpointError(
            f"{path.name} does not match the SHA-256 in {sidecar_path.name} (file changed or damaged): "
            "download or export it again."
        )
    return sidecar
