"""Saved networks: training checkpoints (saved, validated, loaded) and small shipped weights files."""

from __future__ import annotations

import json
import pickle
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..env import git_commit
from ..errors import UserError
from ..models import ArchConfig, create_model
from .files import atomic_write, atomic_write_json, json_default, read_json, sha256_file

WEIGHTS_FORMAT = "senet_lib.weights"
CHECKPOINT_FORMAT = "senet_lib.checkpoint"

FORMAT_VERSION = 1


class CheckpointError(ValueError, UserError):
    """A file that is missing, corrupt, truncated, or not a senet_lib checkpoint."""


class MissingArchitectureError(CheckpointError):
    """The file does not record its architecture, so the model cannot be rebuilt from it alone."""


class ArchitectureMismatchError(ValueError, UserError):
    """The file holds another architecture than the model given; ``stored`` and ``given`` name both."""

    def __init__(
        self, message: str, stored: Mapping[str, Any] | None, given: Mapping[str, Any] | None
    ) -> None:
        super().__init__(message)
        self.stored, self.given = stored, given


# --------------------------------------------------------------------------- architecture helpers
def arch_config_of(model: nn.Module) -> ArchConfig | None:
    """The model's ``arch_config`` (set by :func:`senet_lib.create_model`) as plain JSON values."""
    config = getattr(model, "arch_config", None)
    return None if config is None else _plain(config)


def _plain(obj: Any) -> Any:
    """Tuples → lists, recursively, so configs compare equal after a JSON round trip."""
    return json.loads(json.dumps(obj, default=json_default))


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

    ``trainer_state`` is :meth:`senet_lib.train.Trainer.state_dict` (or None), ``epoch`` the finished
    epochs, ``history`` one dict per epoch, ``config`` ``TrainConfig.to_dict()``, ``extra`` e.g. RNG state.
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
    """Load a checkpoint or weights file as a dict of tensors and plain values (``weights_only``), checked.

    Raises:
        CheckpointError: missing, corrupt, foreign, newer or wrong inside (one sentence naming the file).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder, not a checkpoint file: move it out of the way (a run writes its checkpoint "
            "there), or pass the file's path."
        )
    if not path.is_file():
        raise CheckpointError(f"There is no checkpoint at {path}: train the model first or check the path.")
    damaged = _damaged_member(path)
    if damaged:
        raise CheckpointError(
            f"{path} is damaged: {damaged} (bytes changed on disk or in a copy), so nothing was loaded from it: "
            "restore it from a backup or copy it again, or delete it and train again."
        )
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only refused a pickled object: nothing was run
        raise CheckpointError(
            f"{path} could not be read as a checkpoint: it holds a pickled Python object "
            f"({_refused_global(err)}), which senet_lib files never contain, so it is not a senet_lib file or "
            "it was altered (nothing in it was run): delete it and train again, or restore it from a backup."
        ) from None
    except Exception as err:  # truncated zip, garbled bytes, ...
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
    problem = _payload_problem(payload)
    if problem:
        raise CheckpointError(f"{path} is a senet_lib file but {problem}")
    return payload


def _damaged_member(path: Path) -> str | None:
    """What is wrong with the first member of a zip-format torch file that fails its CRC-32 (which
    ``torch.load`` does not check), as words that follow "it is damaged:", or None."""
    try:
        archive = zipfile.ZipFile(path)
    except Exception:  # not a zip, a truncated one, ...: torch.load's error names it
        return None
    with archive:
        for info in archive.infolist():
            try:
                with archive.open(info) as member:
                    while member.read(1 << 20):
                        pass
            except (zipfile.BadZipFile, EOFError, zlib.error) as err:
                if "CRC" in str(err):
                    return f"its part {info.filename} does not match the CRC-32 checksum stored with it"
                return f"its part {info.filename} has a garbled header or is cut short"
            except (OSError, NotImplementedError, RuntimeError):
                return None  # unreadable for another reason: torch.load says why
    return None


def _refused_global(err: Exception) -> str:
    """What torch's weights-only unpickler refused, without its advice to load unsafely."""
    match = re.search(r"(?:GLOBAL|global) ([\w.]+)", str(err))
    return f"a reference to {match.group(1)}" if match else "a type that weights-only loading refuses"


