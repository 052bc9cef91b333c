"""Training-throughput benchmark: ``python benchmarks/train_speed.py``.

A benchmark, not a test: it measures and records, it asserts nothing. For each model and
variant it builds the same :class:`~senet_lib.train.Trainer` the notebooks use, runs ``warmup``
untimed steps, then times ``repeats`` runs of :meth:`Trainer.train_step` calls (including
fetching each batch from the loader, since the input pipeline is one of the things compared).
Each run lasts at least ``steps`` steps *and* at least ``min_seconds`` seconds, whichever ends
later, but never more than ``max_steps`` steps. A row reports the **median** training images per
second of its runs, their min and max, and the relative spread ``(max - min) / median``; every
run's own figures stay in the record. Ratios and speed-ups are computed from the medians. On a CPU
(or MPS) a model's variants are **interleaved**: built and warmed up together, then timed in rounds
of one repeat each (:mod:`speed.interleave`), so the speed-up of ``default`` over
``seed-style`` is also given round by round; ``--no-interleave`` times them one after another, as
on CUDA.

Variants (``--variants``), each a combination of input pipeline, precision, memory format and
compilation:

==========================  =========================================================================
``seed-style``              torchvision transforms in a ``DataLoader`` (``pipeline="torch"``), true
                            fp32: no autocast, channels-first, and TF32 switched off on CUDA while it
                            runs (restored afterwards): the loop a first tutorial writes
``device-fp32``             device-resident loader (augmentation on the device), fp32 (TF32 as torch's
                            own defaults leave it on CUDA: off for matmuls, on for cuDNN convolutions)
``device-fp32-cl``          … plus channels-last (a CPU row only; ``default`` on a CPU without bf16 units)
``device-bf16``             device loader, bf16 autocast (fp16 + GradScaler on CUDA GPUs without bf16;
                            the row's ``precision`` says which)
``device-bf16-cl``          … plus channels-last memory format
``default``                 whatever the library chooses on this device: ``TrainConfig(precision=None,
                            channels_last=None, pipeline="auto")``; the row records what that resolved to
``device-bf16-cl-compile``  ``device-bf16-cl`` plus ``torch.compile`` (CUDA defaults only)
==========================  =========================================================================

The old names still work: ``baseline``, ``device``, ``device+amp``, ``device+amp+cl`` and
``device+amp+cl+compile`` (also ``+compile``) mean the variants above, in that order.

Besides the variants it times the **epoch loop**: :func:`senet_lib.train.fit` with the library's
defaults, test pass and checkpoint every epoch, against the bare :meth:`Trainer.train_step` on one
batch already on the device (:mod:`speed.loop`; ``--no-loop`` skips it). Its ratio
``fit_vs_bare_step`` says what the input pipeline and the bookkeeping cost.

The record (JSON, in the results folder) holds the environment (:meth:`Environment.record`),
backend flags (CPU bf16 units, torch threads, TF32 and ``cudnn.benchmark``, CUDA/cuDNN versions),
the settings, every measurement, the derived ratios and the targets they are compared with. Each row
also holds what the input pipeline alone delivers (``loader_images_per_sec``: ``steps`` batches fetched
without training), the compile mode and seconds, and on CUDA the peak allocated memory. The
data are synthetic images of CIFAR shape unless ``--dataset`` says otherwise: pixel values do
not change how long a training step takes.
"""

from .interleave import measure_interleaved, round_order
from .loop import format_loop, load_loop_data, loop_config, measure_loop
from .report import (
    check_targets,
    format_record,
    paired_speedups,
    record_header,
    summarize,
    write_bench_record,
)
from .run import main_bench, run_benchmark
from .settings import (
    BenchSettings,
    backend_flags,
    default_settings,
    default_variants,
    load_bench_data,
    mixed_precision_name,
    skipped_note,
    tf32_settings,
)
from .timing import measure, profile_steps, profiled_steps, throughput_stats
from .variants import (
    ALIASES,
    DATA_NOTE,
    REFERENCE_RATIOS,
    TARGETS,
    TIMING_NOTE,
    VARIANTS,
    Variant,
    canonical_variant,
)

__all__ = [
    "Variant",
    "VARIANTS",
    "ALIASES",
    "TARGETS",
    "REFERENCE_RATIOS",
    "DATA_NOTE",
    "TIMING_NOTE",
    "canonical_variant",
    "BenchSettings",
    "default_variants",
    "default_settings",
    "mixed_precision_name",
    "skipped_note",
    "tf32_settings",
    "backend_flags",
    "throughput_stats",
    "measure",
    "measure_interleaved",
    "round_order",
    "paired_speedups",
    "measure_loop",
    "loop_config",
    "load_loop_data",
    "format_loop",
    "profile_steps",
    "profiled_steps",
    "record_header",
    "summarize",
    "check_targets",
    "format_record",
    "write_bench_record",
    "load_bench_data",
    "run_benchmark",
    "main_bench",
]
