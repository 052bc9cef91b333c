"""Safe file output: atomic writes, umask permissions, writability checks and stale temp files."""

from __future__ import annotations

import errno
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
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it to ``path``
    (mode ``0o666 & ~umask``); on failure ``path`` is left as it was.

    Raises:
        OutputError: the folder cannot be created or written, or the disk is full.
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


def create_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to a new file ``path``, complete or not at all, never replacing one.

    Raises:
        FileExistsError: ``path`` exists (nothing was written).
        OutputError: the folder cannot be created or written, or the disk is full.
    """
    path = Path(path)
    data = (json.dumps(obj, indent=2, default=json_default) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _output_error(path, err) from err
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            raise
        except OSError as err:
            if err.errno not in _NO_HARD_LINKS:
                raise
            _create_excl(path, data)
    except FileExistsError:
        raise
    except OSError as err:
        raise _output_error(path, err) from err
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    _fsync_folder(path.parent)
    return path


#: ``os.link`` errors of file systems without hard links (FAT, some network and FUSE mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _create_excl(path: Path, data: bytes) -> None:
    """``data`` into a new file ``path`` (``O_EXCL``); a partial file is removed if writing fails."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def read_json(path: str | Path) -> Any:
    """The JSON value in the file ``path``.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not UTF-8 JSON, or is nested too deeply (said in words).
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(
            "it is nested too deeply to read (more levels than Python's parser allows; no senet_lib file "
            "comes near that)"
        ) from None


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
def check_writable(
    path: str | Path, hint: str = "choose a writable folder", names: Iterable[str] = ()
) -> None:
    """Create the folder ``path`` if needed and write (then remove) a probe file in it, before long work.

    ``hint`` ends the message; the paths of ``names`` (files written there later) must fit the
    system's length limits. Folders it created are removed again when the check fails.

    Raises:
        OutputError: ``path`` is a file, is not UTF-8 text, is too long, cannot be created, or cannot be written.
    """
    path = Path(path).expanduser()
    check_fits(path, names, hint)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file, not a folder: {hint}.")
    created = [p for p in (path, *path.parents) if not os.path.lexists(p)]
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        for folder in created:  # deepest first: only the empty folders this call made
            try:
                folder.rmdir()
            except OSError:
                break
        reason = err.strerror or str(err) or type(err).__name__
        raise OutputError(f"Cannot write to the folder {path} ({reason}): {hint}.") from err


def check_fits(folder: str | Path, names: Iterable[str] = (), hint: str = "choose another folder") -> None:
    """Check that ``folder`` is UTF-8 text and ``folder/<name>`` (and its temporary file) fits the
    system's path and name limits.

    Raises:
        OutputError: one sentence naming the folder, the limit and ``hint``.
    """
    folder = Path(folder)
    try:
        str(folder).encode("utf-8")
    except UnicodeEncodeError:
        shown = ascii(str(folder))
        raise OutputError(
            f"The folder {shown} holds bytes that are not UTF-8 text, which senet_lib cannot record or print: "
            f"{hint}."
        ) from None
    limit_path, limit_name = _length_limits(folder)
    longest = max((f".{name}.XXXXXXXX.tmp" for name in names), key=len, default="")
    target = folder / longest if longest else folder
    too_long = [part for part in target.parts if len(os.fsencode(part)) > limit_name]
    if too_long:
        raise OutputError(
            f"{too_long[0][:60]}… is longer than the {limit_name} bytes a file or folder name may have here: {hint}."
        )
    size = len(os.fsencode(str(target)))
    if size >= limit_path:
        raise OutputError(
            f"{str(folder)[:60]}… is too long a path: the files written in it would be {size} bytes long, and "
            f"this system allows {limit_path - 1}: {hint}."
        )


def _is_dir(path: Path) -> bool:
    """``path.is_dir()``, False for a name too long to look up."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _length_limits(folder: Path) -> tuple[int, int]:
    """(PATH_MAX, NAME_MAX) where ``folder`` is (or would be created), with POSIX's usual 4096 and 255."""
    existing = next((p for p in (folder, *folder.parents) if _is_dir(p)), Path("."))
    limits = []
    for name, default in (("PC_PATH_MAX", 4096), ("PC_NAME_MAX", 255)):
        try:
            value = os.pathconf(existing, name)
        except (OSError, ValueError, AttributeError):  # Windows, or a file system that does not say
            value = -1
        limits.append(value if value and value > 0 else default)
    return limits[0], limits[1]


def stale_temp_pattern(name: str) -> re.Pattern[str]:
    """The names :func:`atomic_write` gives its temporary files for ``name`` (``.name.XXXXXXXX.tmp``)."""
    return re.compile(re.escape(f".{name}.") + r"[A-Za-z0-9_]+\.tmp")


def remove_stale_temps(folder: str | Path, names: Iterable[str], min_age: float = 0.0) -> list[Path]:
    """Delete and return the temporary files a killed :func:`atomic_write` of ``names`` left in ``folder``
    (at least ``min_age`` s old); call it only while holding the folder (:func:`claim_run_folder`)."""
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
