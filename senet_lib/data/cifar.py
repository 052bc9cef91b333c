"""Where the data comes from: CIFAR-10/100 on disk (search, safe reading, checksums, download),
:func:`load_dataset` by name, :func:`data_status` and the runs' :func:`load_run_data`."""

from __future__ import annotations

import hashlib
import numbers
import os
import re
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from ..env import REPO_ROOT, get_paths, resolve_folder
from ..errors import UserError
from ..safe_pickle import CorruptFileError, load_cifar_pickle
from .dataset import DATASETS, SYNTHETIC_LABEL, DataWarning, ImageDataset, ImageSplit, channel_stats
from .synthetic import fallback_to_synthetic, make_synthetic

#: Where Kaggle mounts attached datasets; searched up to :data:`KAGGLE_MAX_DEPTH` levels deep.
KAGGLE_INPUT = Path("/kaggle/input")

KAGGLE_MAX_DEPTH = 4


# --------------------------------------------------------------------------- CIFAR layout
@dataclass(frozen=True)
class _CifarSpec:
    name: str
    label: str
    folder: str  # e.g. "cifar-10-batches-py"
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    labels_key: str
    names_key: str
    coarse_key: str | None  # CIFAR-100's superclass labels ("coarse_labels"), None for CIFAR-10
    coarse_names_key: str | None
    url: str
    archive: str
    archive_md5: str
    md5: dict[str, str]  # file name → official MD5

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)


