"""How much of the bare training step the epoch loop keeps: :func:`measure_loop`.

The **bare step** is :meth:`~senet_lib.train.Trainer.train_step` called again and again on one batch
that already sits on the device: forward, backward and optimiser step, nothing else. The **loop**
is :func:`senet_lib.train.fit` itself, as a notebook calls it: the library's defaults on this
device, a fresh shuffle and augmentation every epoch, a test pass after every epoch over a test
split one fifth the size of the training split (CIFAR's proportion), and a checkpoint plus history
written to a run folder after every epoch.

The bare step is timed ``repeats`` times before fit and ``repeats`` times after it (the same trainer,
kept aside), and its median is taken over both halves: a shared machine drifts by several per cent
within minutes, and timing both sides of fit keeps that drift from falling on one half only.

Two ratios come out, both from medians over epochs (the first epoch is a warm-up and is left out):

* ``fit_vs_bare_step``: fit's training phase (its history's ``images_per_sec``) over the bare step.
  What the input pipeline and the per-step bookkeeping cost; the series' goal is ≥ 0.9.
* ``epoch_vs_bare_step``: training images over the whole epoch's seconds (test pass and saving
  included) over the bare step. This one also pays for the test pass, so it is lower by design.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import tempfile
from typing import Any

import torch

from senet_lib.data import ImageDataset
from senet_lib.env import synchronize
from senet_lib.models import create_model
from senet_lib.train import TrainConfig, fit

from .settings import BenchSettings, load_bench_data
from .timing import _first_line, _timed_repeat, build_trainer, throughput_stats

#: The test split of the synthetic loop data, as a fraction of the training split (CIFAR: 10,000 / 50,000).
TEST_FRACTION = 0.2


def loop_config(settings: BenchSettings) -> TrainConfig:
    """The recipe both halves run: the library's defaults (precision, memory format, pipeline) at the
    benchmark's batch size, ``repeats + 1`` epochs (the first is a warm-up), evaluated and saved every epoch."""
    return TrainConfig(
        epochs=settings.repeats + 1,
        batch_size=settings.batch_size,
        seed=settings.seed,
        eval_every=1,
        save_every=1,
        progress=False,
    )


def load_loop_data(settings: BenchSettings) -> ImageDataset:
    """The loop's images: the benchmark's (:func:`~speed.settings.load_bench_data`) with a
    test split of :data:`TEST_FRACTION` of the training split."""
    return load_bench_data(settings, test_fraction=TEST_FRACTION)


class _BareStep:
    """``train_step`` on one device batch, ready to be timed (after ``warmup`` untimed steps)."""

    def __init__(
        self,
        model_name: str,
        data: ImageDataset,
        config: TrainConfig,
        settings: BenchSettings,
        device: torch.device,
    ) -> None:
        self.trainer, train_loader = build_trainer(model_name, data, config, device)
        self.batch = next(iter(train_loader))
        self.settings, self.device = settings, device
        for _ in range(settings.warmup):
            self.trainer.train_step(*self.batch)
        synchronize(device)
        self.info = {
            "precision": self.trainer.precision.name,
            "channels_last": self.trainer.channels_last,
            "pipeline": type(train_loader).__name__,
            "steps_per_epoch": len(train_loader),
        }

    def rates(self) -> list[float]:
        """Img/s of ``repeats`` timed repeats."""
        return [
            _timed_repeat(self.trainer, itertools.repeat(self.batch), self.settings, self.device)[0][
                "images_per_sec"
            ]
            for _ in range(self.settings.repeats)
        ]


