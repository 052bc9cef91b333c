"""Timing a model's variants in rounds, so that they share the machine's conditions:
:func:`measure_interleaved`.

A shared CPU drifts: another process, the clock, the cache. Timed one after another
(:func:`~speed.timing.measure`), two rows of the same model can differ by 10 % with no
change of code, and a speed-up taken from them carries that drift. Here every variant of a model is
built and warmed up first; then each round times one repeat of every variant, in alternating order
(forwards, then backwards), so each row's median comes from the same stretches of time as every
other's. The figures a row holds are those of :func:`measure`. On CUDA each row's
``peak_memory_mb`` would include the other variants' models, so :func:`default_settings` keeps
CUDA sequential.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from senet_lib.data import ImageDataset

from .settings import BenchSettings, tf32_settings
from .timing import LiveVariant, finish_variant, record_failure, release, start_variant
from .variants import VARIANTS


def round_order(variants: Sequence[str], round_index: int) -> list[str]:
    """The order of round ``round_index`` (0-based): as given in even rounds, reversed in odd ones."""
    return list(variants) if round_index % 2 == 0 else list(reversed(variants))


def measure_interleaved(
    model_name: str,
    data: ImageDataset,
    variants: Sequence[str],
    settings: BenchSettings,
    device: torch.device,
) -> list[dict[str, Any]]:
    """One row per variant of ``model_name`` (in ``variants`` order), timed in ``settings.repeats``
    rounds of one repeat each. A variant that fails to build, warm up or run is recorded as failed
    and leaves the later rounds; the others go on."""
    device = torch.device(device)
    rows: dict[str, dict[str, Any]] = {}
    live: dict[str, LiveVariant] = {}
    try:
        for variant in variants:
            spec = VARIANTS[variant]
            row = rows[variant] = {"model": model_name, "variant": variant, "description": spec.description}
            try:
                with tf32_settings(device, disable=spec.true_fp32) as tf32:
                    row["tf32"] = tf32
                    live[variant] = start_variant(row, model_name, data, variant, settings, device)
            except Exception as err:  # a variant that cannot run here is a result, not a crash
                record_failure(row, err)
        for index in range(settings.repeats):
            for variant in round_order([v for v in variants if v in live], index):
                try:
                    with tf32_settings(device, disable=VARIANTS[variant].true_fp32):
                        live[variant].time_repeat(settings, device)
                        live[variant].repeats[-1]["round"] = index
                except Exception as err:
                    live.pop(variant).batches.close()
                    record_failure(rows[variant], err)
        for variant in list(live):
            try:
                finish_variant(live.pop(variant), settings, device)
            except Exception as err:
                record_failure(rows[variant], err)
    finally:
        for rest in live.values():
            rest.batches.close()
        release(any(VARIANTS[v].compile for v in variants), device)
    return [rows[v] for v in variants]
