#!/usr/bin/env python
"""Is the gates' input-dependence worth anything? Every shipped SE network with its gates frozen to constants.

    OMP_NUM_THREADS=1 python scripts/freeze_gates.py --jpeg data --lossless data/cifar10-png

For each SE network in ``pretrained/`` (or those named with ``--weights``) and each data copy (the
JPEG-q75 pack: its whole test split; the lossless pack: the official test images 0-999), the excitation
of each SE block is replaced by a constant (``senet_lib.excitation.frozen_gate_accuracy``): its
per-channel mean over ``--train-images`` class-balanced training images of the same copy (``mean``),
those means permuted across the block's channels with ``--seed`` (``shuffled``), and 1 (``one``: the
block removed); one block at a time, one stage at a time and all blocks at once, against the intact
network. Training images are read unaugmented. Every network is evaluated in fp32 with the
normalisation it was trained with (the JPEG pack's training images). One record
(``kind: freeze_gates``) goes to ``results/``; ``--check`` stops after timing one evaluation pass.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from senet_lib.checkpoint import create_json, load_checkpoint, verify_weights  # noqa: E402
from senet_lib.data import DeviceLoader, load_dataset  # noqa: E402
from senet_lib.env import environment_record, get_precision  # noqa: E402
from senet_lib.excitation import VARIANTS, frozen_gate_accuracy, mean_gates, shuffled_gates  # noqa: E402

#: The files whose code makes the numbers: the record says whether they are the commit's.
CODE = ("scripts/freeze_gates.py", "senet_lib/excitation/freeze.py", "senet_lib/se.py")
VARIANT_TEXT = {
    "mean": "each channel's mean gate over the training images used, the same for every image",
    "shuffled": "the block's mean gates permuted across its channels (torch.randperm, one permutation per "
    "block in network order, generator seeded with the record's seed): the block's own values on the "
    "wrong channels",
    "one": "s = 1: the block removed, its branch unscaled",
}


def code_is_committed() -> bool:
    """Whether :data:`CODE` is unchanged from the commit the record names."""
    done = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *CODE], cwd=ROOT, check=False)
    return done.returncode == 0


def loader(split, mean, std, batch_size: int) -> DeviceLoader:
    """In order, unaugmented, normalised with ``mean`` / ``std``, channels-last (faster on the CPU)."""
    return DeviceLoader(split, batch_size, "cpu", mean, std, train=False, channels_last=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jpeg", type=Path, required=True, help="folder holding the JPEG pack's copy")
    p.add_argument("--lossless", type=Path, help="folder holding the lossless pack's copy (optional)")
    p.add_argument("--pretrained", type=Path, default=ROOT / "pretrained")
    p.add_argument("--weights", nargs="*", help="file names in --pretrained (default: every se_*.pt)")
    p.add_argument("--train-images", type=int, default=10_000, help="training images behind the means")
    p.add_argument("--test-images", type=int, help="a class-balanced test subset (default: the whole split)")
    p.add_argument("--seed", type=int, default=0, help="training subset and the shuffle of the means")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--results", type=Path, default=ROOT / "results")
    p.add_argument("--check", action="store_true", help="time one pass per network and stop")
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    started = time.perf_counter()
    jpeg = load_dataset("cifar10", root=args.jpeg)
    copies = {"jpeg": jpeg}
    if args.lossless is not None:
        copies["lossless"] = load_dataset("cifar10", root=args.lossless)
        if len(copies["lossless"].test) != 1000 or "lossless" not in copies["lossless"].label:
            raise SystemExit(f"{args.lossless} does not hold the lossless pack ({copies['lossless'].label}).")
    names = args.weights or sorted(p.name for p in args.pretrained.glob("se_*.pt"))
    networks = []
    for name in names:
        path = args.pretrained / name
        meta = verify_weights(path)
        model, _ = load_checkpoint(path)
        model.float().eval()
        row = {
            "weights": path.name,
            "model": model.arch_config["name"],
            "epochs": (meta.get("recipe") or {}).get("epochs"),
            "trained_on": (meta.get("data") or {}).get("label"),
            "runs": [],
        }
        for key, data in copies.items():
            t0 = time.perf_counter()
            train = data.subset(args.train_images, args.test_images, seed=args.seed)
            gates = mean_gates(model, loader(train.train, jpeg.mean, jpeg.std, args.batch_size))
            t_means = time.perf_counter() - t0
            test = loader(train.test, jpeg.mean, jpeg.std, args.batch_size)
            if args.check:
                t1 = time.perf_counter()
                frozen_gate_accuracy(model, test, gates, args.seed, variants=(), channels_last=True)
                pass_s = time.perf_counter() - t1
                passes = 1 + len(VARIANTS) * (len(gates) + 3 + 1)
                print(
                    f"{name} on {data.label}: means over {len(train.train):,} images {t_means:.0f} s; "
                    f"one pass over {len(train.test):,} test images {pass_s:.1f} s, so about "
                    f"{t_means + passes * pass_s:.0f} s for the {passes} passes"
                )
                continue

            def say(variant: str, group: str, acc: float, label: str = f"{name} | {data.label}") -> None:
                print(f"  {label} | {variant:8s} {group:8s} {100 * acc:6.2f} %", flush=True)

            result = frozen_gate_accuracy(model, test, gates, args.seed, channels_last=True, progress=say)
            run = {
                "data": data.label,
                "copy": key,
                "test_images": result.images,
                "means_from": {
                    "split": "train",
                    "images": len(train.train),
                    "selection": f"class-balanced subset, seed {args.seed} (ImageDataset.subset)",
                    "augmentation": "none",
                    "data": data.label,
                },
                "mean_gates": {b: [float(v) for v in s] for b, s in gates.items()},
                "shuffled_gates": {
                    b: [float(v) for v in s] for b, s in shuffled_gates(gates, args.seed).items()
                },
                **result.to_dict(),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            row["runs"].append(run)
            print(
                f"{name} on {data.label}: intact {100 * result.intact:.2f} %, all blocks frozen: "
                + ", ".join(f"{v} {100 * result.accuracy[v]['all']:.2f} %" for v in VARIANTS)
                + f" ({run['seconds']:.0f} s)",
                flush=True,
            )
        networks.append(row)
    if args.check:
        return 0
    record = {
        "kind": "freeze_gates",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "question": "test accuracy with each SE block's gate replaced by a constant, against the intact network",
        "variants": VARIANT_TEXT,
        "groups": "each block alone (SE_<stage>_<block>), each stage ('stage N': its blocks together), 'all'",
        "seed": args.seed,
        "train_images": args.train_images,
        "test_subset": args.test_images,
        "normalisation": "the JPEG pack's training images (what every shipped network was trained with)",
        "evaluation": "single crop, fp32, channels-last, senet_lib.train.Trainer.evaluate, batch "
        f"{args.batch_size}",
        "environment": environment_record(
            torch.device("cpu"), get_precision(torch.device("cpu"), "fp32").name
        ),
        "code": list(CODE),
        "code_unchanged_from_commit": code_is_committed(),
        "networks": networks,
        "seconds": round(time.perf_counter() - started, 1),
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = create_json(args.results / f"freeze_gates_{stamp}.json", record)
    print(f"record: {out} ({record['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
