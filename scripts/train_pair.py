"""Train an SE network and its plain twin at the same time on one GPU, inside a fixed time limit.

    python3 scripts/train_pair.py --minutes 9.5 --out build/pair

1. ``--unpack CMD`` (optional) makes the data first, e.g. ``"python3 pack/cifar10_jpeg.py data"``;
   ``--cuda-tests`` runs ``pytest -m cuda`` (at most 90 s); the device is recorded.
2. A probe trains both models together for ``--probe-steps`` steps (the same recipe, the GPU shared as
   it will be) and measures their training images/s; the epoch count is the largest that fits the
   time left with ``--margin``, and the one-cycle warm-up keeps its 20 % of it.
3. ``python -m senet_lib sweep`` trains the pair, two at a time, checkpointing every epoch (a second
   call of this script with ``--resume`` continues both), with flip-TTA at the end and ``--record``.
4. ``OUT`` ends with ``summary.json`` (device, versions, the chosen schedule and why, each model's final /
   best / flip-TTA accuracy, img/s and wall time) and ``bundle.tar.gz`` (records, histories, logs).

Everything is the library's own commands; this script only times them. ``--device cpu`` with a small
``--models``/``--extra`` rehearses the whole path on a CPU (tests/test_train_pair.py does).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sh(command: list[str], log: Path, timeout: float | None = None) -> int:
    """Run ``command`` from the checkout with its output in ``log``; its exit status (124 on timeout)."""
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(command)}\n".encode())
        try:
            return subprocess.run(
                command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            return 124


def train_args(args: argparse.Namespace, model: str, epochs: int) -> list[str]:
    """The ``train`` arguments of one model of the pair for ``epochs`` epochs."""
    warmup = max(1, round(0.2 * epochs)) if epochs > 1 else 0
    return [
        "--profile", args.profile, "--model", model, "--seed", str(args.seed), "--device", args.device,
        "--epochs", str(epochs), "--warmup-epochs", str(warmup), "--eval-every", str(max(1, epochs // 4)),
        "--save-every", "1", "--tta", *shlex.split(args.extra),
    ]  # fmt: skip


def probe(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """Both models trained together for a few steps: their training images/s, sharing the device."""
    folder = out / "probe"
    procs = {}
    for model in args.models:
        command = [sys.executable, "-m", "senet_lib", "train", *train_args(args, model, 1)]
        command += ["--max-steps", str(args.probe_steps), "--eval-every", "1", "--no-tta", "--no-progress"]
        command += ["--save-dir", str(folder), "--run-name", f"probe-{model}", "--save-every", "0"]
        log = (out / f"probe_{model}.log").open("wb")
        procs[model] = (subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log)
    rates = {}
    for model, (proc, log) in procs.items():
        proc.wait()
        log.close()
        history = folder / f"probe-{model}" / "history.json"
        if proc.returncode != 0 or not history.is_file():
            raise SystemExit(
                f"the probe of {model} failed (exit {proc.returncode}): read {out}/probe_{model}.log."
            )
        row = json.loads(history.read_text())[-1]
        rates[model] = float(row["images_per_sec"])
        rates[f"{model}_probe_seconds"] = float(row["seconds"])
        record = json.loads((folder / f"probe-{model}" / "record.json").read_text())
        rates["train_images"] = int(record["dataset"]["train_size"])
    return rates


def choose_epochs(rates: dict[str, float], models: list[str], seconds_left: float) -> int:
    """The most epochs both models finish in ``seconds_left``: the slower one's images/s over an epoch,
    plus a test pass every few epochs (counted as 15 % on top)."""
    slowest = min(rates[m] for m in models)
    per_epoch = 1.15 * rates["train_images"] / slowest
    return max(1, math.floor(seconds_left / per_epoch))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=9.5, help="the whole script's time limit (default 9.5)")
    p.add_argument("--out", required=True, help="folder for summary.json and bundle.tar.gz")
    p.add_argument("--models", nargs=2, default=["se_resnet50", "resnet50"], metavar=("SE", "PLAIN"))
    p.add_argument("--profile", default="gpu", help="the recipe (default gpu); --epochs is chosen here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda")
    p.add_argument(
        "--extra", default="--full-data", help="more train arguments for both runs (default: --full-data)"
    )
    p.add_argument("--unpack", help="a command that makes the data before anything else")
    p.add_argument("--cuda-tests", action="store_true", help="run pytest -m cuda first (at most 90 s)")
    p.add_argument("--probe-steps", type=int, default=30, help="training steps of the timing probe")
    p.add_argument("--margin", type=float, default=60.0, help="seconds kept free at the end (default 60)")
    p.add_argument("--epochs", type=int, help="skip the probe and train this many epochs")
    p.add_argument(
        "--max-epochs",
        type=int,
        default=80,
        help="never more epochs than this (default 80, the gpu recipe's)",
    )
    p.add_argument("--resume", action="store_true", help="continue the schedule of summary.json in --out")
    args = p.parse_args(argv)
    start = time.monotonic()
    deadline = start + 60 * args.minutes
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if args.resume and summary_path.is_file() else {}
    os.environ["PYTHONUNBUFFERED"] = "1"

    if args.unpack and sh(shlex.split(args.unpack), out / "unpack.log") != 0:
        raise SystemExit(f"--unpack failed: read {out}/unpack.log.")
    summary.setdefault("steps", {})["unpacked_s"] = round(time.monotonic() - start, 1)
    device_log = out / "device.json"
    sh([sys.executable, "-c", DEVICE_RECORD, args.device, str(device_log)], out / "device.log")
    summary["device"] = (
        json.loads(device_log.read_text()) if device_log.is_file() else {"error": "see device.log"}
    )
    if args.cuda_tests:
        code = sh([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "tests"],
                  out / "pytest_cuda.log", timeout=90)  # fmt: skip
        summary["cuda_tests"] = {"exit": code, "log": "pytest_cuda.log"}
    summary["steps"]["checked_s"] = round(time.monotonic() - start, 1)

    if args.resume and "epochs" in summary:
        epochs = summary["epochs"]
    elif args.epochs:
        epochs, summary["schedule_reason"] = args.epochs, "given with --epochs"
    else:
        rates = probe(args, out)
        left = deadline - time.monotonic() - args.margin - 45  # 45 s: both processes start and load the data
        epochs = min(choose_epochs(rates, args.models, left), args.max_epochs)
        summary["probe"] = rates
        summary["schedule_reason"] = (
            f"probe: slowest {min(rates[m] for m in args.models):.0f} img/s with both training at once; "
            f"{left:.0f} s left for training -> {epochs} epochs (at most {args.max_epochs})"
        )
    summary["epochs"] = epochs
    summary["steps"]["scheduled_s"] = round(time.monotonic() - start, 1)
    summary_path.write_text(json.dumps(summary, indent=2))

    plan = out / "pair.plan"
    lines = [shlex.join([*train_args(args, m, epochs), "--record", "--results-dir", str(out / "results")])
             for m in args.models]  # fmt: skip
    plan.write_text("\n".join(lines) + "\n")
    budget = max(1.0, deadline - time.monotonic() - 15)
    env = {"SENET_CHECKPOINT_DIR": str(out / "checkpoints")}
    code = subprocess.run(
        [sys.executable, "-m", "senet_lib", "sweep", str(plan), "--jobs", "2", "--budget", f"{budget:.0f}",
         "--logs", str(out / "logs")],
        cwd=ROOT, env={**os.environ, **env},
    ).returncode  # fmt: skip
    summary["sweep_exit"] = code
    summary["runs"] = [_run_summary(r) for r in sorted((out / "results").glob("train_*.json"))]
    summary["steps"]["trained_s"] = round(time.monotonic() - start, 1)
    summary_path.write_text(json.dumps(summary, indent=2))
    with tarfile.open(out / "bundle.tar.gz", "w:gz") as bundle:
        for path in sorted(out.rglob("*")):
            if path.is_file() and path.suffix in (".json", ".log", ".plan") and "probe" not in path.parts:
                bundle.add(path, arcname=str(path.relative_to(out)))
    print(json.dumps({k: summary[k] for k in ("epochs", "sweep_exit", "runs")}, indent=2))
    return 0 if code == 0 else code


DEVICE_RECORD = """
import json, sys, torch
from senet_lib.env import environment_record, get_device, get_precision
device = get_device(sys.argv[1])
record = environment_record(device, get_precision(device).name)
record["cuda"] = torch.version.cuda
record["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
open(sys.argv[2], "w").write(json.dumps(record, indent=2, default=str))
"""


def _run_summary(path: Path) -> dict:
    r = json.loads(path.read_text())
    history = r.get("history") or []
    rates = sorted(row.get("images_per_sec") or 0 for row in history[1:] or history)
    return {
        "record": path.name,
        "model": (r.get("model") or {}).get("name"),
        "epochs": r.get("epochs"),
        "final_test_acc": r.get("final_test_acc"),
        "best_test_acc": r.get("best_test_acc"),
        "test_acc_flip": (history[-1] if history else {}).get("test_acc_flip"),
        "median_images_per_sec": rates[len(rates) // 2] if rates else None,
        "wall_time_s": r.get("wall_time_s"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
