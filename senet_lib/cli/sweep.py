"""The ``sweep`` command: several trainings at once on one machine, within a time budget.

A plan has one ``train`` argument line per run (``#`` comments). Up to ``--jobs`` run at a time, each
``train ... --resume --no-progress`` with its share of the CPU threads and its own log. Finished runs
are recorded and skipped next time; runs still going at the end of ``--budget`` get SIGTERM (their
last checkpoint stays) and are resumed by the next sweep.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_json, check_writable, read_json
from ..env import get_paths
from .common import UsageError

STATE_NAME = "sweep.json"


@dataclass
class Job:
    """One line of a plan: its ``train`` arguments, its log file and what became of it."""

    line: str
    args: list[str]
    log: Path
    state: str = "waiting"  # waiting | running | done | stopped | failed | skipped
    returncode: int | None = None
    seconds: float = 0.0
    process: subprocess.Popen | None = field(default=None, repr=False)
    started: float = 0.0
    signalled: bool = False  # the sweep sent SIGTERM (its budget ran out)

    @property
    def key(self) -> str:
        return hashlib.sha256(self.line.encode()).hexdigest()[:12]


def read_plan(path: Path, append: str = "") -> list[tuple[str, list[str]]]:
    """``(line, train arguments)`` for every run of the plan file (``append`` added to each)."""
    if not path.is_file():
        raise UsageError(f"No plan file at {path}: write one train command line per run (see sweep --help).")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(
            f"{path} is not UTF-8 text (byte {err.start + 1} is not), so it is not a plan file: write one train "
            "command line per run in a text editor."
        ) from None
    runs = []
    for number, raw in enumerate(content.splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        if append:
            text = f"{text} {append}"
        try:
            args = shlex.split(text)
        except ValueError as err:
            raise UsageError(f"{path}, line {number}: {err}; fix the quoting of that line.") from None
        if args[:1] == ["train"]:
            args = args[1:]
        if any(a in ("--resume", "--run-name") or a.startswith("--run-name=") for a in args):
            raise UsageError(
                f"{path}, line {number}: leave out --resume and --run-name; the sweep resumes every run "
                "and each keeps the name train gives it."
            )
        runs.append((" ".join(args), args))
    if not runs:
        raise UsageError(f"{path} names no run: write one train command line per run.")
    return runs


def threads_per_job(jobs: int) -> int:
    """The CPU threads each of ``jobs`` concurrent runs gets (at least one)."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_sweep(
    plan: Path,
    jobs: int = 1,
    budget: float | None = None,
    logs: Path | None = None,
    append: str = "",
    poll: float = 2.0,
    python: str = sys.executable,
) -> list[Job]:
    """Run the plan (see the module docstring); returns every job with its final state."""
    runs = read_plan(plan, append)  # a bad plan ends here, before any folder is created
    logs = logs if logs is not None else get_paths().checkpoints / "sweeps" / plan.stem
    check_writable(logs, hint="pass a writable --logs folder")
    state_path = logs / STATE_NAME
    done: dict[str, Any] = {}
    if state_path.is_file():
        try:
            done = read_json(state_path).get("done", {})
            if not isinstance(done, dict):
                raise ValueError("its 'done' entry is not a mapping")
        except (OSError, ValueError, AttributeError):
            raise UsageError(f"{state_path} is not a sweep state file: move it away and run again.") from None
    queue = [Job(line, args, logs / f"run{i:02d}.log") for i, (line, args) in enumerate(runs)]
    for job in queue:
        if job.key in done:
            job.state, job.returncode = "skipped", 0
    deadline = time.monotonic() + budget if budget is not None else None
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(threads_per_job(jobs)))
    waiting = [j for j in queue if j.state == "waiting"]
    running: list[Job] = []
    print(
        f"sweep {plan}: {len(queue)} runs, {len(queue) - len(waiting)} finished before, {jobs} at a time, "
        f"{env['OMP_NUM_THREADS']} thread(s) each"
        + (f", budget {budget:.0f} s" if budget is not None else "")
    )

    def save() -> None:
        atomic_write_json(state_path, {"plan": str(plan), "done": done, "jobs": [_row(j) for j in queue]})

    try:
        while waiting or running:
            out_of_time = deadline is not None and time.monotonic() >= deadline
            while waiting and len(running) < jobs and not out_of_time:
                job = waiting.pop(0)
                command = [python, "-m", "senet_lib", "train", *job.args, "--resume", "--no-progress"]
                with job.log.open("ab") as log:
                    log.write(f"$ {shlex.join(command)}\n".encode())
                    job.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
                job.state, job.started = "running", time.monotonic()
                running.append(job)
                print(f"  start  {job.line}  (log {job.log})")
            if out_of_time:
                for job in running:
                    if not job.signalled:
                        job.process.send_signal(signal.SIGTERM)
                        job.signalled = True
                for job in waiting:
                    job.state = "waiting"
                waiting = []
            for job in list(running):
                code = job.process.poll()
                if code is None:
                    continue
                job.returncode, job.seconds = code, time.monotonic() - job.started
                # stopped: by the budget (even before train could catch the signal), or by Ctrl-C
                stopped = code in (130, 143) or (job.signalled and code == -signal.SIGTERM)
                job.state = "done" if code == 0 else ("stopped" if stopped else "failed")
                if code == 0:
                    done[job.key] = {"line": job.line, "seconds": round(job.seconds, 1)}
                running.remove(job)
                print(f"  {job.state:<6} {job.line}  ({job.seconds:.0f} s, exit {code})")
                save()
            if running:
                time.sleep(poll)
    except KeyboardInterrupt:
        for job in running:
            job.process.send_signal(signal.SIGTERM)
        for job in running:
            job.process.wait()
            job.state = "stopped"
        save()
        raise
    save()
    return queue


def _row(job: Job) -> dict[str, Any]:
    return {"line": job.line, "state": job.state, "returncode": job.returncode, "log": str(job.log)}


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a plan; exit 0 when every run finished, 3 when some were stopped by the budget, 1 when one failed."""
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1 (got {args.jobs}).")
    if args.budget is not None and not args.budget > 0:
        raise UsageError(f"--budget is in seconds and must be above 0 (got {args.budget}).")
    queue = run_sweep(
        Path(args.plan).expanduser(),
        jobs=args.jobs,
        budget=args.budget,
        logs=Path(args.logs).expanduser() if args.logs else None,
        append=args.append or "",
    )
    counts = {
        s: sum(j.state == s for j in queue) for s in ("done", "skipped", "stopped", "waiting", "failed")
    }
    print("sweep: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if counts["failed"]:
        print("a failed run's log says why; fix it and run the same sweep again.", file=sys.stderr)
        return 1
    if counts["stopped"] or counts["waiting"]:
        print("the budget ran out: run the same sweep again to resume the rest.")
        return 3
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="several trainings at once, within a time budget (resumable)",
        description="Train every run of a plan file (one train command line per run), --jobs at a time. "
        "Finished runs are skipped, stopped ones resumed; at the end of --budget the running ones stop "
        "with their last checkpoint kept.",
    )
    p.add_argument("plan", help="the plan file: one line of train arguments per run")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--budget", type=float, help="seconds for the whole sweep (default: no limit)")
    p.add_argument(
        "--logs", help="folder for the logs and the state file (default: <checkpoints>/sweeps/<plan>)"
    )
    p.add_argument("--append", help='arguments added to every line, e.g. "--device cuda --save-every 1"')
    p.set_defaults(func=cmd_sweep)