def _payload_problem(payload: Mapping[str, Any]) -> str | None:
    """What is wrong inside a loaded senet_lib file, as the end of one sentence, or None."""
    version = payload.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return f"its format version {version!r} is not valid: it is damaged; delete it and train again."
    if version > FORMAT_VERSION:
        return (
            f"it has format version {version}, newer than the {FORMAT_VERSION} this senet_lib reads: update "
            "senet_lib (git pull, or pip install -U) to load it."
        )
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not state:
        return "it holds no state_dict (weights): it is damaged or incomplete; delete it and train again."
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return (
            "its state_dict is not a mapping of names to tensors: it is damaged; delete it and train again."
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        return (
            f"{len(bad)} of its weight tensors hold NaN or infinite values (e.g. {bad[0]}), as after a "
            "diverged run: delete it and train again (lower the learning rate if it diverges)."
        )
    arch = payload.get("arch_config")
    if arch is not None and not (
        isinstance(arch, dict)
        and isinstance(arch.get("name"), str)
        and isinstance(arch.get("num_classes"), int)
    ):
        return "its arch_config is not a model description: it is damaged; delete it and train again."
    if payload.get("format") == CHECKPOINT_FORMAT:
        checks = [
            (
                "epoch",
                lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                "a count of epochs",
            ),
            (
                "history",
                lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
                "a list of rows",
            ),
            ("config", lambda v: isinstance(v, dict), "a recipe"),
            ("trainer_state", lambda v: v is None or isinstance(v, dict), "optimizer state"),
            ("extra", lambda v: isinstance(v, dict), "a mapping"),
        ]
        for key, ok, what in checks:
            if key not in payload or not ok(payload[key]):
                return f"its {key!r} entry is missing or is not {what}: it is damaged; delete it and train again."
    return None


def load_checkpoint(
    path: str | Path, model: nn.Module | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load weights from a checkpoint or exported weights file into ``model`` (None: build it from the
    stored ``arch_config``); returns ``(model in eval mode, payload)``.

    Raises:
        CheckpointError: missing, corrupt or foreign file.
        ValueError: ``model`` is another architecture than the one stored (both are named).
    """
    path = Path(path)
    payload = read_checkpoint(path, device=device)
    stored = payload.get("arch_config")
    built_here = model is None
    if model is None:
        if not stored:
            raise MissingArchitectureError(
                f"{path} does not record its architecture: build the model yourself and pass model=..."
            )
        options = {k: v for k, v in stored.items() if k not in ("name", "num_classes")}
        try:
            model = create_model(stored["name"], stored["num_classes"], **options)
        except (TypeError, ValueError) as err:  # an unknown name or option: damaged, or from another version
            raise CheckpointError(
                f"{path} records an architecture this senet_lib cannot build ({describe_arch(stored)}: "
                f"{str(err).rstrip('.')}): it is damaged or comes from another version of senet_lib; update "
                "senet_lib, or delete it and train again."
            ) from err
    else:
        given = arch_config_of(model)
        if stored and given and _plain(stored) != given:
            raise ArchitectureMismatchError(
                f"{path.name} holds {describe_arch(stored)}; the model you passed is {describe_arch(given)}: "
                "build that architecture or pass model=None.",
                stored,
                given,
            )
    state = payload["state_dict"]
    if payload.get("format") == WEIGHTS_FORMAT:
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    target = getattr(model, "_orig_mod", model)
    try:
        target.load_state_dict(state)
    except RuntimeError as err:
        given = arch_config_of(model)
        if not built_here and not (stored and given and _plain(stored) == given):
            raise ArchitectureMismatchError(
                f"The weights in {path.name} ({describe_arch(stored)}) do not fit the model you passed "
                f"({describe_arch(given)}): build that architecture or pass model=None.",
                stored,
                given,
            ) from err
        # The network the file itself records: its weights are not that network's.
        raise CheckpointError(
            f"{path} is a senet_lib file but its weights do not fit {describe_arch(stored)}, the network it "
            f"records ({_state_difference(target.state_dict(), state)}): it is damaged or was written by another "
            "version of senet_lib; delete it and train again, or restore it from a backup."
        ) from err
    model.to(device)
    model.eval()
    return model, payload


def _state_difference(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str:
    """How a state_dict differs from the model's: missing and unexpected names, or a wrong shape."""
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
    if extra:
        parts.append(f"{len(extra)} unexpected, e.g. {extra[0]}")
    shapes = [k for k in expected if k in found and tuple(expected[k].shape) != tuple(found[k].shape)]
    if shapes:
        key = shapes[0]
        parts.append(
            f"{key} has shape {list(found[key].shape)} where the network has {list(expected[key].shape)}"
        )
    return "; ".join(parts) or "tensors that cannot be copied into it"


#: Exported weight files larger than this trigger a warning: they are meant to live in git.
MAX_EXPORT_BYTES = 5 * 1024 * 1024


# --------------------------------------------------------------------------- shareable weights
def export_weights(model: nn.Module, path: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write a small fp16 weights file plus a sidecar JSON (``path.with_suffix(".json")``: ``meta``,
    SHA-256, size, torch version, commit); returns the weights file's path."""
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
        CheckpointError: the sidecar is missing or unreadable, or the digest differs.
    """
    path = Path(path)
    sidecar_path = path.with_suffix(".json")
    again = (
        f"export {path.name} again (scripts/export_pretrained.py, or senet_lib.checkpoint.export_weights) or "
        "fetch both files again from where they came (git checkout -- pretrained/, or the download)"
    )
    if not sidecar_path.is_file():
        raise CheckpointError(f"{path.name} has no sidecar {sidecar_path.name}: {again}.")
    try:
        sidecar = read_json(sidecar_path)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{sidecar_path} is not valid JSON ({err}): {again}.") from err
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("sha256"), str):
        raise CheckpointError(f"{sidecar_path} is not a weights sidecar (it holds no SHA-256): {again}.")
    try:
        actual = sha256_file(path)
    except OSError as err:
        raise CheckpointError(f"{path} cannot be read ({err.strerror or err}): {again}.") from err
    if actual != sidecar["sha256"]:
        raise CheckpointError(
            f"{path} does not match the SHA-256 in {sidecar_path.name} (the weights file changed or is damaged, "
            f"or the sidecar belongs to another export): {again}."
        )
    return sidecar