@cache
def _spec(name: str) -> _CifarSpec:
    """The layout, URL and official checksums of ``name``, as torchvision's dataset classes declare them."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls, label, labels_key = {
        "cifar10": (CIFAR10, "CIFAR-10", "labels"),
        "cifar100": (CIFAR100, "CIFAR-100", "fine_labels"),
    }[name]
    md5 = {f: m for f, m in [*cls.train_list, *cls.test_list]}
    md5[cls.meta["filename"]] = cls.meta["md5"]
    return _CifarSpec(
        name=name,
        label=label,
        folder=cls.base_folder,
        train_files=tuple(f for f, _ in cls.train_list),
        test_files=tuple(f for f, _ in cls.test_list),
        meta_file=cls.meta["filename"],
        labels_key=labels_key,
        names_key=cls.meta["key"],
        coarse_key="coarse_labels" if name == "cifar100" else None,
        coarse_names_key="coarse_label_names" if name == "cifar100" else None,
        url=cls.url,
        archive=cls.filename,
        archive_md5=cls.tgz_md5,
        md5=md5,
    )


def _check_name(name: str, allow_auto: bool = False) -> str:
    key = name.strip().lower().replace("-", "").replace("_", "") if isinstance(name, str) else name
    valid = DATASETS + (("auto",) if allow_auto else ())
    if key not in valid:
        raise ValueError(f"Unknown dataset {name!r}: use one of {', '.join(valid)}.")
    return key


def _check_cifar_name(name: str) -> str:
    key = _check_name(name)
    if key not in ("cifar10", "cifar100"):
        raise ValueError(f"{name!r} is not a CIFAR dataset: use 'cifar10' or 'cifar100'.")
    return key


def _kaggle_dirs() -> list[Path]:
    """Every folder under :data:`KAGGLE_INPUT`, breadth first, at most :data:`KAGGLE_MAX_DEPTH` levels deep."""
    if not KAGGLE_INPUT.is_dir():
        return []
    found, level = [], [KAGGLE_INPUT]
    for _ in range(KAGGLE_MAX_DEPTH + 1):
        found.extend(level)
        nxt = []
        for folder in level:
            try:
                nxt.extend(sorted(p for p in folder.iterdir() if p.is_dir()))
            except OSError:
                continue
        level = nxt
    return found


def search_dirs(name: str, root: str | Path | None = None) -> list[Path]:
    """The folders searched for ``name``: ``root`` (default ``$SENET_DATA_DIR``), the checkout's ``data/``,
    then ``/kaggle/input`` a few levels deep."""
    _check_cifar_name(name)
    first = resolve_folder(root, "The data folder") if root is not None else get_paths(create=False).data
    candidates = [first]
    if REPO_ROOT is not None:
        candidates.append(REPO_ROOT / "data")
    candidates.extend(_kaggle_dirs())
    seen, ordered = set(), []
    for folder in candidates:
        if folder not in seen:
            seen.add(folder)
            ordered.append(folder)
    return ordered


def _missing(folder: Path, spec: _CifarSpec) -> list[str]:
    return [f for f in spec.files if not (folder / f).is_file()]


def find_cifar(name: str, root: str | Path | None = None) -> Path | None:
    """The first folder of :func:`search_dirs` that holds a complete copy of ``name``
    (e.g. the parent of ``cifar-10-batches-py/``), or None."""
    spec = _spec(_check_cifar_name(name))
    for folder in search_dirs(name, root):
        if not _missing(folder / spec.folder, spec):
            return folder
        if folder.name == spec.folder and not _missing(folder, spec):  # pointed at the layout folder itself
            return folder.parent
    return None


def _describe_search(folders: list[Path]) -> str:
    """The searched folders, with the Kaggle tree summarised."""
    plain = [str(f) for f in folders if not f.is_relative_to(KAGGLE_INPUT)]
    kaggle = [f for f in folders if f.is_relative_to(KAGGLE_INPUT)]
    if kaggle:
        plain.append(
            f"{KAGGLE_INPUT} and {len(kaggle) - 1} folders below it (up to {KAGGLE_MAX_DEPTH} levels)"
        )
    return ", ".join(plain)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- CIFAR reading
def _str(value: object) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _read_dict(path: Path) -> dict[str, object]:
    """A CIFAR file as a dict with ``str`` keys (the official files have Python 2 ``str`` keys,
    re-packed copies may have ``bytes`` keys)."""
    obj = load_cifar_pickle(path)
    if not isinstance(obj, dict):
        raise CorruptFileError(
            f"{path} holds a {type(obj).__name__}, not the dict a CIFAR file holds: delete it and download again."
        )
    return {_str(k): v for k, v in obj.items()}


def _read_batch(
    path: Path, labels_key: str, num_classes: int, coarse: tuple[str, int] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """``data`` uint8 ``[N, 3072]``, labels ``[N]``, file names (possibly empty) and, with ``coarse``
    = (key, number of superclasses), the superclass labels when the file has them; validated."""
    entry = _read_dict(path)
    names = entry.get("filenames")
    names = [_str(n) for n in names] if isinstance(names, list) else []
    data, labels = entry.get("data"), entry.get(labels_key)
    problem = None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        problem = "its 'data' is not a uint8 array of shape [N, 3072]"
    elif labels is None:
        problem = f"it has no {labels_key!r} entry"
    else:
        labels = np.asarray(labels)
        if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            problem = f"its {labels_key!r} are not {data.shape[0]} integers"
        elif labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            problem = f"its labels fall outside 0..{num_classes - 1}"
    coarse_labels = None
    if problem is None and coarse is not None and entry.get(coarse[0]) is not None:
        coarse_labels = np.asarray(entry[coarse[0]])
        if coarse_labels.shape != (data.shape[0],) or not np.issubdtype(coarse_labels.dtype, np.integer):
            problem = f"its {coarse[0]!r} are not {data.shape[0]} integers"
        elif coarse_labels.size and (coarse_labels.min() < 0 or coarse_labels.max() >= coarse[1]):
            problem = f"its {coarse[0]!r} fall outside 0..{coarse[1] - 1}"
        else:
            coarse_labels = coarse_labels.astype(np.int64)
    if problem:
        raise CorruptFileError(
            f"{path} is not a valid CIFAR batch ({problem}): delete it and download again."
        )
    return data, labels.astype(np.int64), names, coarse_labels


#: File names the project's JPEG pack gives its images (``../shared/tools/cifar10_jpeg.py``: quality 75).
_JPEG_Q75_NAME = re.compile(r"(train|test)_\d{5}\.jpg")


def _read_split(
    folder: Path, files: tuple[str, ...], spec: _CifarSpec, num_classes: int, num_coarse: int | None = None
) -> tuple[ImageSplit, list[str]]:
    """One split; superclass labels are kept when ``num_coarse`` is given and every file has them."""
    coarse_spec = (spec.coarse_key, num_coarse) if spec.coarse_key and num_coarse else None
    parts = [_read_batch(folder / f, spec.labels_key, num_classes, coarse_spec) for f in files]
    data = np.concatenate([d for d, _, _, _ in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([lab for _, lab, _, _ in parts])
    names = [n for _, _, batch_names, _ in parts for n in batch_names]
    coarse = None
    if coarse_spec and all(c is not None for *_, c in parts):
        coarse = torch.from_numpy(np.concatenate([c for *_, c in parts]))
    return ImageSplit(torch.from_numpy(data), torch.from_numpy(labels), coarse), names


#: File names the project's lossless pack gives its images (official pixels, test images 0-999 only).
_LOSSLESS_NAME = re.compile(r"(train|test)_\d{5}\.png")
#: How such a copy is named in every label, figure and record.
LOSSLESS_KIND = "lossless train, official test images 0–999"


def _copy_kind(train_names: list[str], test_names: list[str]) -> str | None:
    """What a copy whose checksums differ is (``"JPEG q75 copy"``, ``"JPEG copy"``,
    :data:`LOSSLESS_KIND`), else None."""
    names = train_names + test_names
    if names and all(_LOSSLESS_NAME.fullmatch(n) for n in names) and len(test_names) == 1000:
        return LOSSLESS_KIND
    if not names or not all(n.lower().endswith(".jpg") for n in names):
        return None
    return "JPEG q75 copy" if all(_JPEG_Q75_NAME.fullmatch(n) for n in names) else "JPEG copy"


#: How many classes each CIFAR dataset has (its meta file must list exactly these).
_NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


def _load_cifar(name: str, parent: Path) -> ImageDataset:
    """Read a complete standard-layout copy below ``parent`` (checksums compared, unpickled safely)."""
    spec = _spec(name)
    folder = parent / spec.folder
    differ = [f for f in spec.files if _md5(folder / f) != spec.md5[f]]
    meta = _read_dict(folder / spec.meta_file)
    names = meta.get(spec.names_key)
    if not isinstance(names, list) or not names:
        raise CorruptFileError(
            f"{folder / spec.meta_file} has no {spec.names_key!r} list of class names: delete it and download again."
        )
    if len(names) != _NUM_CLASSES[name]:
        raise CorruptFileError(
            f"{folder / spec.meta_file} lists {len(names)} class names but {spec.label} has "
            f"{_NUM_CLASSES[name]} classes: the file is damaged or belongs to another dataset; delete it and "
            "download again."
        )
    classes = [_str(n) for n in names]
    coarse_names = meta.get(spec.coarse_names_key) if spec.coarse_names_key else None
    coarse_classes = (
        [_str(n) for n in coarse_names] if isinstance(coarse_names, list) and coarse_names else None
    )
    num_coarse = len(coarse_classes) if coarse_classes else None
    train, train_names = _read_split(folder, spec.train_files, spec, len(classes), num_coarse)
    test, test_names = _read_split(folder, spec.test_files, spec, len(classes), num_coarse)
    if train.coarse_labels is None or test.coarse_labels is None:
        coarse_classes = None
        train.coarse_labels = test.coarse_labels = None
    label, notes = spec.label, []
    if differ:
        kind = _copy_kind(train_names, test_names)
        label = f"{spec.label} ({kind or 'checksums differ from the official files'})"
        notes.append(f"MD5 differs from the official release: {', '.join(differ)}")
        if kind == LOSSLESS_KIND:
            notes.append(
                "lossless copy: the official training pixels, and only the first 1,000 official test images "
                "(accuracy on 1,000 images has a standard error near 0.9 points at 90 %)"
            )
        elif kind:
            notes.append(
                f"{kind}: every image is stored under a .jpg name (the official files hold PNG names)"
            )
        warnings.warn(
            f"{folder}: {len(differ)} of {len(spec.files)} files differ from the official {spec.label} release "
            f"({', '.join(differ)}); using them anyway and labelling results {label!r}. For official numbers, "
            "delete the folder and download the dataset again.",
            DataWarning,
            stacklevel=4,  # the caller of load_dataset
        )
    mean, std = channel_stats(train.images)
    return ImageDataset(
        name=name,
        classes=classes,
        train=train,
        test=test,
        mean=mean,
        std=std,
        source=str(folder),
        synthetic=False,
        label=label,
        notes=notes,
        coarse_classes=coarse_classes,
    )


def _download(name: str, dest: Path) -> None:
    """Download and unpack ``name`` into ``dest`` through torchvision (archive MD5 checked)."""
    from torchvision.datasets.utils import download_and_extract_archive

    spec = _spec(name)
    dest.mkdir(parents=True, exist_ok=True)
    download_and_extract_archive(
        spec.url, str(dest), filename=spec.archive, md5=spec.archive_md5, remove_finished=True
    )


def _placement_help(spec: _CifarSpec) -> str:
    files = ", ".join(spec.files)
    return (
        f"put the unpacked {spec.folder}/ folder ({files}) in one of those folders or point "
        f"SENET_DATA_DIR at the folder that contains it (see data/README.md); "
        'the "synthetic" dataset works offline (load_dataset("synthetic"), or --dataset synthetic)'
    )


def _incomplete_copies(folders: list[Path], spec: _CifarSpec) -> str:
    """``" (… lacks data_batch_3)"`` for each searched folder holding a partial copy, else ``""``."""
    found = []
    for folder in folders:
        for candidate in (
            (folder / spec.folder, folder) if folder.name == spec.folder else (folder / spec.folder,)
        ):
            missing = _missing(candidate, spec) if candidate.is_dir() else []
            if missing:
                found.append(f"{candidate} lacks {', '.join(missing)}")
                break
    return f" (an incomplete copy: {'; '.join(found)})" if found else ""


def _get_cifar(name: str, root: str | Path | None, download: bool) -> ImageDataset:
    """Find ``name`` locally, else download it; raise FileNotFoundError naming the folders searched."""
    spec = _spec(name)
    found = find_cifar(name, root)
    if found is not None:
        return _load_cifar(name, found)
    searched = search_dirs(name, root)
    if not download:
        raise FileNotFoundError(
            f"{spec.label} was not found in {_describe_search(searched)}{_incomplete_copies(searched, spec)} "
            f"and downloading is off (download=False, --no-download): {_placement_help(spec)}."
        )
    dest = searched[0]
    try:
        _download(name, dest)
    except Exception as err:  # offline: URLError / OSError / RuntimeError, depending on the failure
        raise FileNotFoundError(
            f"{spec.label} was not found in {_describe_search(searched)}{_incomplete_copies(searched, spec)} "
            f"and could not be downloaded to {dest} ({type(err).__name__}: {err}): {_placement_help(spec)}."
        ) from err
    if _missing(dest / spec.folder, spec):
        raise FileNotFoundError(
            f"The {spec.label} download into {dest} is incomplete (missing "
            f"{', '.join(_missing(dest / spec.folder, spec))}): delete {dest / spec.folder} and try again."
        )
    return _load_cifar(name, dest)


def load_dataset(
    name: str = "auto",
    root: str | Path | None = None,
    download: bool = True,
    synthetic_size: tuple[int, int] = (5000, 1000),
    seed: int = 0,
) -> ImageDataset:
    """Load ``"cifar10"``, ``"cifar100"``, ``"synthetic"`` or ``"auto"`` (``$SENET_DATASET`` if set: CIFAR-10
    where it can be had, else synthetic with a :class:`DataWarning`). ``root`` is searched first and is
    the download target.

    Raises:
        ValueError: unknown dataset name.
        FileNotFoundError: CIFAR asked for by name, not found and not downloadable.
        senet_lib.safe_pickle.UnsafePickleError / CorruptFileError: a file that is not a CIFAR file.
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
        return fallback_to_synthetic(str(err), synthetic_size, seed)


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
        dest = resolve_folder(root, "The data folder") if root is not None else get_paths(create=False).data
        auto = f"download CIFAR-10 into {dest}; if that fails (offline), {SYNTHETIC_LABEL}"
    lines.append(f"{'auto':<9}: {auto}")
    return "\n".join(lines)


