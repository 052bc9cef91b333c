#!/usr/bin/env python
"""The GPU campaign of issue #11: one named stage per device-tool command, within 9 minutes.

    python scripts/gpu_campaign.py prepare-carry [--wheels]      # here, before every device call
    python scripts/gpu_campaign.py run STAGE --out $OUT          # on the GPU machine
    python scripts/gpu_campaign.py run STAGE --out /tmp/x --dry-run   # anywhere: what it would run
    python scripts/gpu_campaign.py collect /work/.device/...     # here: merge what came back

Stages: smoke (pytest -m cuda), bench (SE-ResNet-50 / ResNet-50, every variant), headline
(SE-ResNet-50 then ResNet-50, profile ``gpu``), small (ResNet-20/56/110 and pre-activation
ResNet-164, with and without SE, profile ``he2016``, in parallel), ablation (``python -m senet_lib
ablate``), figures (notebook 06 from the trained SE-ResNet-50, and SE-ResNet-56 when its weights
are in pretrained/). A stage skips what ``results/`` (or ``figures/``) already holds, resumes runs
whose checkpoints are on the machine (``.gpu_state/runs``, kept while it stays warm) or came back
earlier (``.gpu_resume``), interrupts what still runs when its time is up, and writes at most
8 files to ``--out`` (see ``gpu_transfer.py``). README, "GPU campaign", has the command lines.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_jobs as jobs_mod  # noqa: E402
import gpu_transfer as transfer  # noqa: E402
from gpu_device import (  # noqa: E402
    STATE,
    CampaignError,
    Context,
    device_info,
    ensure_cifar,
    ensure_papermill,
    export_weights,
    pack,
    restore_state,
    smoke_record,
    stamp_records,
)
from gpu_jobs import RECORD, Budget, Job, Process, run_jobs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # senet_lib, without installing it (the GPU machine has no install)
STAGES = ("smoke", "bench", "headline", "small", "ablation", "figures")
HEADLINE_MODELS = ("se_resnet50", "resnet50")
SMALL_MODELS = ("resnet20", "resnet56", "resnet110", "preact_resnet164")
PROFILES = {"headline": "gpu", "small": "he2016"}
#: ``python -m senet_lib ablate``'s folders; check them against its --help once that command is merged.
#: He et al. warm ResNet-110 (and the 164-layer one) up at lr 0.01 before going back to 0.1: the he2016 recipe
#: keeps that off for its default ResNet-20s, so the deep nets ask for it.
DEEP_WARMUP = ("--warmup-epochs", "1", "--warmup-constant", "0.1")
DEEP_MODELS = ("resnet110", "preact_resnet164")
#: Notebook 07's grids on SE-ResNet-20 with the CPU profile's recipe (40 epochs one-cycle), so GPU and CPU
#: grids compare; every ablation of senet_lib.train.ABLATIONS, the seeds of the call, several at once.
ABLATE_MODEL = "se_resnet20"
ABLATE_PROFILE = "cpu"
ABLATE_ARGS = (
    "--model",
    ABLATE_MODEL,
    "--profile",
    ABLATE_PROFILE,
    "--dataset",
    "cifar10",
    "--full-data",
    "--no-download",
    "--workers",
    "8",
    "--results-dir",
    "{results}",
    "--save-dir",
    "{runs}",
)
DEFAULT_STATE_BUDGET = 34 * 1024 * 1024  # without .gpu_carry/commit.json's own figure


# --------------------------------------------------------------------------- what results/ holds
def load_records(*folders: Path) -> list[dict[str, Any]]:
    records = []
    for folder in folders:
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                record = json.loads(path.read_text())
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def _on_cuda(record: dict[str, Any]) -> bool:
    return str(record.get("device") or "").startswith("cuda")


def finished_run(records: list[dict[str, Any]], model: str, profile: str, seed: int) -> dict[str, Any] | None:
    """A finished CUDA training record of ``model`` with ``profile`` and ``seed`` on real CIFAR-10."""
    for r in records:
        data, arch = r.get("dataset") or {}, r.get("model") or {}
        if (
            r.get("kind") == "train"
            and arch.get("name") == model
            and (r.get("profile") or (r.get("environment") or {}).get("profile")) == profile
            and r.get("seed") == seed
            and data.get("name") == "cifar10"
            and not data.get("synthetic")
            and r.get("epochs") == (r.get("recipe") or {}).get("epochs")
            and _on_cuda(r)
        ):
            return r
    return None


def twin(model: str) -> str:
    return model[3:] if model.startswith("se_") else "se_" + model


def remaining_seconds(records: list[dict[str, Any]], job: Job) -> float | None:
    """Seconds ``job`` still needs, from a finished record of the same model (else its SE/plain twin)
    and profile, less the share of epochs already done; None when no such record exists."""
    for model in (job.model, twin(job.model or "")):
        for r in records:
            if (
                r.get("kind") == "train"
                and (r.get("model") or {}).get("name") == model
                and r.get("profile") == job.profile
                and _on_cuda(r)
            ):
                epochs = (r.get("recipe") or {}).get("epochs") or r.get("epochs") or 1
                return float(r.get("wall_time_s", 0.0)) * max(0.0, 1 - job.epochs_done / epochs)
    return None


# --------------------------------------------------------------------------- checks
def require_profile(name: str, stage: str) -> None:
    from senet_lib.env import PROFILES as known

    if name not in known:
        raise CampaignError(
            f"the {stage} stage trains with the '{name}' profile, which this commit's senet_lib does not have "
            f"(it has {', '.join(known)}): merge the branch that adds it, then run the stage again."
        )


def require_ablate() -> None:
    from senet_lib.cli.parser import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "ablate" not in sub.choices:
        raise CampaignError(
            "`python -m senet_lib ablate` does not exist in this commit: merge the branch that adds notebook 07's "
            "grid command, then run the ablation stage again."
        )


@functools.cache
def state_bytes(model: str) -> int:
    """Bytes of a resumable checkpoint of ``model`` (fp32 weights and SGD momentum, buffers, slack)."""
    from senet_lib.models import create_model

    net = create_model(model, 10)
    params = sum(p.numel() for p in net.parameters())
    return 8 * params + 4 * sum(b.numel() for b in net.buffers()) + 256 * 1024


# --------------------------------------------------------------------------- stages
def _train_job(ctx: Context, model: str, profile: str, seed: int, **kwargs: Any) -> Job:
    name = f"{model}-cifar10-{profile}-seed{seed}"
    argv = [
        ctx.python,
        "-m",
        "senet_lib",
        "train",
        "--profile",
        profile,
        "--model",
        model,
        "--dataset",
        "cifar10",
    ]
    argv += ["--seed", str(seed), "--full-data", "--no-download", "--resume", "--record", "--no-progress"]
    argv += ["--results-dir", str(ctx.work / "results"), "--save-dir", str(ctx.runs), "--run-name", name]
    job = Job(
        name,
        argv + list(ctx.extra),
        model=model,
        seed=seed,
        profile=profile,
        run_dir=ctx.runs / name,
        **kwargs,
    )
    done = finished_run(ctx.records, model, profile, seed)
    if done is not None:
        job.skip = f"results/ holds it ({done.get('run_name') or done.get('created')})"
    elif (job.run_dir / RECORD).is_file():
        job.skip = "finished on this machine by an earlier call, whose fetched files hold its record"
    job.estimate = lambda: remaining_seconds(ctx.records + load_records(ctx.work / "results"), job)
    return job


def plan_smoke(ctx: Context) -> list[Job]:
    xml = ctx.work / "logs" / "smoke.xml"
    argv = [ctx.python, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-p", "no:cacheprovider"]
    job = Job("smoke", argv + ["--junitxml", str(xml)] + list(ctx.extra))
    for r in ctx.records:
        if (
            r.get("kind") == "cuda-smoke"
            and r.get("commit") == ctx.commit
            and r.get("passed")
            and not r.get("failed")
        ):
            job.skip = f"results/ holds a passing smoke record for commit {ctx.commit}"
    return [job]


def plan_bench(ctx: Context) -> list[Job]:
    argv = [ctx.python, "-m", "senet_lib", "bench", "--profile-trace", "--out", str(ctx.work / "results")]
    job = Job("bench", argv + list(ctx.extra))
    for r in ctx.records:
        models = set((r.get("settings") or {}).get("models") or ())
        if r.get("kind") == "benchmark" and _on_cuda(r) and models >= set(HEADLINE_MODELS):
            job.skip = (
                f"results/ holds a CUDA benchmark of {', '.join(HEADLINE_MODELS)} ({r.get('device_name')})"
            )
    return [job]


def plan_headline(ctx: Context) -> list[Job]:
    return [_train_job(ctx, m, PROFILES["headline"], s) for s in ctx.seeds for m in HEADLINE_MODELS]


def plan_small(ctx: Context) -> list[Job]:
    jobs = []
    for seed in ctx.seeds:
        for base in SMALL_MODELS:
            for model in ("se_" + base, base):
                job = _train_job(ctx, model, PROFILES["small"], seed, carry_state=True)
                if base in DEEP_MODELS:
                    job.argv += list(DEEP_WARMUP)
                job.state_bytes = state_bytes(model)
                jobs.append(job)
    return jobs


def plan_ablation(ctx: Context) -> list[Job]:
    folders = {"results": ctx.work / "results", "runs": ctx.runs}
    from senet_lib.train import ABLATIONS

    seeds = ["--seeds", *(str(s) for s in ctx.seeds)]
    jobs = []
    for name in ABLATIONS:
        argv = [ctx.python, "-m", "senet_lib", "ablate", name, *(a.format(**folders) for a in ABLATE_ARGS)]
        jobs.append(Job(f"ablation-{name}", argv + seeds + list(ctx.extra)))
    return jobs


def plan_figures(ctx: Context) -> list[Job]:
    jobs, se50 = [], ctx.runs / f"se_resnet50-cifar10-{PROFILES['headline']}-seed{ctx.seeds[0]}"
    sources = [("se_resnet50", se50 / jobs_mod.CHECKPOINT, ctx.work / "figures")]
    small = sorted((ctx.root / "pretrained").glob(f"se_resnet56_cifar10_*ep_seed{ctx.seeds[0]}.pt"))
    if small:
        sources.append(("se_resnet56", small[-1], ctx.work / "figures" / "se_resnet56"))
    for model, checkpoint, figures in sources:
        notebook = ctx.work / "logs" / f"06_{model}.ipynb"
        argv = [
            ctx.python,
            "-m",
            "papermill",
            "notebooks/06_excitation_per_class.ipynb",
            str(notebook),
            "-k",
            "python3",
        ]
        for name, value in (("CHECKPOINT", checkpoint), ("DATASET", "cifar10"), ("TRAIN_SUBSET", "None")):
            argv += ["-p", name, str(value)]
        argv += ["-p", "TEST_SUBSET", "None", "-p", "IMAGES_PER_CLASS", "50", *ctx.extra]
        env = {
            "MPLBACKEND": "Agg",
            "SENET_FIGURES_DIR": str(figures),
            "SENET_RESULTS_DIR": str(ctx.root / STATE / "nb06"),
        }
        job = Job(
            f"figures-{model}",
            argv,
            model=model,
            env=env | {"SENET_CHECKPOINT_DIR": str(ctx.root / STATE / "nb06")},
        )
        shown = (
            ctx.root
            / "figures"
            / ("" if model == "se_resnet50" else model)
            / "06_fig6_class_excitations.json"
        )
        if shown.is_file() and json.loads(shown.read_text()).get("model") == model:
            job.skip = f"{shown.relative_to(ctx.root)} already shows {model}"
        elif model == "se_resnet50" and not (se50 / RECORD).is_file():
            job.skip = (
                f"no finished SE-ResNet-50 run on this machine ({se50.relative_to(ctx.root)}): its weights are too "
                "large to travel, so run the headline stage on the same warm machine just before"
            )
        jobs.append(job)
    return jobs


PLANNERS = {s: globals()[f"plan_{s}"] for s in STAGES}
#: What each stage needs from senet_lib that other branches add (raises CampaignError when missing).
CHECKS = {
    "headline": lambda: require_profile(PROFILES["headline"], "headline"),
    "small": lambda: require_profile(PROFILES["small"], "small"),
    "ablation": require_ablate,
}
NEEDS_CIFAR = {"headline", "small", "ablation", "figures"}


# --------------------------------------------------------------------------- one stage
def _commit(root: Path) -> str:
    if (root / ".git").exists():
        from senet_lib.env import git_commit

        return git_commit()
    return transfer.device_commit(root)


def print_plan(stage: str, jobs: list[Job], max_parallel: int, state_budget: int, log=print) -> None:
    log(
        f"stage {stage}: {len(jobs)} job(s), at most {max_parallel} at once, state budget {state_budget / transfer.MiB:.0f} MiB"
    )
    wave = {j.key for j in jobs_mod.first_wave(jobs, max_parallel, state_budget)}
    for job in jobs:
        if job.skip:
            log(f"  [skip]   {job.key}: {job.skip}")
            continue
        what = f"resume after epoch {job.epochs_done}" if job.holds_state else "new"
        when = "starts first" if job.key in wave else "waits"
        state = f", state {job.state_bytes / transfer.MiB:.1f} MiB" if job.carry_state else ""
        log(f"  [run]    {job.key} ({what}, {when}{state}): {shlex.join(job.argv)}")


def state_budget_for(root: Path, state_budget_mib: float | None) -> int:
    """Bytes of resume state that may travel back: ``--state-budget-mib``, else the room
    ``.gpu_carry/commit.json`` leaves beside the tree and the CIFAR pack (else 34 MiB).

    A run that finishes frees its state (8 bytes a parameter) and adds its fp16 weights (2 bytes a
    parameter) to pretrained/, and so to the tree the next call sends: what travels only shrinks."""
    room = transfer.carried_room(root)
    if state_budget_mib is not None:
        return int(state_budget_mib * transfer.MiB)
    return room if room is not None else DEFAULT_STATE_BUDGET


def run_stages(
    stages: tuple[str, ...],
    out: Path,
    *,
    root: Path = ROOT,
    seeds: tuple[int, ...] = (0,),
    budget_s: float = 540.0,
    max_parallel: int | None = None,
    state_budget_mib: float | None = None,
    overcommit: bool = False,
    export_seeds: tuple[int, ...] = (0,),
    dry_run: bool = False,
    extra: tuple[str, ...] = (),
    launch=None,
    log=print,
    clock=None,
    sleep=None,
) -> int:
    """Run ``stages`` one after the other within ``budget_s`` seconds in all (each planned when the
    one before has ended, so ``headline figures`` finds the SE-ResNet-50 just trained), then write
    what comes back into ``out``."""
    budget = Budget(budget_s, clock=clock or time.monotonic)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    name = "+".join(stages)
    work = root / STATE / "work" / f"{name}-{started[:19].replace(':', '')}"
    records = load_records(root / "results")
    ctx = Context(root, work, seeds=seeds, extra=extra, records=records, commit=_commit(root))
    state_budget = state_budget_for(root, state_budget_mib)
    if not dry_run:
        for stage in stages:  # fail before any work, not after minutes of it
            CHECKS.get(stage, lambda: None)()
        restore_state(root, log)
        out.mkdir(parents=True, exist_ok=True)
        for folder in ("results", "pretrained", "figures", "logs"):
            (work / folder).mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {}
    jobs: list[Job] = []
    for stage in stages:
        parallel = max_parallel or (16 if stage == "small" else 1)
        planned = PLANNERS[stage](ctx)
        for job in planned:
            job.export = stage == "small" and job.seed in export_seeds
            if overcommit:
                job.carry_state = False  # its state may stay on this machine only: lost if it goes cold
        print_plan(stage, planned, parallel, state_budget, log)
        jobs += planned
        if dry_run:
            continue
        todo = [j for j in planned if not j.skip]
        if any(j.status == "failed" for j in jobs):
            for job in todo:
                job.status = "not started: an earlier stage of this command failed (fix it first)"
            log(f"{stage}: not started, an earlier stage of this command failed")
            continue
        if stage in NEEDS_CIFAR and todo:
            ensure_cifar(ctx, log)
        if stage == "figures" and todo:
            ensure_papermill(ctx, todo, log)
        if not info:
            info = device_info(ctx.python)
            log(f"device: {json.dumps(info)}; commit {ctx.commit}")
        _run_planned(ctx, stage, todo, budget, info, parallel, state_budget, launch, log, sleep)
    if dry_run:
        log("dry run: nothing was started.")
        for stage in stages:  # a missing profile or command still fails the dry run
            CHECKS.get(stage, lambda: None)()
        return 0
    stamp_records(ctx, jobs, info, name)
    packed = pack(ctx, out, state_budget, log)
    manifest = {
        "stage": name,
        "started": started,
        "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    manifest |= {"commit": ctx.commit, "device": info, "seeds": list(seeds), "budget_s": budget_s}
    manifest |= {"elapsed_s": round(budget.elapsed(), 1), "jobs": [j.describe() for j in jobs], **packed}
    (out / transfer.MANIFEST).write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    return 1 if any(j.status == "failed" for j in jobs) else 0


def _run_planned(ctx, stage, todo, budget, info, parallel, state_budget, launch, log, sleep) -> None:
    """Run one stage's jobs (environment, hooks after each finishes) and log how each ended."""
    if not todo:
        log(f"{stage}: nothing to do, every job is skipped.")
        return
    threads = str(max(1, (os.cpu_count() or 1) // max(1, min(parallel, len(todo)))))
    pythonpath = os.pathsep.join(p for p in (str(ctx.root), os.environ.get("PYTHONPATH")) if p)
    for job in todo:
        job.env = {
            "OMP_NUM_THREADS": threads,
            "SENET_COMMIT": ctx.commit,
            "PYTHONPATH": pythonpath,
            **job.env,
        }

    def finished(job: Job) -> None:
        if job.export:
            export_weights(ctx, job, log)
        if stage == "smoke":
            path = smoke_record(ctx, job, info)
            log(
                f"smoke record: {path}"
                if path
                else "no CUDA here: every test skipped, no smoke record written"
            )

    launch = launch or (lambda job: Process(job, ctx.work / "logs" / f"{job.key}.log", ctx.root))
    run_jobs(
        todo, budget, launch, max_parallel=parallel, state_budget=state_budget, log=log, on_finish=finished,
        sleep=sleep or time.sleep,
    )  # fmt: skip
    for job in todo:
        rc = f", exit {job.rc}" if job.rc else ""
        log(f"{job.key}: {job.status} after {job.seconds:.0f} s, epoch {job.epochs_done}{rc}")


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run one stage within the time budget (on the GPU machine)")
    p.add_argument("stages", nargs="+", choices=STAGES, metavar="STAGE", help=" | ".join(STAGES))
    p.add_argument(
        "--out", type=Path, required=True, help="folder for what comes back ($OUT on the GPU machine)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--budget-s", type=float, default=540.0, help="seconds for the whole command (default 540)"
    )
    p.add_argument("--max-parallel", type=int, help="processes at once (default: 16 for small, else 1)")
    p.add_argument(
        "--state-budget-mib",
        type=float,
        help="resume state that may travel back (default: the room .gpu_carry/commit.json leaves, else 34)",
    )
    p.add_argument(
        "--overcommit",
        action="store_true",
        help="start runs past the state budget (their state stays on the GPU machine: lost if it goes cold)",
    )
    p.add_argument(
        "--export-seeds", type=int, nargs="*", default=[0], help="seeds whose weights go to pretrained/"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and the commands; run nothing")
    p.add_argument(
        "--extra", nargs=argparse.REMAINDER, default=[], help="arguments added to every job's command"
    )
    p = sub.add_parser("prepare-carry", help=f"fill {transfer.CARRY}/ (and {transfer.WHEELS}/) here")
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the project's shared/ folder")
    p.add_argument("--wheels", action="store_true", help="also download the figures stage's wheels")
    p = sub.add_parser("collect", help="merge a fetched $OUT into results/, pretrained/, figures/")
    p.add_argument("fetched", type=Path)
    args = parser.parse_args(argv)
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    try:
        if args.command == "prepare-carry":
            summary = transfer.prepare_carry(ROOT, args.shared)
            if args.wheels:
                log(f"wheels: {', '.join(transfer.download_wheels(ROOT, sys.executable))}")
                summary["wheels"] = transfer.folder_bytes(ROOT / transfer.WHEELS)
            mib = {k: summary[k] / transfer.MiB for k in ("tree", "carry", "resume", "wheels")}
            log(
                f"commit {summary['commit']}; working tree {mib['tree']:.1f} MiB, {transfer.CARRY} {mib['carry']:.1f}, "
                f"{transfer.RESUME} {mib['resume']:.1f} ({len(summary['state_runs'])} runs), "
                f"{transfer.WHEELS} {mib['wheels']:.1f}"
            )
            for stages, extra in (("small, ablation", "resume"), ("figures", "wheels")):
                sent = mib["tree"] + mib["carry"] + mib[extra]
                if sent > transfer.CARRY_WARN_BYTES / transfer.MiB:
                    log(
                        f"WARNING: a {stages} call would send {sent:.1f} MiB, near the device tool's 64 MiB limit."
                    )
            return 0
        if args.command == "collect":
            done = transfer.collect(args.fetched, ROOT)
            for what, names in done.items():
                log(f"{what}: {len(names)}" + "".join(f"\n  {n}" for n in names))
            log("next: python scripts/build_results.py, then commit results/, pretrained/, figures/.")
            return 0
        rc = run_stages(
            tuple(args.stages), args.out, seeds=tuple(args.seeds), budget_s=args.budget_s, max_parallel=args.max_parallel,
            state_budget_mib=args.state_budget_mib, overcommit=args.overcommit,
            export_seeds=tuple(args.export_seeds), dry_run=args.dry_run, extra=tuple(args.extra), log=log,
        )  # fmt: skip
    except (CampaignError, transfer.TransferError) as err:
        log(f"gpu_campaign: {err}")
        rc = 2
    if args.command == "run" and not args.dry_run:
        args.out.mkdir(parents=True, exist_ok=True)
        manifest = args.out / transfer.MANIFEST
        if rc == 2 and not manifest.exists():
            manifest.write_text(
                json.dumps({"stage": "+".join(args.stages), "error": lines[-1], "files": {}}, indent=1) + "\n"
            )
        (args.out / "log.txt").write_text("\n".join(lines) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
