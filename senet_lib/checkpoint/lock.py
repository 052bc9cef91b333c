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


LOCK_NAME = "run.lock"
#: A lock of another host whose heartbeat (the file's mtime) is older than this (seconds) is taken over.
LOCK_STALE_AFTER = 15 * 60
LOCK_HEARTBEAT = 60.0
_HELD: dict[Path, list] = {}  # folder → [lock path, token, nesting depth, heartbeat stop event]
_HELD_GUARD = threading.Lock()


def _boot_id() -> str | None:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
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
    """Whether the process a lock file names may still run (True when it cannot be told)."""
    if info.get("host") != socket.gethostname():  # cannot be asked: alive while its heartbeat is recent
        try:
            return time.time() - lock.stat().st_mtime < LOCK_STALE_AFTER
        except OSError:
            return False
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    boot = _boot_id()
    if boot and info.get("boot_id") and info["boot_id"] != boot:
        return False  # written before this machine restarted
    if os.name == "nt":
        return True  # os.kill(pid, 0) would signal the process there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # e.g. another user's process: alive
    proc = _proc_stat(pid)
    # a zombie, or the pid now belongs to another process
    return not (
        proc and (proc[0] in ("Z", "X") or (info.get("proc_start") and proc[1] != info["proc_start"]))
    )


def _read_lock(path: Path) -> dict[str, Any] | None:
    """The lock's JSON, None where it is unreadable; FileNotFoundError where it is gone."""
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


def _lock_info() -> dict[str, Any]:
    argv = [a for a in sys.argv if a] or ["python"]
    head = Path(argv[0])
    command = " ".join(
        [f"python -m {head.parent.name}" if head.name == "__main__.py" else head.name, *argv[1:]]
    )
    proc = _proc_stat(os.getpid())
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "command": command if len(command) <= 200 else command[:197] + "...",
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
        moved = _read_lock(aside)
    except FileNotFoundError:
        return  # someone else moved it first
    if moved != stale:  # another process claimed the folder in between: give its lock back
        with contextlib.suppress(OSError):
            os.link(aside, lock)
    aside.unlink(missing_ok=True)


def _beat(lock: Path, stop: threading.Event) -> None:
    while not stop.wait(LOCK_HEARTBEAT):
        with contextlib.suppress(OSError):
            os.utime(lock)


@contextlib.contextmanager
def claim_run_folder(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder`` exclusively for this process while the ``with`` block runs.

    The claim is ``folder/run.lock`` (pid, host, start time and command), removed when the block
    ends, also on an exception; claims nest within one process. A lock whose process is gone (a
    dead pid here, or another host's lock silent for :data:`LOCK_STALE_AFTER` s) is taken over
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
            held[2] += 1
    if held is None:
        lock, token = _acquire(folder)
        held = [lock, token, 1, threading.Event()]
        threading.Thread(
            target=_beat, args=(lock, held[3]), name=f"run-lock {folder.name}", daemon=True
        ).start()
        with _HELD_GUARD:
            _HELD[key] = held
    try:
        yield held[0]
    finally:
        with _HELD_GUARD:
            held[2] -= 1
            done = held[2] == 0
            if done:
                _HELD.pop(key, None)
        if done:
            held[3].set()
            with contextlib.suppress(FileNotFoundError):
                if (_read_lock(held[0]) or {}).get("token") == held[1]:
                    with contextlib.suppress(OSError):
                        held[0].unlink()


def _acquire(folder: Path) -> tuple[Path, str]:
    """Create ``folder``'s lock for this process, taking over a stale one: ``(lock, token)``."""
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
                return lock, info["token"]
        except OSError as err:
            reason = err.strerror or str(err) or type(err).__name__
            raise OutputError(
                f"Cannot write to the run folder {folder} ({reason}): fix its permissions or choose another folder."
            ) from err
        try:
            other = _read_lock(lock)
            if other is None and time.time() - lock.stat().st_mtime < 10:  # being written right now
                time.sleep(0.2)
                continue
        except OSError:
            continue  # released meanwhile: try again
        if other is not None and _holder_alive(other, lock):
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
