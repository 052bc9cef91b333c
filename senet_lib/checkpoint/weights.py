"""Shipped weights: exporting a small weights-only file and verifying one."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..env import git_commit
from .files import atomic_write, atomic_write_json, sha256_file
from .saved import FORMAT_VERSION, WEIGHTS_FORMAT, CheckpointError, _plain, _state_dict, arch_config_of

#: Exported weight files larger than this trigger a warning: they are meant to live in git.
MAX_EXPORT_BYTES = 5 * 1024 * 1024


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
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"{sidecar_path} is not valid JSON ({err}): export {path.name} again with export_weights."
        ) from err
    if not isinstance(sidecar, dict):
        raise CheckpointError(f"{sidecar_path} is not a weights sidecar: export {path.name} again.")
    actual = sha256_file(path)
    if actual != sidecar.get("sha256"):
        raise CheckpointError(
            f"{path.name} does not match the SHA-256 in {sidecar_path.name} (file changed or damaged): "
            "download or export it again."
        )
    return sidecar
