"""Shared test set-up: every test writes into its own temporary folders, never into the repo; the one
fake-CIFAR writer (CIFAR-10 and CIFAR-100 in the standard layouts); the one way to stop training
at a chosen step (``stop_at_step``)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_folders(tmp_path_factory, monkeypatch):
    """Point data, checkpoint, figure, results and pretrained folders at a fresh temporary folder."""
    base = tmp_path_factory.mktemp("senet")
    for var, sub in [
        ("SENET_DATA_DIR", "data"),
        ("SENET_CHECKPOINT_DIR", "checkpoints"),
        ("SENET_FIGURES_DIR", "figures"),
        ("SENET_RESULTS_DIR", "results"),
        ("SENET_PRETRAINED_DIR", "pretrained"),
    ]:
        monkeypatch.setenv(var, str(base / sub))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield base


@pytest.fixture
def one_torch_thread():
    """One intra-op thread while a test runs: on a shared 2-core machine more threads spin against
    each other and tiny training steps slow down (use with ``pytest.mark.usefixtures``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- fake CIFAR folders
@dataclass
class FakeCifar:
    """What :func:`fake_cifar` wrote: the layout folder and, per split, (images ``[N, 3, 32, 32]``,
    labels, superclass labels or None); ``fake["train"]`` reads like a dict."""

    folder: Path
    splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]

    def __getitem__(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return self.splits[split]


#: CIFAR-100's five fine classes per superclass, in the fakes: fine class f belongs to superclass f // 5.
FAKE_FINE_PER_COARSE = 5


def write_fake_cifar(
    parent: Path,
    name: str = "cifar10",
    per_file: int = 30,
    bytes_keys: bool = True,
    seed: int = 0,
    num_names: int | None = None,
    value: Callable[[int], Any] = int,
    coarse: bool = True,
) -> FakeCifar:
    """A standard-layout CIFAR-10 (``cifar-10-batches-py/``: five data batches, ``test_batch``,
    ``batches.meta``) or CIFAR-100 (``cifar-100-python/``: ``train``, ``test``, ``meta``) copy,
    pickled at protocol 2 as Python 3 re-packs are (bytes keys or str keys), ``per_file`` random
    images per file, labels ``value(i % classes)``; ``num_names`` class names in the meta file
    (default: the right number). CIFAR-100 files carry ``coarse_labels`` (fine // 5) and the meta
    file ``coarse_label_names`` unless ``coarse=False``."""
    rng = np.random.default_rng(seed)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    if name == "cifar10":
        folder, num_classes, labels_key, meta_file = (
            parent / "cifar-10-batches-py",
            10,
            "labels",
            "batches.meta",
        )
        files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        meta = {key("label_names"): [f"c{i}".encode() for i in range(num_names or 10)], key("num_vis"): 3072}
    else:
        folder, num_classes, labels_key, meta_file = parent / "cifar-100-python", 100, "fine_labels", "meta"
        files = {"train": ["train"], "test": ["test"]}
        meta = {key("fine_label_names"): [f"f{i}" for i in range(num_names or 100)]}
        if coarse:
            meta[key("coarse_label_names")] = [f"super{i}" for i in range(100 // FAKE_FINE_PER_COARSE)]
    folder.mkdir(parents=True)
    splits = {}
    for split, names in files.items():
        datas, labels = [], []
        for f in names:
            data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
            fine = [i % num_classes for i in range(per_file)]
            batch = {
                key("batch_label"): b"",  # an empty bytes: pickled as __builtin__.bytes()
                key(labels_key): [value(v) for v in fine],
                key("data"): data,
                key("filenames"): [f"img_{i}.png".encode() for i in range(per_file)],  # _codecs.encode
            }
            if name == "cifar100" and coarse:
                batch[key("coarse_labels")] = [value(v // FAKE_FINE_PER_COARSE) for v in fine]
            (folder / f).write_bytes(pickle.dumps(batch, protocol=2))
            datas.append(data)
            labels += fine
        fine_arr = np.array(labels)
        coarse_arr = fine_arr // FAKE_FINE_PER_COARSE if name == "cifar100" and coarse else None
        splits[split] = (np.concatenate(datas).reshape(-1, 3, 32, 32), fine_arr, coarse_arr)
    (folder / meta_file).write_bytes(pickle.dumps(meta, protocol=2))
    return FakeCifar(folder, splits)


@pytest.fixture
def fake_cifar() -> Callable[..., FakeCifar]:
    """The one fake-CIFAR writer, :func:`write_fake_cifar`: ``fake_cifar(parent, "cifar100", ...)``."""
    return write_fake_cifar


def _interrupt() -> None:
    raise KeyboardInterrupt  # Ctrl-C, or a session's time limit


@pytest.fixture
def stop_at_step(monkeypatch) -> Callable[..., Callable[[], None]]:
    """``stop_at_step(n, stop=None)``: the ``n``-th call (1-based, counted from now) of
    ``Trainer.train_step`` first runs ``stop`` (default: raise ``KeyboardInterrupt``), then trains.
    Returns a function that puts the real step back."""
    from senet_lib.train import Trainer

    real_step = Trainer.train_step

    def patch(n: int, stop: Callable[[], None] | None = None) -> Callable[[], None]:
        calls = {"n": 0}

        def step(self, x, y):
            calls["n"] += 1
            if calls["n"] == n:
                (stop or _interrupt)()
            return real_step(self, x, y)

        monkeypatch.setattr(Trainer, "train_step", step)
        return lambda: monkeypatch.setattr(Trainer, "train_step", real_step)

    return patch
