"""Choosing the data: :func:`load_dataset` by name (CIFAR or synthetic, ``auto`` falls back loudly),
:func:`data_status` and the runs' :func:`load_run_data`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..env import get_paths
from .cifar import (
    _check_name,
    _describe_search,
    _get_cifar,
    _incomplete_copies,
    _spec,
    find_cifar,
    search_dirs,
)
from .dataset import SYNTHETIC_LABEL, ImageDataset
from .synthetic import _fallback_to_synthetic, make_synthetic


def load_dataset(
    name: str = "auto",
    root: str | Path | None = None,
    download: bool = True,
    synthetic_size: tuple[int, int] = (5000, 1000),
    seed: int = 0,
) -> ImageDataset:
    """Load ``"cifar10"``, ``"cifar100"``, ``"synthetic"`` or ``"auto"``.

    ``"auto"`` (replaced by ``$SENET_DATASET`` when that is set) means CIFAR-10 when a copy is
    found or can be downloaded, else synthetic shapes with a printed banner and a
    :class:`DataWarning`. ``root`` replaces the data folder as the first place searched and the
    download target. ``synthetic_size`` (train, test) and ``seed`` apply to synthetic data.

    Raises:
        ValueError: unknown dataset name (the message lists the valid ones).
        FileNotFoundError: CIFAR asked for by name, not found and not downloadable (the message
            names the folders searched and how to place the files).
        senet_lib.safe_pickle.UnsafePickleError / CorruptFileError: a file that is not a CIFAR
            file (the message names it and says to delete it).
    """
    key = _check_name(name, allow_auto=True)
    if key == "auto" and os.environ.get("SENET_DATASET"):
        key = _check_name(os.environ["SENET_DATASET"], allow_auto=True)
    if key == "synthetic":
        return make_synthetic(*synthetic_size, seed=seed)
    if key != "auto":
        return _get_cifar(key, root, download)
    try:
        return _get_cifar("cifar10", root, download)
    except FileNotFoundError as err:
        return _fallback_to_synthetic(str(err), synthetic_size, seed)


def data_status(root: str | Path | None = None) -> str:
    """Human-readable lines: where CIFAR-10/100 were found (or not), and what ``"auto"`` will use."""
    lines, found10 = [], None
    for name in ("cifar10", "cifar100"):
        spec = _spec(name)
        found = find_cifar(name, root)
        if name == "cifar10":
            found10 = found
        where = (
            f"found in {found / spec.folder}"
            if found
            else f"not found (searched {_describe_search(search_dirs(name, root))})"
            + _incomplete_copies(search_dirs(name, root), spec)
        )
        lines.append(f"{spec.label:<9}: {where}")
    override = os.environ.get("SENET_DATASET")
    if override:
        auto = f"SENET_DATASET={override!r} is used instead of auto"
    elif found10:
        auto = f"CIFAR-10 from {found10 / _spec('cifar10').folder}"
    else:
        dest = Path(root).expanduser().resolve() if root is not None else get_paths(create=False).data
        auto = f"download CIFAR-10 into {dest}; if that fails (offline), {SYNTHETIC_LABEL}"
    lines.append(f"{'auto':<9}: {auto}")
    return "\n".join(lines)


#: Seed of the class-balanced subsets and synthetic data of every run (notebooks and command line).
DATA_SEED = 0


def load_run_data(
    dataset: str,
    train_subset: int | None,
    test_subset: int | None,
    root: str | Path | None = None,
    download: bool = True,
) -> ImageDataset:
    """The data of a run: ``dataset`` reduced to class-balanced subsets (seed :data:`DATA_SEED`).

    Synthetic data are generated at the subset sizes directly. Notebooks 05 and 06 and the command line all
    load a run's data this way, so runs trained in one are found by the others (same run names).
    """
    synthetic_size = (train_subset or 5000, test_subset or 1000)
    data = load_dataset(dataset, root=root, download=download, synthetic_size=synthetic_size, seed=DATA_SEED)
    if train_subset is not None or test_subset is not None:
        train_n = train_subset if train_subset is not None and train_subset < len(data.train) else None
        test_n = test_subset if test_subset is not None and test_subset < len(data.test) else None
        if train_n is not None or test_n is not None:
            data = data.subset(train_n, test_n, seed=DATA_SEED)
    return data
