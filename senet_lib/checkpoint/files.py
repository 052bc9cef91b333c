"""Safe file output: atomic writes (temp file, fsync, rename), 0644 permissions, writability checks and stale
temp files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import torch

from ..errors import UserError


class OutputError(UserError, OSError):
    """An output folder or file that cannot be written (not a folder, no permission, full disk)."""


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
    text = json.dumps(obj, indent=2, default=json_default) + "\n"
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def json_default(obj: Any) -> Any:
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
