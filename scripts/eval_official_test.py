#!/usr/bin/env python
"""How much of the gap to published CIFAR-10 numbers is the test images alone? Every shipped network,
evaluated on the official test images 0-999 and on the same 1,000 images as the JPEG pack holds them.

    python scripts/eval_official_test.py --lossless data/cifar10-png --jpeg data

``--lossless`` holds the lossless pack (official pixels: ``../shared/tools/cifar10_png.py DEST``),
``--jpeg`` the JPEG-q75 pack (``cifar10_jpeg.py DEST``). The JPEG pack's test split is sorted by
class, so each official image is matched to its JPEG twin by content: the JPEG image of the same label
nearest in pixels (every match is checked to be far nearer than the runner-up). Each network is
evaluated in fp32 with the normalisation of the data it was trained on (the JPEG pack's training
images), single-crop and flip-TTA, on three sets: the 1,000 official images, their 1,000 JPEG twins,
and the whole 10,000-image JPEG test split. One record (``kind: eval_official_test``) goes to
``results/``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from senet_lib.checkpoint import create_json, load_checkpoint, verify_weights  # noqa: E402
from senet_lib.data import load_dataset, normalize_images  # noqa: E402
from senet_lib.env import environment_record, get_precision  # noqa: E402
from senet_lib.train.trainer import flip_tta_logits  # noqa: E402


def match_twins(official: torch.Tensor, labels: torch.Tensor, copy: torch.Tensor, copy_labels: torch.Tensor):
    """For each official image, the index of the same image in ``copy`` (same label, nearest pixels),
    and the ratio of its distance to the runner-up's (near 0 for a true twin)."""
    index, ratio = torch.empty(len(official), dtype=torch.long), torch.empty(len(official))
    flat, flat_copy = official.flatten(1).float(), copy.flatten(1).float()
    for k in labels.unique().tolist():
        mine, theirs = (labels == k).nonzero().flatten(), (copy_labels == k).nonzero().flatten()
        d = torch.cdist(flat[mine], flat_copy[theirs])
        best = d.topk(2, largest=False)
        index[mine] = theirs[best.indices[:, 0]]
        ratio[mine] = best.values[:, 0] / best.values[:, 1].clamp_min(1e-9)
    return index, ratio


@torch.no_grad()
def accuracy(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std
) -> tuple[float, float]:
    """Single-crop and flip-TTA top-1 accuracy (fractions)."""
    right = right_flip = 0
    for start in range(0, len(images), 500):
        x = normalize_images(images[start : start + 500], mean, std)
        y = labels[start : start + 500]
        right += int((model(x).argmax(1) == y).sum())
        right_flip += int((flip_tta_logits(model, x).argmax(1) == y).sum())
    return right / len(images), right_flip / len(images)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lossless", type=Path, required=True, help="folder holding the lossless pack's copy")
    p.add_argument("--jpeg", type=Path, required=True, help="folder holding the JPEG pack's copy")
    p.add_argument("--pretrained", type=Path, default=ROOT / "pretrained")
    p.add_argument("--results", type=Path, default=ROOT / "results")
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    official = load_dataset("cifar10", root=args.lossless)
    jpeg = load_dataset("cifar10", root=args.jpeg)
    if len(official.test) != 1000 or "lossless" not in official.label:
        raise SystemExit(
            f"{args.lossless} does not hold the lossless pack ({official.label}): unpack it there."
        )
    twins, ratio = match_twins(official.test.images, official.test.labels, jpeg.test.images, jpeg.test.labels)
    if float(ratio.max()) > 0.5:
        raise SystemExit(
            f"some official test images have no clear JPEG twin (worst ratio {float(ratio.max()):.2f})."
        )
    sets = {
        "official_0_999": (official.test.images, official.test.labels),
        "jpeg_twins_0_999": (jpeg.test.images[twins], jpeg.test.labels[twins]),
        "jpeg_all_10000": (jpeg.test.images, jpeg.test.labels),
    }
    rows = []
    for path in sorted(args.pretrained.glob("*.pt")):
        meta = verify_weights(path)
        model, _ = load_checkpoint(path)
        model.float().eval()
        trained_on = (meta.get("data") or {}).get("label")
        row = {"weights": path.name, "model": model.arch_config["name"], "trained_on": trained_on}
        for name, (images, labels) in sets.items():
            single, flip = accuracy(model, images, labels, jpeg.mean, jpeg.std)
            row[name] = {"acc": single, "acc_flip": flip}
        row["official_minus_twins"] = row["official_0_999"]["acc"] - row["jpeg_twins_0_999"]["acc"]
        rows.append(row)
        print(
            f"{path.name:40s} official 0-999 {100 * row['official_0_999']['acc']:.1f} %  "
            f"JPEG twins {100 * row['jpeg_twins_0_999']['acc']:.1f} %  "
            f"JPEG all {100 * row['jpeg_all_10000']['acc']:.2f} %"
        )
    gaps = [r["official_minus_twins"] for r in rows]
    record = {
        "kind": "eval_official_test",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {
            "official": official.label,
            "jpeg": jpeg.label,
            "twin_max_distance_ratio": float(ratio.max()),
        },
        "normalisation": "the JPEG pack's training images (what every shipped network was trained with)",
        "environment": environment_record(
            torch.device("cpu"), get_precision(torch.device("cpu"), "fp32").name
        ),
        "networks": rows,
        "mean_official_minus_twins": sum(gaps) / len(gaps),
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = create_json(args.results / f"eval_official_test_{stamp}.json", record)
    print(
        f"official − JPEG twins, mean over {len(rows)} networks: {100 * record['mean_official_minus_twins']:+.2f} points"
    )
    print(f"record: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
