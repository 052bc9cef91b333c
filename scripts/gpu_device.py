"""What ``scripts/gpu_campaign.py`` does on the GPU machine around its jobs: restoring carried runs,
unpacking CIFAR-10, installing the figures stage's wheels, reading the device, writing the smoke
record, stamping records, exporting small weights, and packing what goes back into ``$OUT``."""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gpu_jobs as jobs_mod
import gpu_transfer as transfer
from gpu_jobs import RECORD, Job

STATE = ".gpu_state"  # on the GPU machine: ignored, not carried, so kept between calls while it is warm
LOG_TAIL = 256 * 1024
BUNDLE_PIECES = 3  # at most 45 MiB of records, weights and figures a call (8 small nets' weights: 20 MB)


class CampaignError(Exception):
    """A stage cannot run as asked; the message says what to do."""


@dataclass
class Context:
    root: Path
    work: Path  # this command's records, weights, figures and logs, bundled into --out at the end
    python: str = sys.executable
    seeds: tuple[int, ...] = (0,)
    extra: tuple[str, ...] = ()
    records: list[dict[str, Any]] = field(default_factory=list)
    commit: str = "unknown"

    @property
    def runs(self) -> Path:
        return self.root / STATE / "runs"


# --------------------------------------------------------------------------- on the GPU machine
def restore_state(root: Path, log=print) -> list[str]:
    """Copy runs that came back from an earlier call (``.gpu_resume``) into ``.gpu_state/runs``
    where the machine holds none of them, or fewer epochs of them."""
    restored, runs = [], root / STATE / "runs"
    carried = root / transfer.RESUME
    for run in sorted(p for p in carried.iterdir() if p.is_dir()) if carried.is_dir() else []:
        here = Job(run.name, [], run_dir=runs / run.name)
        there = Job(run.name, [], run_dir=run)
        if (runs / run.name / RECORD).is_file() or here.epochs_done >= there.epochs_done:
            continue
        shutil.rmtree(runs / run.name, ignore_errors=True)
        shutil.copytree(run, runs / run.name)
        restored.append(run.name)
        log(f"restored {run.name} (epoch {there.epochs_done}) from {transfer.RESUME}")
    return restored


def ensure_cifar(ctx: Context, log=print) -> None:
    """Unpack the carried CIFAR-10 pack into ``data/`` unless it is there (about 25 s)."""
    if (ctx.root / "data" / "cifar-10-batches-py" / "batches.meta").is_file():
        return
    tool = ctx.root / transfer.CARRY / "shared" / "tools" / "cifar10_jpeg.py"
    if not tool.is_file():
        raise CampaignError(
            f"{tool.relative_to(ctx.root)} is missing: run `python scripts/gpu_campaign.py prepare-carry` on your "
            f"machine and name {transfer.CARRY} in the device tool's carry."
        )
    log("unpacking CIFAR-10 (JPEG q75 copy) into data/")
    subprocess.run([ctx.python, str(tool), str(ctx.root / "data")], check=True)