def measure_loop(
    model_name: str, settings: BenchSettings, device: torch.device, data: ImageDataset | None = None
) -> dict[str, Any]:
    """The bare step and :func:`~senet_lib.train.fit` of ``model_name`` with the same recipe
    (:func:`loop_config`) on the same images (:func:`load_loop_data`), and their ratios.

    A failure is recorded (``status: "failed"`` and the error's first line), not raised, like a
    benchmark row.
    """
    device = torch.device(device)
    config = loop_config(settings)
    result: dict[str, Any] = {
        "model": model_name,
        "recipe": "the library's defaults on this device (TrainConfig with precision, channels_last and "
        "pipeline unset), evaluated and checkpointed every epoch; first epoch a warm-up",
        "epochs": config.epochs,
        "batch_size": config.batch_size,
    }
    try:
        data = data if data is not None else load_loop_data(settings)
        result.update(train_images=len(data.train), test_images=len(data.test))
        bare_step = _BareStep(model_name, data, config, settings, device)
        info = bare_step.info
        result.update(info)
        before = bare_step.rates()
        torch.manual_seed(config.seed)
        model = create_model(model_name, num_classes=data.num_classes)
        with tempfile.TemporaryDirectory(prefix="senet-bench-loop-") as run_dir:
            history = fit(model, data, config, run_dir=run_dir, device=device)
        after = bare_step.rates()  # the bare step is timed on both sides of fit, so drift falls on both
        bare = before + after
        del bare_step
        rows = list(history)
        images = info["steps_per_epoch"] * config.batch_size
        timed = rows[1:]  # BenchSettings keeps repeats >= 1, so at least one epoch after the warm-up
        fit_train = [float(r["images_per_sec"]) for r in timed]
        fit_epoch = [images / float(r["seconds"]) for r in timed]
        bare_stats, train_stats, epoch_stats = (throughput_stats(v) for v in (bare, fit_train, fit_epoch))
        result.update(
            status="ok",
            bare_step=bare_stats,
            bare_step_before_fit=before,
            bare_step_after_fit=after,
            fit_train=train_stats,
            fit_epoch=epoch_stats,
            fit_vs_bare_step=train_stats["images_per_sec"] / bare_stats["images_per_sec"],
            epoch_vs_bare_step=epoch_stats["images_per_sec"] / bare_stats["images_per_sec"],
            test_seconds_share=statistics.median(
                1 - images / float(r["images_per_sec"]) / float(r["seconds"]) for r in timed
            ),
            history=[
                {k: r[k] for k in ("epoch", "seconds", "images_per_sec", "test_acc")} | {"warm_up": i == 0}
                for i, r in enumerate(rows)
            ],
        )
    except Exception as err:  # recorded like a failed variant
        result.update(status="failed", error=_first_line(err), fit_vs_bare_step=None)
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def _span(rates: list[float] | None) -> str:
    """``min–max`` of some img/s figures (``—`` when an older record has none)."""
    return f"{min(rates):,.0f}–{max(rates):,.0f}" if rates else "—"


def format_loop(loop: dict[str, Any]) -> list[str]:
    """The printed lines for a :func:`measure_loop` result."""
    head = f"epoch loop (fit) vs bare train_step, {loop['model']}, batch {loop['batch_size']}"
    if loop.get("status") != "ok":
        return [head + f": failed: {loop.get('error')}"]
    return [
        head + f" ({loop['precision']}, {'channels-last' if loop['channels_last'] else 'channels-first'}, "
        f"{loop['pipeline']}, {loop['train_images']} train / {loop['test_images']} test images, "
        f"median of {loop['epochs'] - 1} epochs after a warm-up):",
        f"  bare step                {loop['bare_step']['images_per_sec']:>8,.0f} img/s  "
        f"(timed before and after fit: {_span(loop.get('bare_step_before_fit'))} and "
        f"{_span(loop.get('bare_step_after_fit'))} img/s)",
        f"  fit, training phase      {loop['fit_train']['images_per_sec']:>8,.0f} img/s  "
        f"= {loop['fit_vs_bare_step']:.3f} × bare",
        f"  fit, whole epoch         {loop['fit_epoch']['images_per_sec']:>8,.0f} img/s  "
        f"= {loop['epoch_vs_bare_step']:.3f} × bare (test pass and saving included: "
        f"{100 * loop['test_seconds_share']:.0f} % of the epoch)",
    ]
