"""An exclusive claim on a run folder (a lock file with a heartbeat; dead holders are taken over)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UserError
from .files import OutputError, read_json


class RunFolderBusy(UserError):
    """Another process holds the run folder's lock; ``holder`` is what its lock file says."""

    def __init__(self, message: str, holder: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.holder = dict(holder)


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
        info = read_json(path)
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
    try:
        key = folder.resolve()
    except (RuntimeError, OSError):  # a loop of symbolic links: creating the folder below says so
        key = folder.absolute()
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