def ensure_papermill(ctx: Context, jobs: list[Job], log=print) -> None:
    """Make papermill and a Jupyter kernel importable for the figures jobs (from ``.gpu_wheels``)."""
    check = [ctx.python, "-c", "import papermill, ipykernel"]
    if subprocess.run(check, capture_output=True).returncode == 0:
        return
    wheels = sorted((ctx.root / transfer.WHEELS).glob("*.whl"))
    if not wheels:
        raise CampaignError(
            "papermill is not installed on this machine: run `python scripts/gpu_campaign.py prepare-carry --wheels` "
            f"on yours and name {transfer.WHEELS} in the device tool's carry."
        )
    site = Path("/tmp/senet_site")
    pip = [ctx.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--upgrade"]
    subprocess.run([*pip, "--target", str(site), *map(str, wheels)], check=True)
    path = os.pathsep.join(p for p in (str(site), str(ctx.root), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(check, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
    if done.returncode != 0:
        raise CampaignError(
            f"papermill still cannot be imported after installing {transfer.WHEELS} ({done.stderr.strip()[-300:]}): "
            "download its wheels again with `prepare-carry --wheels` for this machine's Python."
        )
    for job in jobs:
        job.env["PYTHONPATH"] = path
    log(f"installed {len(wheels)} wheels from {transfer.WHEELS} into {site}")


def device_info(python: str) -> dict[str, Any]:
    """GPU, driver, torch, CUDA and cuDNN versions: what the records' own fields leave out."""
    code = (
        "import json, torch; c = torch.cuda.is_available(); print(json.dumps({'torch': torch.__version__, "
        "'cuda': torch.version.cuda, 'cudnn': torch.backends.cudnn.version(), 'cuda_available': c, "
        "'gpu': torch.cuda.get_device_name(0) if c else None, 'gpu_count': torch.cuda.device_count()}))"
    )
    info: dict[str, Any] = {"host": platform.node(), "cpus": os.cpu_count()}
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    info |= json.loads(done.stdout) if done.returncode == 0 else {"torch_error": done.stderr[-500:]}
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        info["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True).stdout.strip()
    return info


def smoke_record(ctx: Context, job: Job, info: dict[str, Any]) -> Path | None:
    """``results/smoke_*.json`` from pytest's JUnit XML, on a CUDA machine only (elsewhere all skip)."""
    xml = ctx.work / "logs" / "smoke.xml"
    if not info.get("cuda_available") or not xml.is_file():
        return None
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    record = {
        "kind": "cuda-smoke",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": "cuda",
        "device_name": info.get("gpu"),
        "commit": ctx.commit,
        "command": shlex.join(job.argv[1:]),
        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        "failed": counts["failures"] + counts["errors"],
        "skipped": counts["skipped"],
        "wall_time_s": job.seconds,
        "gpu_campaign": info,
    }
    path = (
        ctx.work / "results" / f"smoke_cuda_{record['created'][:19].replace(':', '').replace('-', '')}Z.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def stamp_records(ctx: Context, jobs: list[Job], info: dict[str, Any], stage: str) -> None:
    """Add what the records leave out (GPU, driver, CUDA/cuDNN, concurrent runs) and the commit the
    GPU machine cannot ask git for, to every record this command wrote."""
    concurrent = {j.key: j.concurrent for j in jobs}
    for path in sorted((ctx.work / "results").glob("*.json")):
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or "gpu_campaign" in record:
            continue
        if record.get("commit") in (None, "unknown"):
            record["commit"] = ctx.commit
        if isinstance(record.get("environment"), dict) and record["environment"].get("commit") in (
            None,
            "unknown",
        ):
            record["environment"]["commit"] = ctx.commit
        run = record.get("run_name")
        record["gpu_campaign"] = info | {"stage": stage, "concurrent_runs": concurrent.get(run)}
        path.write_text(json.dumps(record, indent=1) + "\n")


def export_weights(ctx: Context, job: Job, log=print) -> None:
    """fp16 weights and sidecar of a finished small run into the bundle's ``pretrained/``."""
    argv = [ctx.python, str(ctx.root / "scripts" / "export_pretrained.py"), str(job.run_dir), "--out"]
    done = subprocess.run([*argv, str(ctx.work / "pretrained")], capture_output=True, text=True)
    log((done.stdout or done.stderr).strip())


# --------------------------------------------------------------------------- back to $OUT
def _trim_logs(work: Path) -> None:
    for path in (work / "logs").glob("*.log") if (work / "logs").is_dir() else []:
        if path.stat().st_size > LOG_TAIL:
            data = path.read_bytes()[-LOG_TAIL:]
            path.write_bytes(b"[... cut: the last %d bytes follow]\n" % LOG_TAIL + data)


def pack(ctx: Context, out: Path, state_budget: int, log=print) -> dict[str, Any]:
    """Write ``bundle.tar.NN`` and ``state.tar.NN`` into ``out``; return what the manifest says of them.

    The bundle holds this command's records, weights, figures and logs (executed notebooks, then
    logs, are left out if it would pass ``BUNDLE_PIECES`` pieces). The state holds the unfinished runs on
    this machine, most advanced first, as many as fit ``state_budget`` bytes and the files left.
    """
    _trim_logs(ctx.work)
    members = {str(p.relative_to(ctx.work)): p for p in sorted(ctx.work.rglob("*")) if p.is_file()}
    dropped, limit = [], BUNDLE_PIECES * transfer.PIECE_BYTES
    for suffix in (".ipynb", ".log", ".xml"):
        if len(transfer.tar_bytes(members)) <= limit:
            break
        for name in [n for n in members if n.endswith(suffix)]:
            dropped.append(name)
            del members[name]
    bundle = transfer.tar_bytes(members) if members else b""
    if len(bundle) > limit:
        raise CampaignError(
            f"the bundle is {len(bundle) / transfer.MiB:.1f} MiB even without logs: look at {ctx.work}."
        )
    files = {n: transfer.sha256(out / n) for n in transfer.write_pieces(bundle, out, transfer.BUNDLE_PREFIX)}
    runs = (
        [j for j in (Job(p.name, [], run_dir=p) for p in sorted(ctx.runs.iterdir())) if j.holds_state]
        if ctx.runs.is_dir()
        else []
    )
    pieces_left = transfer.MAX_FILES_BACK - 2 - len(files)  # campaign.json and log.txt come back too
    room = min(state_budget, 60 * transfer.MiB - len(bundle), pieces_left * transfer.PIECE_BYTES)
    chosen, left, used = {}, [], 0
    for job in sorted(runs, key=lambda j: -j.epochs_done):
        size = 2048 + sum(  # tar headers
            (job.run_dir / n).stat().st_size
            for n in (jobs_mod.CHECKPOINT, jobs_mod.HISTORY)
            if (job.run_dir / n).is_file()
        )
        if used + size > room:
            left.append(job.key)
            log(
                f"{job.key}: its state ({size / transfer.MiB:.1f} MiB) does not fit what can come back; it stays on this machine only"
            )
            continue
        used += size
        for name in (jobs_mod.CHECKPOINT, jobs_mod.HISTORY):
            if (job.run_dir / name).is_file():
                chosen[f"{job.key}/{name}"] = job.run_dir / name
    if chosen:
        for name in transfer.write_pieces(transfer.tar_bytes(chosen), out, transfer.STATE_PREFIX):
            files[name] = transfer.sha256(out / name)
    finished = (
        sorted(p.name for p in ctx.runs.iterdir() if (p / RECORD).is_file()) if ctx.runs.is_dir() else []
    )
    return {
        "files": files,
        "state_runs": sorted({n.split("/")[0] for n in chosen}),
        "left_on_device": left,
        "finished_runs": finished,
        "dropped_from_bundle": dropped,
    }
