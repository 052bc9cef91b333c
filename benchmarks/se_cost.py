"""What SE costs in a training step, and where the time goes: ``python benchmarks/se_cost.py``.

For each (SE, plain) pair it times three networks side by side in the library's default training
setup on this device (precision, memory format, input pipeline as ``TrainConfig()`` resolves them):
the plain network, the SE network with the fused SE tail (the default) and the same SE network with
the reference tail (``set_fused_se(model, False)``: rescale, residual add and ReLU as three passes).
They are timed in rounds of one repeat each, in alternating order, so a shared machine's drift falls on
all three alike; a row is the median of its repeats with their spread, and each ratio is given round by
round as well. Then ``torch.profiler`` times a few steps of the plain and the fused SE network and
splits each step's CPU time by operator into compute-bound work (convolutions, matrix products) and
memory-bound passes (everything else: normalisation, activations, pooling, rescaling, additions,
copies, the optimiser): SE adds almost no multiply-accumulates, so what it costs shows up in the second
group. The record (``se_cost_<device>_<time>.json``, in ``--out``) holds every repeat and the profile.
It measures and records; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from speed.report import record_header, write_bench_record
from speed.timing import build_trainer, index_batches, profiled_steps, throughput_stats

from senet_lib.checkpoint import check_writable
from senet_lib.cli import run_command
from senet_lib.cli.common import UsageError, check_model
from senet_lib.cost import count_macs
from senet_lib.data import load_dataset
from senet_lib.env import setup, synchronize
from senet_lib.models import set_fused_se
from senet_lib.train import TrainConfig

#: Operators that do the multiply-accumulates (their names as torch.profiler reports them on a CPU or
#: GPU); every other operator's time is a memory-bound pass over tensors.
COMPUTE_OPS = ("conv", "mm", "matmul", "linear", "gemm", "onednn", "mkldnn_convolution")
#: Wrappers whose self time is bookkeeping, not one operator's work (left out of the split).
WRAPPERS = ("ProfilerStep", "Optimizer.step", "autograd::engine", "Trainer")
NETWORKS = ("plain", "se_fused", "se_reference")


def is_compute(op: str) -> bool:
    return any(key in op.lower() for key in COMPUTE_OPS)


def _trainer(name: str, fused: bool, data, batch_size: int, device: torch.device):
    config = TrainConfig(epochs=1, batch_size=batch_size, seed=0, progress=False)
    trainer, loader = build_trainer(name, data, config, device)
    set_fused_se(trainer.model, fused)
    return trainer, index_batches(loader)


def time_pair(
    se_name: str,
    plain_name: str,
    batch_size: int,
    repeats: int,
    min_seconds: float,
    warmup: int,
    device: torch.device,
) -> dict[str, Any]:
    """The three networks' img/s, timed in ``repeats`` interleaved rounds, and their ratios."""
    data = load_dataset("synthetic", synthetic_size=(batch_size * 8, batch_size), seed=0)
    live = {
        "plain": _trainer(plain_name, True, data, batch_size, device),
        "se_fused": _trainer(se_name, True, data, batch_size, device),
        "se_reference": _trainer(se_name, False, data, batch_size, device),
    }
    for trainer, batches in live.values():
        for _ in range(warmup):
            trainer.train_step(*next(batches))
    rates: dict[str, list[float]] = defaultdict(list)
    for index in range(repeats):
        order = NETWORKS if index % 2 == 0 else NETWORKS[::-1]
        for key in order:
            trainer, batches = live[key]
            synchronize(device)
            start, steps = time.perf_counter(), 0
            while steps < 2 or time.perf_counter() - start < min_seconds:
                trainer.train_step(*next(batches))
                steps += 1
            synchronize(device)
            rates[key].append(steps * batch_size / (time.perf_counter() - start))
    plain_trainer = live["plain"][0]
    rows = {key: {**throughput_stats(rates[key]), "repeats": rates[key]} for key in NETWORKS}
    per_round = {
        f"{key}/plain": [a / b for a, b in zip(rates[key], rates["plain"], strict=True)]
        for key in ("se_fused", "se_reference")
    }
    per_round["se_fused/se_reference"] = [
        a / b for a, b in zip(rates["se_fused"], rates["se_reference"], strict=True)
    ]
    macs = {
        name: count_macs(trainer.model, (1, 3, 32, 32)).total
        for name, trainer in ((plain_name, plain_trainer), (se_name, live["se_fused"][0]))
    }
    return {
        "se_model": se_name,
        "plain_model": plain_name,
        "batch_size": batch_size,
        "precision": plain_trainer.precision.name,
        "channels_last": plain_trainer.channels_last,
        "macs_per_image": macs,
        "networks": rows,
        "ratios": {key: statistics.median(values) for key, values in per_round.items()},
        "ratios_per_round": per_round,
        "ratio_spread": {key: [min(v), max(v)] for key, v in per_round.items()},
    }


