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
next run that claims the folder (:func:`remove_stale_temps`). :func:`check_writable` tests an
output folder before any work starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import socket
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from .env import git_commit
from .errors import UserError
from .models import create_model

CHECKPOINT_FORMAT = "senet_lib.checkpoint"
WEIGHTS_FORMAT = "senet_lib.weights"
FORMAT_VERSION = 1
#: Exported weight files larger than this trigger a warning: they are meant to live in git.
MAX_EXPORT_BYTES = 5 * 1024 * 1024


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


class OutputError(UserError, OSError):
    """An output folder or file that cannot be written (not a folder, no permission, full disk)."""


class RunFolderBusy(UserError):
    """Another process holds the run folder's lock; ``holder`` is what its lock file says."""

    def __init__(self, message: str, holder: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.holder = dict(holder)


# --------------------------------------------------------------------------- atomic writes
def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it to ``path``.

    If ``write`` (or anything before the rename) fails, the temporary file is removed and an
    existing ``path`` is left exactly as it was. The file gets the mode the umask allows
    (``0o666 & ~umask``, as ``open()`` gives a new file), never mkstemp's private 0600.

    Raises:
        OutputError: the folder cannot be created or written, or the disk is full (one sentence;
            the previous ``path`` is untouched).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _output_error(path, err) from err
    tracked = None
    try:
        with os.fdopen(fd, "wb") as handle:
            tracked = _TrackedWriter(handle)
            write(tracked)  # type: ignore[arg-type]
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, path)
    except BaseException as err:
        Path(tmp_name).unlink(missing_ok=True)
        cause = tracked.error if tracked is not None and tracked.error is not None else err
        if isinstance(err, Exception) and isinstance(cause, OSError) and cause.errno is not None:
            raise _output_error(path, cause) from err
        raise
    _fsync_folder(path.parent)
    return path


class _TrackedWriter:
    """A binary file that remembers the ``OSError`` its ``write`` raised: ``torch.save`` turns a full
    disk into a ``RuntimeError("... unexpected pos ...")`` that no longer says why."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._handle.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        try:
            self._handle.flush()
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def _output_error(path: Path, err: OSError) -> OutputError:
    """One sentence for a write that failed for a reason of the environment (disk, permissions)."""
    reason = err.strerror or str(err) or type(err).__name__
    kept = (
        f"the previous {path.name} there is untouched"
        if path.is_file()
        else f"nothing was written to {path.name}"
    )
    return OutputError(
        f"Could not write {path} ({reason}): free space on that disk, fix the folder's permissions or "
        f"choose another folder, then run again; {kept}."
    )


def _umask() -> int:
    """The process's umask, read without changing it where Linux exposes it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting it, and put it back at once
    os.umask(mask)
    return mask


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


