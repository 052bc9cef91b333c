"""scripts/eval_official_test.py: official test images matched to their twins in another copy by content."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "eval_official_test", ROOT / "scripts" / "eval_official_test.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_twins_are_found_through_noise_and_another_order():
    g = torch.Generator().manual_seed(0)
    official = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(40) % 4
    order = torch.randperm(40, generator=g)
    noise = torch.randint(-12, 13, official.shape, generator=g)  # what JPEG compression does, roughly
    copy = (official[order].int() + noise).clamp(0, 255).to(torch.uint8)
    index, ratio = _script().match_twins(official, labels, copy, labels[order])
    assert torch.equal(order[index], torch.arange(40))  # every official image found its own twin
    assert float(ratio.max()) < 0.5
    shuffled_labels = (labels[order] + 1) % 4  # a copy whose labels all disagree finds no clear twin
    assert float(_script().match_twins(official, labels, copy, shuffled_labels)[1].min()) > 0.5