def profile_step(name: str, fused: bool, batch_size: int, steps: int, device: torch.device) -> dict[str, Any]:
    """Self time per operator of one training step (mean of ``steps``), split compute / memory-bound."""
    data = load_dataset("synthetic", synthetic_size=(batch_size * 4, batch_size), seed=0)
    trainer, batches = _trainer(name, fused, data, batch_size, device)
    for _ in range(2):
        trainer.train_step(*next(batches))
    averages, attr = profiled_steps(trainer, batches, steps, device)
    ops = {}
    for event in averages:
        ms = (getattr(event, attr, 0) or 0) / 1000 / steps
        if ms > 0 and not any(event.key.startswith(w) for w in WRAPPERS):
            ops[event.key] = ms
    compute = sum(ms for op, ms in ops.items() if is_compute(op))
    return {
        "model": name,
        "fused_se": fused,
        "steps": steps,
        "ms_per_step": sum(ops.values()),
        "compute_ms": compute,
        "memory_bound_ms": sum(ops.values()) - compute,
        "ops_ms": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
    }


def op_differences(se: dict[str, Any], plain: dict[str, Any], top: int = 12) -> list[dict[str, Any]]:
    """The operators whose time per step the SE network changes most, largest first."""
    names = set(se["ops_ms"]) | set(plain["ops_ms"])
    rows = [
        {
            "op": op,
            "kind": "compute" if is_compute(op) else "memory-bound",
            "se_ms": se["ops_ms"].get(op, 0.0),
            "plain_ms": plain["ops_ms"].get(op, 0.0),
        }
        for op in names
    ]
    for row in rows:
        row["extra_ms"] = row["se_ms"] - row["plain_ms"]
    return sorted(rows, key=lambda r: -abs(r["extra_ms"]))[:top]


def format_pair(pair: dict[str, Any]) -> str:
    rows = pair["networks"]
    lines = [
        f"{pair['se_model']} vs {pair['plain_model']} (batch {pair['batch_size']}, {pair['precision']}, "
        f"channels-last {pair['channels_last']})"
    ]
    for key in NETWORKS:
        r = rows[key]
        lines.append(
            f"  {key:<13} {r['images_per_sec']:8.1f} img/s  (min {r['images_per_sec_min']:.1f}, "
            f"max {r['images_per_sec_max']:.1f}, spread {100 * r['relative_spread']:.1f} %)"
        )
    for key, value in pair["ratios"].items():
        low, high = pair["ratio_spread"][key]
        lines.append(f"  {key:<22} {value:.3f}  (rounds {low:.3f} to {high:.3f})")
    return "\n".join(lines)