# --------------------------------------------------------------------------- output folders
def check_writable(path: str | Path, hint: str = "choose a writable folder") -> None:
    """Create the folder ``path`` if needed and write (then remove) a probe file in it.

    Call it before any long work whose results go there. ``hint`` ends the message (e.g.
    ``"pass a writable --out"`` on the command line).

    Raises:
        OutputError: ``path`` is a file, cannot be created, or cannot be written.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file, not a folder: {hint}.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise OutputError(f"Cannot write to the folder {path} ({reason}): {hint}.") from err


def stale_temp_pattern(name: str) -> re.Pattern[str]:
    """The names :func:`atomic_write` gives its temporary files for ``name`` (``.name.XXXXXXXX.tmp``)."""
    return re.compile(re.escape(f".{name}.") + r"[A-Za-z0-9_]+\.tmp")


def remove_stale_temps(folder: str | Path, names: Iterable[str], min_age: float = 0.0) -> list[Path]:
    """Delete the temporary files that a killed :func:`atomic_write` of one of ``names`` left in
    ``folder`` (only names matching :func:`stale_temp_pattern`, last modified at least ``min_age``
    seconds ago), and return them. Call it only while holding the folder (:func:`claim_run_folder`),
    so that no live writer owns them.
    """
    folder = Path(folder)
    patterns = [stale_temp_pattern(name) for name in names]
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not any(p.fullmatch(entry.name) for p in patterns):
            continue
        try:
            if not entry.is_file() or now - entry.stat().st_mtime < min_age:
                continue
            entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


# --------------------------------------------------------------------------- run folder claims
LOCK_NAME = "run.lock"
#: A lock of another host whose heartbeat is older than this (seconds) is taken over.
LOCK_STALE_AFTER = 15 * 60
LOCK_HEARTBEAT = 60.0
_HELD: dict[Path, _Claim] = {}
_HELD_GUARD = threading.Lock()


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time in clock ticks)`` of a Linux process, or None where /proc cannot tell."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _holder_alive(info: Mapping[str, Any], lock: Path) -> bool:
    """Whether the process a lock file names may still be running (True when it cannot be told).

    Another host's process cannot be asked: its lock counts as alive while its heartbeat (the
    lock file's modification time, renewed every :data:`LOCK_HEARTBEAT` seconds) is recent.
    """
    if info.get("host") != socket.gethostname():
        try:
            return time.time() - lock.stat().st_mtime < LOCK_STALE_AFTER
        except OSError:
            return False
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    boot = _boot_id()
    if boot and info.get("boot_id") and info["boot_id"] != boot:
        return False  # written before this machine (or container host) restarted
    if os.name == "nt":
        return True  # os.kill(pid, 0) would signal the process there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # e.g. another user's process: alive
    proc = _proc_stat(pid)
    if proc is not None:
        state, started = proc
        if state in ("Z", "X") or (info.get("proc_start") and started != info["proc_start"]):
            return False  # a zombie, or the pid now belongs to another process
    return True


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe_holder(info: Mapping[str, Any]) -> str:
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('started', '?')}" + (
        f": {info['command']}" if info.get("command") else ""
    )


class _Claim:
    """One process's hold on a run folder: the lock file's token, a nesting count and a heartbeat."""

    def __init__(self, folder: Path, lock: Path, token: str) -> None:
        self.folder, self.lock, self.token, self.depth = folder, lock, token, 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"run-lock {folder.name}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(LOCK_HEARTBEAT):
            with contextlib.suppress(OSError):
                os.utime(self.lock)

    def release(self) -> None:
        self._stop.set()
        try:
            info = _read_lock(self.lock)
        except FileNotFoundError:
            return
        if info is not None and info.get("token") == self.token:
            with contextlib.suppress(OSError):
                self.lock.unlink()


def _command() -> str:
    """This process's command line, short (``python -m senet_lib train ...``, a notebook kernel, ...)."""
    argv = [a for a in sys.argv if a] or ["python"]
    head = Path(argv[0])
    name = f"python -m {head.parent.name}" if head.name == "__main__.py" else head.name
    text = " ".join([name, *argv[1:]])
    return text if len(text) <= 200 else text[:197] + "..."


def _lock_info() -> dict[str, Any]:
    proc = _proc_stat(os.getpid())
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "command": _command(),
        "boot_id": _boot_id(),
        "proc_start": proc[1] if proc else None,
        "token": uuid.uuid4().hex,
    }


