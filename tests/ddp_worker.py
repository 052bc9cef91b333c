"""What each process does in tests/test_distributed.py, started by ``torchrun --nproc_per_node=2``.

``first_step OUT CLI_ARGS...``: one training step of resnet20 on the synthetic shapes, with and
without synchronised BatchNorm; rank 0 saves the reduced loss, the gradients and the BatchNorm
buffers to ``OUT``. Then the ``train`` command with ``CLI_ARGS``, where rank 1's first batch is
NaN: it must stop both ranks at step 1 with one message.

``killed CLI_ARGS...``: the ``train`` command, where rank 0 kills itself (SIGKILL) right after its
first checkpoint is written; torchrun then stops rank 1.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys

import torch

from senet_lib import cli
from senet_lib.data import make_loaders, make_synthetic
from senet_lib.train import DistributedTrainer, RunPlan, TrainConfig, Trainer, init_distributed, loop

# Channels-first, whatever the CPU's default: its float32 sums land closest to the float64 reference. In
# either format a pre-activation within ~1e-6 of zero can fall on the other side of ReLU's kink than in
# float64 and move one weight's gradient by ~1e-2 of its largest entry (seen with channels-last on
# this batch, and channels-first on others): rounding, not a synchronisation error, and not what is tested.
CONFIG = TrainConfig(
    epochs=1, batch_size=16, lr=0.05, precision="fp32", channels_last=False, progress=False, seed=0
)


def first_step_results(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Loss and accuracy (reduced over the processes), gradients and buffers after one step."""
    trainer.train_step(x, y)
    loss, acc = trainer.metrics()
    return {
        "loss": loss,
        "acc": acc,
        "grads": {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters()},
        "buffers": {n: b.detach().clone() for n, b in trainer.model.named_buffers()},
    }


def first_step(out: str, cli_args: list[str]) -> int:
    context, device = init_distributed("cpu", sync_bn=True)
    data = make_synthetic(n_train=32, n_test=8, seed=0)
    results = {}
    for sync_bn in (True, False):
        train, _ = make_loaders(data, CONFIG.batch_size, device, seed=0, rank=context.rank, world_size=2)
        model = RunPlan.resolve(CONFIG, "cpu", model="resnet20").build_model(data.num_classes)
        trainer = DistributedTrainer(
            model, CONFIG, device, len(train), dataclasses.replace(context, sync_bn=sync_bn)
        )
        x, y = next(iter(train))
        assert x.shape[0] == CONFIG.batch_size // 2
        results[sync_bn] = first_step_results(trainer, x, y)
    if context.is_main:
        torch.save(results, out)

    prepare = Trainer._prepare

    def nan_on_rank_one(self, x, y):
        x, y = prepare(self, x, y)
        return (torch.full_like(x, float("nan")) if context.rank == 1 else x), y

    Trainer._prepare = nan_on_rank_one  # only in this process: rank 1 feeds NaN images
    return cli.main(["train", *cli_args])


def killed(cli_args: list[str]) -> int:
    context, _ = init_distributed("cpu")
    save = loop.save_checkpoint

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    if context.is_main:
        loop.save_checkpoint = save_then_die
    return cli.main(["train", *cli_args])


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, *rest = sys.argv[1:]
    sys.exit(first_step(rest[0], rest[1:]) if mode == "first_step" else killed(rest))