def format_profile(se: dict[str, Any], plain: dict[str, Any], differences: list[dict[str, Any]]) -> str:
    lines = [
        f"Per-op profile, ms per step: {se['model']} {se['ms_per_step']:.1f} "
        f"(compute {se['compute_ms']:.1f}, memory-bound {se['memory_bound_ms']:.1f}); "
        f"{plain['model']} {plain['ms_per_step']:.1f} "
        f"(compute {plain['compute_ms']:.1f}, memory-bound {plain['memory_bound_ms']:.1f})",
        f"  {'operator':<44} {'kind':<13} {'SE':>8} {'plain':>8} {'extra':>8}",
    ]
    for row in differences:
        lines.append(
            f"  {row['op'][:44]:<44} {row['kind']:<13} {row['se_ms']:8.2f} {row['plain_ms']:8.2f} "
            f"{row['extra_ms']:+8.2f}"
        )
    return "\n".join(lines)


def cmd_se_cost(args: argparse.Namespace) -> int:
    for name in ("repeats", "warmup"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1 (got {getattr(args, name)}): pass 1 or more.")
    if args.min_seconds <= 0 or args.profile_steps < 0:
        raise UsageError("--min-seconds must be above 0 and --profile-steps 0 or more: pass e.g. 3 and 3.")
    if args.batch_sizes and (len(args.batch_sizes) != len(args.pairs) or min(args.batch_sizes) < 1):
        raise UsageError("--batch-sizes takes one size of 1 or more per pair: pass as many as --pairs.")
    env = setup(seed=None, device=args.device, verbose=False)
    pairs = []
    for text in args.pairs:
        se_name, _, plain_name = text.partition(":")
        pairs.append((check_model(se_name), check_model(plain_name or se_name.removeprefix("se_"))))
    out = Path(args.out).expanduser() if args.out else env.paths.results
    check_writable(out, hint="pass a writable --out")
    batch = dict(zip([p[0] for p in pairs], args.batch_sizes or [], strict=False))
    print(f"SE's cost on {env.device_name}", flush=True)
    record: dict[str, Any] = {
        **record_header("se_cost", env),
        "settings": {"repeats": args.repeats, "min_seconds": args.min_seconds, "warmup": args.warmup},
        "data": "synthetic images of CIFAR shape (pixel values do not change a step's time)",
        "pairs": [],
    }
    for se_name, plain_name in pairs:
        size = batch.get(se_name, 128)
        pair = time_pair(se_name, plain_name, size, args.repeats, args.min_seconds, args.warmup, env.device)
        print(format_pair(pair), flush=True)
        if args.profile_steps:
            se = profile_step(se_name, True, size, args.profile_steps, env.device)
            plain = profile_step(plain_name, True, size, args.profile_steps, env.device)
            pair["profile"] = {"se": se, "plain": plain, "largest_differences": op_differences(se, plain)}
            print(format_profile(se, plain, pair["profile"]["largest_differences"]), flush=True)
        record["pairs"].append(pair)
    path = write_bench_record(record, out, prefix="se_cost")
    print(f"Record written to {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/se_cost.py",
        description="Training img/s of SE networks (fused and reference SE tail) against their plain twins, "
        "timed side by side, and a per-operator profile of one step; writes a JSON record.",
    )
    p.add_argument(
        "--pairs",
        nargs="+",
        default=["se_resnet20:resnet20", "se_resnet50:resnet50"],
        metavar="SE:PLAIN",
        help="model pairs (default: se_resnet20:resnet20 se_resnet50:resnet50)",
    )
    p.add_argument("--batch-sizes", nargs="+", type=int, help="one per pair (default 128 each)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--min-seconds", type=float, default=3.0, help="seconds per repeat (default 3)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per network first (default 3)")
    p.add_argument("--profile-steps", type=int, default=3, help="steps under torch.profiler (0 = none)")
    p.add_argument("--out", help="folder for the record (default: the results folder)")
    p.add_argument("--device", help="cuda | mps | cpu (default: $SENET_DEVICE, else the best)")
    p.set_defaults(func=cmd_se_cost)
    return p


if __name__ == "__main__":
    raise SystemExit(run_command(parser(), sys.argv[1:]))
