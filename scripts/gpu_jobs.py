"""Jobs, the time budget and the scheduler of ``scripts/gpu_campaign.py`` (no torch, no senet_lib here).

A stage is a list of :class:`Job` (one process each). :func:`run_jobs` starts them in order, up to
``max_parallel`` at a time, as long as the :class:`Budget` leaves time and, for jobs whose resume
state must travel back, their state fits the carry budget; at the budget's end it interrupts what
still runs (SIGINT: a training keeps its last epoch's checkpoint) so that the command ends in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
RECORD = "record.json"


@dataclass
class Job:
    """One process of a stage. ``run_dir`` is set for trainings (their folder on the GPU machine)."""

    key: str
    argv: list[str]
    model: str | None = None
    seed: int | None = None
    profile: str | None = None
    run_dir: Path | None = None
    skip: str | None = None  # why it does not run (e.g. results/ holds its record)
    carry_state: bool = False  # its resume state must fit the state budget (it travels back)
    state_bytes: int = 0
    export: bool = False  # export fp16 weights when it finishes
    env: dict[str, str] = field(default_factory=dict)
    estimate: Callable[[], float | None] = lambda: None  # seconds it still needs, when known
    status: str = "pending"  # pending | running | finished | interrupted | failed | not started: ...
    rc: int | None = None
    seconds: float = 0.0
    concurrent: int = 0  # most jobs running at once while it ran

    @property
    def epochs_done(self) -> int:
        """Epochs in the run folder's ``history.json`` (0 when there is none)."""
        path = self.run_dir / HISTORY if self.run_dir else None
        if path is None or not path.is_file():
            return 0
        try:
            return len(json.loads(path.read_text()))
        except ValueError:
            return 0

    @property
    def holds_state(self) -> bool:
        """It has a checkpoint and no record yet: its state must survive until it finishes."""
        return bool(
            self.run_dir and (self.run_dir / CHECKPOINT).is_file() and not (self.run_dir / RECORD).is_file()
        )

    def describe(self) -> dict[str, Any]:
        keys = ("key", "model", "seed", "profile", "skip", "status", "rc", "seconds", "concurrent")
        return {k: getattr(self, k) for k in keys} | {"argv": self.argv, "epochs_done": self.epochs_done}


class Budget:
    """Seconds for the whole command; ``reserve`` of them are kept for stopping and packing."""

    def __init__(self, total: float, reserve: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.total, self.reserve, self.clock, self.start = total, reserve, clock, clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def work_left(self) -> float:
        """Seconds left for work before stopping starts."""
        return self.total - self.reserve - self.elapsed()

    def stopping(self) -> bool:
        return self.work_left() <= 0

    def allows(self, needed: float | None) -> bool:
        """Whether a job needing ``needed`` seconds (None: unknown) may start now."""
        return not self.stopping() and (needed is None or needed <= self.work_left())


class Handle(Protocol):
    def poll(self) -> int | None: ...
    def interrupt(self) -> None: ...
    def kill(self) -> None: ...


class Process:
    """A job's process in its own process group (SIGINT reaches it and its children only), but in the
    command's session: if the command is killed, the device tool ends it too (a new session would
    outlive the command and hold the GPU)."""

    def __init__(self, job: Job, log: Path, cwd: Path):
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **job.env}
        self.popen = subprocess.Popen(
            job.argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, process_group=0
        )

    def poll(self) -> int | None:
        rc = self.popen.poll()
        if rc is not None:
            self._log.close()
        return rc

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def interrupt(self) -> None:
        self._signal(signal.SIGINT)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


def _outcome(job: Job, rc: int) -> str:
    if rc == 0 and (job.run_dir is None or (job.run_dir / RECORD).is_file()):
        return "finished"
    if rc in (130, -signal.SIGINT, -signal.SIGKILL):
        return "interrupted"
    return "failed"


def run_jobs(
    jobs: list[Job],
    budget: Budget,
    launch: Callable[[Job], Handle],
    *,
    max_parallel: int = 1,
    state_budget: int = 0,
    grace: float = 45.0,
    poll_every: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
    on_finish: Callable[[Job], None] = lambda job: None,
) -> list[Job]:
    """Run ``jobs`` within ``budget`` (see the module's docstring); returns them with their status.

    Jobs that resume a checkpoint start first. A job with ``carry_state`` starts only while the
    state of every such job that holds some (started now or earlier, unfinished) plus its own stays
    within ``state_budget`` bytes. A job whose :attr:`Job.estimate` exceeds the time left is not
    started (its partial state could not travel anyway). ``on_finish`` runs after a job finishes.
    """
    pending = sorted((j for j in jobs if j.skip is None), key=lambda j: not j.holds_state)
    running: dict[str, tuple[Job, Handle, float]] = {}
    stop_at: float | None = None

    def reserved() -> int:
        return sum(
            j.state_bytes
            for j in jobs
            if j.carry_state and j.skip is None and (j.holds_state or j.key in running)
        )

    while pending or running:
        if budget.stopping() and stop_at is None:
            stop_at = budget.elapsed()
            for job, handle, _ in running.values():
                log(f"time is up: interrupting {job.key} (its last checkpoint is kept)")
                handle.interrupt()
            for job in pending:
                job.status = "not started: no time left"
            pending = []
        if stop_at is None:
            for job in list(pending):
                if len(running) >= max_parallel:
                    break
                if job.carry_state and not job.holds_state and reserved() + job.state_bytes > state_budget:
                    continue
                needed = job.estimate()
                if not job.holds_state and not budget.allows(needed):
                    job.status = f"not started: needs about {needed:.0f} s, {budget.work_left():.0f} s left"
                    pending.remove(job)
                    log(f"{job.key}: {job.status}")
                    continue
                pending.remove(job)
                job.status = "running"
                log(
                    f"start {job.key}"
                    + (f" (resuming after epoch {job.epochs_done})" if job.holds_state else "")
                )
                running[job.key] = (job, launch(job), budget.elapsed())
            if pending and not running:  # nothing runs and nothing fits: the state budget is too small
                for job in pending:
                    job.status = "not started: its state would not fit the state budget"
                    log(f"{job.key}: {job.status}")
                pending = []
        for job, _, _ in running.values():
            job.concurrent = max(job.concurrent, len(running))
        for key, (job, handle, started) in list(running.items()):
            rc = handle.poll()
            if rc is None:
                if stop_at is not None and budget.elapsed() - stop_at > grace:
                    log(f"{job.key} did not stop within {grace:.0f} s: killing it")
                    handle.kill()
                continue
            del running[key]
            job.rc, job.seconds, job.status = rc, budget.elapsed() - started, _outcome(job, rc)
            log(f"{job.status} {job.key} (exit {rc}, {job.seconds:.0f} s)")
            if job.status == "finished":
                on_finish(job)
        if running or pending:
            sleep(poll_every)
    return jobs


def first_wave(jobs: list[Job], max_parallel: int, state_budget: int) -> list[Job]:
    """The jobs :func:`run_jobs` starts first (time aside): resumes first, then in order while they fit."""
    wave: list[Job] = []
    reserved = sum(j.state_bytes for j in jobs if j.carry_state and j.skip is None and j.holds_state)
    for job in sorted((j for j in jobs if j.skip is None), key=lambda j: not j.holds_state):
        if len(wave) >= max_parallel:
            break
        if job.carry_state and not job.holds_state:
            if reserved + job.state_bytes > state_budget:
                continue
            reserved += job.state_bytes
        wave.append(job)
    return wave
