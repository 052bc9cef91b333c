"""Several processes, one model (torchrun + DistributedDataParallel), on the CPU with gloo.

Two processes are started with ``python -m torch.distributed.run --standalone --nproc_per_node=2``
running ``tests/ddp_worker.py`` or ``-m senet_lib train``, as a user would. Each check compares
with what one process does on the same global batch, so that it fails if the sharding, the
gradient averaging, SyncBatchNorm or the reductions are wrong. The tests that start processes are
skipped, with the reason, where torch.distributed, its gloo backend or a local TCP port is missing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from senet_lib import cli
from senet_lib.checkpoint import read_checkpoint
from senet_lib.data import make_loaders, make_synthetic
from senet_lib.train import RunPlan


def _no_processes_reason() -> str | None:
    """Why two gloo processes cannot run here, or None."""
    if not (dist.is_available() and dist.is_gloo_available()):
        return "torch.distributed with the gloo backend is not available in this PyTorch build"
    try:
        with socket.socket() as probe:  # torchrun's rendezvous listens on a local TCP port
            probe.bind(("127.0.0.1", 0))
    except OSError as err:
        return f"no local TCP port for torchrun's rendezvous ({err})"
    return None


NO_PROCESSES = _no_processes_reason()
needs_processes = pytest.mark.skipif(NO_PROCESSES is not None, reason=NO_PROCESSES or "")

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("ddp_worker.py")
CLI = [
    "--profile",
    "quick",
    "--model",
    "resnet20",
    "--dataset",
    "synthetic",
    "--batch-size",
    "16",
    "--max-steps",
    "2",
    "--train-subset",
    "64",
    "--test-subset",
    "40",
    "--precision",
    "fp32",
    "--device",
    "cpu",
    "--no-progress",
]


def torchrun(*args: str, folder: Path) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 ARGS`` with the run folders under ``folder``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
        "SENET_DEBUG": "",
        **{f"SENET_{k}_DIR": str(folder / k.lower()) for k in ("CHECKPOINT", "RESULTS", "FIGURES", "DATA")},
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=folder)


def one_process_first_step() -> dict:
    """The first step's loss, accuracy, gradients and BatchNorm buffers in this process, on the
    whole global batch of 16, in float64: the exact values. (In float32, one process's own
    BatchNorm backward on the CPU is off from them by up to ~1e-2 of a gradient's largest entry
    on this tiny batch, while the two-process run with synchronised BatchNorm is within ~1e-5 on an
    Intel CPU with AVX512 and 6.4e-4 on an AMD EPYC without it.)"""
    from ddp_worker import CONFIG

    data = make_synthetic(n_train=32, n_test=8, seed=0)
    train, _ = make_loaders(data, CONFIG.batch_size, "cpu", seed=0)
    model = RunPlan.resolve(CONFIG, "cpu", model="resnet20").build_model(data.num_classes).double().train()
    x, y = next(iter(train))
    logits = model(x.double())
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return {
        "loss": loss.item(),
        "acc": (logits.argmax(1) == y).double().mean().item(),
        "grads": {n: p.grad for n, p in model.named_parameters()},
        "buffers": {n: b for n, b in model.named_buffers()},
    }


def largest_error(got: dict, want: dict) -> float:
    """The largest difference between two tensors of the same name, relative to the largest entry."""
    return max(
        ((got[n].double() - w.double()).abs().max() / w.double().abs().max().clamp(min=1e-12)).item()
        for n, w in want.items()
    )


def test_rank_slices_make_up_the_single_process_batches():
    """No processes needed: two ranks' batches, side by side, are the one-process batches, augmented
    identically; each rank evaluates its own contiguous half of the test split."""
    data = make_synthetic(n_train=40, n_test=10, seed=0)
    kwargs = {"device": "cpu", "seed": 3, "cutout": 8}
    one_train, one_test = make_loaders(data, 8, **kwargs)
    ranks = [make_loaders(data, 8, rank=r, world_size=2, **kwargs) for r in (0, 1)]
    assert len(ranks[0][0]) == len(ranks[1][0]) == len(one_train) == 5
    for epoch in (0, 1):
        for loader in [one_train] + [train for train, _ in ranks]:
            loader.set_epoch(epoch)
        for (x, y), (x0, y0), (x1, y1) in zip(one_train, ranks[0][0], ranks[1][0], strict=True):
            assert x0.shape[0] == x1.shape[0] == 4
            assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    halves = [torch.cat([y for _, y in test]) for _, test in ranks]
    assert torch.equal(torch.cat(halves), torch.cat([y for _, y in one_test])) and len(halves[0]) == 5
    with pytest.raises(ValueError, match="does not split evenly over 3 processes"):
        make_loaders(data, 8, "cpu", rank=0, world_size=3)
    with pytest.raises(ValueError, match="does not shard"):
        make_loaders(data, 8, "cpu", pipeline="torch", rank=0, world_size=2)


@needs_processes
def test_first_step_with_syncbn_equals_one_process_and_a_nan_stops_both(tmp_path):
    out = tmp_path / "first_step.pt"
    done = torchrun(str(WORKER), "first_step", str(out), *CLI, "--epochs", "1", folder=tmp_path)
    assert out.exists(), done.stderr[-3000:]
    two = torch.load(out)
    one = one_process_first_step()
    synced, plain = two[True], two[False]
    assert synced["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert synced["acc"] == one["acc"]
    # float32 kernels set the floor: ~1e-5 on an Intel CPU with AVX512, 6.4e-4 on an AMD EPYC without it
    # (both measured); without SyncBatchNorm the error is above 1e-2 (1.26 on that AMD machine)
    assert largest_error(synced["grads"], one["grads"]) < 2e-3
    assert largest_error(synced["buffers"], one["buffers"]) < 1e-5  # running statistics of the whole batch
    # Without SyncBatchNorm each process normalises its own half: the same check fails by far.
    assert largest_error(plain["grads"], one["grads"]) > 1e-2
    # The train command after it: rank 1 alone saw NaN at step 1; both stopped there, one message.
    assert done.returncode != 0
    messages = [line for line in done.stderr.splitlines() if "Training diverged" in line]
    assert len(messages) == 1, done.stderr[-3000:]
    assert "epoch 1, step 1 of 2" in messages[0] and messages[0].startswith("python -m senet_lib: error:")
    assert not list((tmp_path / "checkpoint").glob("*/checkpoint.pt"))  # nothing saved before the NaN


@needs_processes
def test_killed_run_resumes_and_matches_one_process_with_one_record_and_checkpoint(tmp_path, monkeypatch):
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir()
    args = [*CLI, "--epochs", "2", "--save-every", "1", "--sync-bn", "--tta"]
    killed = torchrun(str(WORKER), "killed", *args, folder=two)
    assert killed.returncode != 0  # rank 0 was killed right after its epoch-1 checkpoint
    (run_dir,) = (two / "checkpoint").iterdir()
    assert read_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1

    resumed = torchrun("-m", "senet_lib", "train", *args, "--resume", "--record", folder=two)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("Done: final test accuracy") == 1  # rank 0 alone prints
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "history.json", "record.json"]
    assert len(list((two / "results").iterdir())) == 1
    record = json.loads((run_dir / "record.json").read_text())
    assert record["distributed"] == {"world_size": 2, "backend": "gloo", "sync_bn": True}
    assert read_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 2

    # One process, same recipe and global batch, never interrupted: the same run, to float32 tolerance
    # (one process's own BatchNorm backward is off by up to ~1e-2 of the exact gradient per step on this
    # tiny batch, see one_process_first_step: after four steps the losses agree to ~1e-3).
    for key in ("CHECKPOINT", "RESULTS", "FIGURES", "DATA"):
        monkeypatch.setenv(f"SENET_{key}_DIR", str(one / key.lower()))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(["train", *CLI, "--epochs", "2", "--save-every", "1", "--tta"]) == 0
    finally:
        torch.set_num_threads(threads)
    (single_dir,) = (one / "checkpoint").iterdir()
    assert single_dir.name == run_dir.name  # --sync-bn is not part of the recipe
    reference = json.loads((single_dir / "history.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    for key in ("train_loss", "test_loss", "lr"):
        assert [row[key] for row in history] == pytest.approx([row[key] for row in reference], rel=5e-3), key
    # Accuracies over the two processes' halves of the 40 test images, flip-TTA included: the same
    # images as one process, so at most a borderline image or two may fall the other way.
    for key in ("test_acc", "test_acc_flip"):
        assert history[-1][key] == pytest.approx(reference[-1][key], abs=2 / 40 + 1e-9), key
