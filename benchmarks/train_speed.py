"""Training throughput of SE networks and their plain twins: ``python benchmarks/train_speed.py``.

A benchmark beside the library, as timm keeps ``benchmark.py`` beside its models: it measures and
records, it asserts nothing (how, in :mod:`speed`). ``--help`` lists the options; the defaults finish in
a few minutes on a 2-core CPU and print SE/plain for each model pair.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import speed

from senet_lib.checkpoint import check_writable
from senet_lib.cli import run_command
from senet_lib.cli.common import check_dataset, check_model
from senet_lib.env import setup


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the throughput benchmark (see :mod:`speed`). Options not given take the
    device's defaults (:func:`senet_lib.speed.default_settings`); a value given, 0 included, is
    used as given (and refused with a sentence when it makes no sense), never replaced."""
    env = setup(seed=None, device=args.device, verbose=False)
    defaults = speed.default_settings(env.device)
    numbers = ("batch_size", "steps", "warmup", "repeats", "min_seconds", "max_steps", "train_images")
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in (*numbers, "num_workers") if getattr(args, name) is not None
    }
    if args.models:
        overrides["models"] = tuple(check_model(m) for m in args.models)
    if args.variants:
        overrides["variants"] = tuple(args.variants)
    if args.no_loop:
        overrides["loop"] = False
    if args.interleave is not None:
        overrides["interleave"] = args.interleave
    if args.dataset:
        overrides["dataset"] = check_dataset(args.dataset)
    if "steps" in overrides and "max_steps" not in overrides:  # the cap never cuts the steps asked for
        overrides["max_steps"] = max(defaults.max_steps, overrides["steps"])
    settings = replace(defaults, **overrides)
    note = speed.skipped_note(env.device) if not args.variants else None
    if note:
        print(note)
    if args.out:  # checked before minutes of measuring, not after
        out = Path(args.out).expanduser()
        check_writable(out.parent if out.suffix == ".json" else out, hint="pass a writable --out")
    speed.main_bench(settings, out=args.out, profile_trace=args.profile_trace, env=env)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/train_speed.py",
        description="Measure training img/s per model and variant (median of repeats, with their spread), "
        "print a table with the SE/plain ratios, speed-ups and targets, and write a JSON record. "
        "Defaults: se_resnet50/resnet50, batch 256, every variant on a CUDA GPU; se_resnet20/resnet20, "
        "batch 128, no torch.compile elsewhere (no bf16 on MPS); 3 repeats of at least 3 s each.",
    )
    p.add_argument("--models", nargs="+", help="models to measure (SE model first, then its plain twin)")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=(*speed.VARIANTS, *speed.ALIASES),
        metavar="VARIANT",
        help=f"{', '.join(speed.VARIANTS)} (old names {', '.join(speed.ALIASES)} still work)",
    )
    p.add_argument("--batch-size", type=int, help="images per step (default: 256 on CUDA, 128 elsewhere)")
    p.add_argument("--steps", type=int, help="at least this many timed steps per repeat")
    p.add_argument("--min-seconds", type=float, help="at least this many seconds per repeat (default 3)")
    p.add_argument("--max-steps", type=int, help="at most this many steps per repeat")
    p.add_argument("--repeats", type=int, help="timed repeats per row, reported as their median")
    p.add_argument("--warmup", type=int, help="untimed steps before timing (at least 1)")
    p.add_argument("--train-images", type=int, help="size of the training split the loaders cycle through")
    p.add_argument("--dataset", help="default: synthetic images of CIFAR shape")
    p.add_argument("--num-workers", type=int, help="DataLoader workers for the seed-style pipeline")
    p.add_argument(
        "--no-loop",
        action="store_true",
        help="skip timing fit (a few epochs of train_images, with test passes) against the bare step",
    )
    p.add_argument(
        "--interleave",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time a model's variants in rounds of one repeat each, so machine drift falls on all alike "
        "(default: on a CPU or MPS, not on CUDA, where each row's peak memory is its own)",
    )
    p.add_argument("--out", help="folder (or .json file) for the record (default: the results folder)")
    p.add_argument(
        "--profile-trace", action="store_true", help="also profile a few steps and print the top ops"
    )
    p.add_argument("--device", help="cuda | cuda:N | mps | cpu (default: $SENET_DEVICE, else the best)")
    p.set_defaults(func=cmd_bench)
    return p


if __name__ == "__main__":
    raise SystemExit(run_command(parser(), sys.argv[1:]))