#: Seed of the class-balanced subsets and synthetic data of every run (notebooks and command line).
DATA_SEED = 0


#: The most images a run's split may hold: CIFAR's own split sizes, for CIFAR and for the synthetic
#: stand-in alike (synthetic data are generated at the size asked for, so a huge size would exhaust the
#: memory after minutes instead of failing at once).
MAX_SPLIT = {"train": 50_000, "test": 10_000}


class SubsetError(ValueError, UserError):
    """A subset size a run's data cannot have: ``split`` is ``"train"`` or ``"test"``, ``problem``
    says what the size must be."""

    def __init__(self, split: str, problem: str) -> None:
        super().__init__(f"{split}_subset {problem}.")
        self.split, self.problem = split, problem


def check_subsets(dataset: str, train_subset: int | None, test_subset: int | None) -> None:
    """Check a run's subset sizes (``None`` = whole split) before anything is loaded: whole numbers from
    one image per class to :data:`MAX_SPLIT`.

    Raises:
        SubsetError: the first size that cannot be used, with what it must be.
        ValueError: an unknown dataset name.
    """
    key = _check_name(dataset, allow_auto=True)
    if key == "auto" and os.environ.get("SENET_DATASET"):
        key = _check_name(os.environ["SENET_DATASET"], allow_auto=True)
    classes = 100 if key == "cifar100" else 10
    for split, n in (("train", train_subset), ("test", test_subset)):
        if n is None:
            continue
        most = MAX_SPLIT[split]
        if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and classes <= n <= most):
            raise SubsetError(
                split,
                f"must be a whole number from {classes} (one image per class) to {most:,} (CIFAR's {split} "
                f"split), got {n!r}",
            )


def load_run_data(
    dataset: str,
    train_subset: int | None,
    test_subset: int | None,
    root: str | Path | None = None,
    download: bool = True,
) -> ImageDataset:
    """The data of a run: ``dataset`` reduced to class-balanced subsets (seed :data:`DATA_SEED`), the
    same in notebooks and on the command line, so they find each other's runs.

    Raises:
        SubsetError: a subset size that cannot be used, before anything is loaded.
    """
    check_subsets(dataset, train_subset, test_subset)
    synthetic_size = (train_subset or 5000, test_subset or 1000)
    data = load_dataset(dataset, root=root, download=download, synthetic_size=synthetic_size, seed=DATA_SEED)
    if train_subset is not None or test_subset is not None:
        train_n = train_subset if train_subset is not None and train_subset < len(data.train) else None
        test_n = test_subset if test_subset is not None and test_subset < len(data.test) else None
        if train_n is not None or test_n is not None:
            data = data.subset(train_n, test_n, seed=DATA_SEED)
    return data