def _create_lock(lock: Path, info: Mapping[str, Any]) -> bool:
    """Create ``lock`` holding ``info`` if no lock exists (O_CREAT | O_EXCL); False if one does."""
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(info, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        lock.unlink(missing_ok=True)
        raise
    return True


def _take_over(lock: Path, stale: Mapping[str, Any] | None) -> None:
    """Move a stale lock aside, unless it changed since it was judged stale (then put it back)."""
    aside = lock.with_name(f".{lock.name}.{uuid.uuid4().hex[:8]}.stale")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return  # someone else moved it first
    try:
        moved = _read_lock(aside)
    except FileNotFoundError:
        return
    if moved != stale:  # another process claimed the folder in between: give its lock back
        with contextlib.suppress(OSError):
            os.link(aside, lock)
    aside.unlink(missing_ok=True)


@contextlib.contextmanager
def claim_run_folder(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder`` exclusively for this process while the ``with`` block runs.

    The claim is the lock file ``folder/run.lock``, created with ``O_CREAT | O_EXCL`` and holding
    the pid, host, start time and command of this process; it is removed when the block ends,
    also on an exception. Claims nest within one process. A lock whose process is gone (a dead pid
    on this host, or another host's lock silent for :data:`LOCK_STALE_AFTER` seconds) is taken over
    with a printed note.

    Raises:
        RunFolderBusy: another live run holds the folder (the message names it and what to do).
        OutputError: ``folder`` cannot be created or written.
    """
    folder = Path(folder).expanduser()
    key = folder.resolve()
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held.depth += 1
    if held is None:
        held = _acquire(folder)
        with _HELD_GUARD:
            _HELD[key] = held
    try:
        yield held.lock
    finally:
        with _HELD_GUARD:
            held.depth -= 1
            done = held.depth == 0
            if done:
                _HELD.pop(key, None)
        if done:
            held.release()


def _acquire(folder: Path) -> _Claim:
    """Create ``folder``'s lock for this process, taking over a stale one; see :func:`claim_run_folder`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise OutputError(
            f"Cannot create the run folder {folder} ({reason}): choose a writable folder."
        ) from err
    lock = folder / LOCK_NAME
    info = _lock_info()
    for _ in range(20):
        try:
            if _create_lock(lock, info):
                return _Claim(folder, lock, info["token"])
        except OSError as err:
            reason = err.strerror or str(err) or type(err).__name__
            raise OutputError(
                f"Cannot write to the run folder {folder} ({reason}): fix its permissions or choose another folder."
            ) from err
        try:
            other = _read_lock(lock)
        except FileNotFoundError:
            continue  # released meanwhile: try again
        if other is None:
            try:
                age = time.time() - lock.stat().st_mtime
            except OSError:
                continue  # released meanwhile: try again
            if age < 10:  # being written right now
                time.sleep(0.2)
                continue
        elif _holder_alive(other, lock):
            raise RunFolderBusy(
                f"The run folder {folder} is in use by another training run ({_describe_holder(other)}): "
                f"wait for it to finish or stop it, or use another run folder; if that run is no longer "
                f"running, delete {lock} and run again.",
                other,
            )
        what = (
            "an unreadable lock"
            if other is None
            else f"the lock of a run that is gone ({_describe_holder(other)})"
        )
        print(f"Note: taking over {folder}, which held {what}.", file=sys.stderr)
        _take_over(lock, other)
    raise RunFolderBusy(
        f"The run folder {folder} is being claimed by several runs at once: start one at a time, or delete "
        f"{lock} if no run uses it.",
        {},
    )


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

    The contents are checked too: a format version this code knows, a ``state_dict`` of named
    tensors with finite weights, and (for checkpoints) the epoch, history and recipe.

    Raises:
        CheckpointError: the file is missing, truncated/corrupt, not written by senet_lib, written by
            a newer senet_lib, or wrong inside (one sentence naming the file and the problem).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"There is no checkpoint at {path}: train the model first or check the path.")
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
            raise MissingArchitectureError(
                f"{path} does not record its architecture: build the model yourself and pass model=..."
            )
        options = {k: v for k, v in stored.items() if k not in ("name", "num_classes")}
        model = create_model(stored["name"], stored["num_classes"], **options)
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
        raise ArchitectureMismatchError(
            f"The weights in {path.name} ({describe_arch(stored)}) do not fit the model you passed "
            f"({describe_arch(arch_config_of(model))}): build that architecture or pass model=None.",
            stored,
            arch_config_of(model),
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
