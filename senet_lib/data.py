"""Datasets and loaders: CIFAR-10/100 from a local copy (or a download), a synthetic fallback,
and two input pipelines.

Where the data comes from (:func:`load_dataset`):

* ``"cifar10"`` / ``"cifar100"``: an existing copy in the standard layout
  (``cifar-10-batches-py/`` or ``cifar-100-python/``) in one of :func:`search_dirs` — the data
  folder (``$SENET_DATA_DIR``), the checkout's ``data/``, and folders under ``/kaggle/input`` —
  else a download through torchvision into the data folder. Files are read with the restricted
  unpickler of :mod:`senet_lib.safe_pickle` (never ``pickle.load``) and their MD5 sums are
  compared with the official ones; a copy that differs is used, with one warning and a label
  that says so.
* ``"synthetic"``: coloured shapes generated from a seed (:func:`make_synthetic`), for machines
  with no internet and for tests. Everything made from it is labelled as not CIFAR.
* ``"auto"`` (or ``$SENET_DATASET``): CIFAR-10 when it can be had, else synthetic, said loudly.

Pipelines (:func:`make_loaders`): :class:`DeviceLoader` keeps a whole split on the device and
augments batches there with a few tensor operations; :class:`TorchLoader` is the textbook path
(``torchvision.transforms.v2`` on PIL images in a ``DataLoader``). Both yield normalised float32
batches on the device and reshuffle deterministically per epoch.

This module imports only from :mod:`senet_lib.env` (and its sibling :mod:`~senet_lib.safe_pickle`).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .env import REPO_ROOT, get_paths
from .safe_pickle import CorruptFileError, load_cifar_pickle

__all__ = [
    "DATASETS",
    "DataWarning",
    "DeviceLoader",
    "ImageDataset",
    "ImageSplit",
    "TorchLoader",
    "balanced_indices",
    "cutout",
    "data_status",
    "find_cifar",
    "load_dataset",
    "make_loaders",
    "make_synthetic",
    "normalize_images",
    "random_crop",
    "search_dirs",
]

DATASETS = ("cifar10", "cifar100", "synthetic")
PIPELINES = ("auto", "device", "torch")

#: Where Kaggle mounts attached datasets; searched up to :data:`KAGGLE_MAX_DEPTH` levels deep.
KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_MAX_DEPTH = 4

SYNTHETIC_LABEL = "synthetic shapes (not CIFAR)"


class DataWarning(UserWarning):
    """Data that is usable but not what was asked for (altered CIFAR copy, synthetic fallback)."""


# --------------------------------------------------------------------------- containers
@dataclass(repr=False)
class ImageSplit:
    """One split: ``images`` uint8 ``[N, 3, H, W]`` (NCHW, CPU) and ``labels`` int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 [N, 3, H, W], got {self.images.dtype} {list(self.images.shape)}: "
                "convert them with (x * 255).round().to(torch.uint8) and permute to NCHW."
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must have shape [{self.images.shape[0]}] to match the images, "
                f"got {list(self.labels.shape)}: pass one label per image."
            )
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return f"ImageSplit(images=uint8{list(self.images.shape)}, labels=int64[{len(self)}])"

    def take(self, indices: torch.Tensor) -> ImageSplit:
        """The samples at ``indices``, in that order."""
        return ImageSplit(self.images[indices], self.labels[indices])


@dataclass(repr=False)
class ImageDataset:
    """A dataset with both splits, its class names, normalisation statistics and provenance."""

    name: str  # "cifar10" | "cifar100" | "synthetic"
    classes: list[str]
    train: ImageSplit
    test: ImageSplit
    mean: tuple[float, float, float]  # per channel, [0, 1] units, from the training split
    std: tuple[float, float, float]
    source: str  # folder read from, or "procedurally generated (seed N)"
    synthetic: bool
    label: str  # for figures and records, e.g. "CIFAR-10" or "synthetic shapes (not CIFAR)"
    notes: list[str] = field(default_factory=list)  # e.g. checksum mismatches, subset sizes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.label!r}: {self.num_classes} classes, train {len(self.train)}, "
            f"test {len(self.test)}, source={self.source!r})"
        )

    def subset(self, train: int | None, test: int | None, seed: int = 0) -> ImageDataset:
        """A class-balanced, deterministic subset: ``train`` / ``test`` samples (None keeps the split).

        Each class gets ``n // num_classes`` samples; the ``n % num_classes`` left over go to
        classes drawn with ``seed``. A smaller subset with the same seed is contained in a larger
        one. Normalisation statistics stay those of the full training split.
        """
        splits = []
        for split_name, split, n in (("train", self.train, train), ("test", self.test, test)):
            if n is None:
                splits.append(split)
                continue
            splits.append(split.take(_balanced_subset(split.labels, n, self.num_classes, seed, split_name)))
        return ImageDataset(
            name=self.name,
            classes=list(self.classes),
            train=splits[0],
            test=splits[1],
            mean=self.mean,
            std=self.std,
            source=self.source,
            synthetic=self.synthetic,
            label=self.label,
            notes=[*self.notes, f"class-balanced subset (train {train}, test {test}, seed {seed})"],
        )

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, 3, H, W]`` on any device → float32 ``(x / 255 - mean) / std`` on the same device."""
        return normalize_images(images, self.mean, self.std)


def normalize_images(
    images: torch.Tensor, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` → float32 ``(x / 255 - mean) / std`` per channel, on the images' device."""
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {images.dtype}: pass the raw uint8 pixels.")
    m, s = _stats_tensors(mean, std, images.device)
    return _normalize(images, m, s)


def _stats_tensors(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` as float32 ``[1, C, 1, 1]`` tensors on ``device``."""
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return m, s


def _normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0).sub_(mean).div_(std)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation of uint8 images, in [0, 1] units.

    Computed exactly from each channel's 256-bin histogram (fast, and no float copy of the data).
    """
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        p = counts / counts.sum()
        mean = (p * values).sum()
        var = (p * (values - mean).square()).sum()
        means.append(round(float(mean) / 255, 6))
        stds.append(round(float(var.sqrt()) / 255, 6))
    return tuple(means), tuple(stds)


# --------------------------------------------------------------------------- class balance
def balanced_indices(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``per_class`` samples of every class present in ``labels``, sorted ascending.

    Samples are drawn at random with ``seed``; a smaller ``per_class`` with the same seed picks
    a subset of a larger one.

    Raises:
        ValueError: a class has fewer than ``per_class`` samples.
    """
    return _balanced_subset(labels, None, None, seed, "labels", per_class=per_class)


def _balanced_subset(
    labels: torch.Tensor,
    n: int | None,
    num_classes: int | None,
    seed: int,
    what: str,
    per_class: int | None = None,
) -> torch.Tensor:
    """Sorted indices of a class-balanced subset: ``per_class`` each, or ``n`` in total."""
    labels = labels.cpu()
    classes = torch.arange(num_classes) if num_classes is not None else torch.unique(labels)
    gen = torch.Generator().manual_seed(seed)
    if per_class is None:
        assert n is not None
        if not 0 < n <= len(labels):
            raise ValueError(
                f"Cannot take {n} {what} samples from a split of {len(labels)}: choose 1..{len(labels)}."
            )
        counts = torch.full((len(classes),), n // len(classes), dtype=torch.int64)
        counts[torch.randperm(len(classes), generator=gen)[: n % len(classes)]] += 1
    else:
        if per_class < 1:
            raise ValueError(f"per_class must be at least 1, got {per_class}.")
        counts = torch.full((len(classes),), per_class, dtype=torch.int64)
    picked = []
    for cls, count in zip(classes.tolist(), counts.tolist(), strict=True):
        members = torch.nonzero(labels == cls).flatten()
        if count > len(members):
            raise ValueError(
                f"Class {cls} has only {len(members)} {what} samples but {count} were asked for: "
                "ask for a smaller subset."
            )
        order = torch.randperm(len(members), generator=torch.Generator().manual_seed(seed * 1_000_003 + cls))
        picked.append(members[order[:count]])
    return torch.sort(torch.cat(picked)).values


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
    """The folders searched for ``name``'s standard-layout folder, in order.

    ``root`` (default: the data folder, ``$SENET_DATA_DIR``), then the checkout's ``data/``,
    then ``/kaggle/input`` and every folder below it up to a few levels deep.
    """
    _check_cifar_name(name)
    first = Path(root).expanduser().resolve() if root is not None else get_paths(create=False).data
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


def _read_batch(path: Path, labels_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``data`` uint8 ``[N, 3072]``, labels ``[N]`` and file names (possibly empty) of one batch file, validated."""
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
    if problem:
        raise CorruptFileError(
            f"{path} is not a valid CIFAR batch ({problem}): delete it and download again."
        )
    return data, labels.astype(np.int64), names


#: File names the project's JPEG pack gives its images (``../shared/tools/cifar10_jpeg.py``: quality 75).
_JPEG_Q75_NAME = re.compile(r"(train|test)_\d{5}\.jpg")


def _read_split(
    folder: Path, files: tuple[str, ...], spec: _CifarSpec, num_classes: int
) -> tuple[ImageSplit, list[str]]:
    parts = [_read_batch(folder / f, spec.labels_key, num_classes) for f in files]
    data = np.concatenate([d for d, _, _ in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([lab for _, lab, _ in parts])
    names = [n for _, _, batch_names in parts for n in batch_names]
    return ImageSplit(torch.from_numpy(data), torch.from_numpy(labels)), names


def _copy_kind(names: list[str]) -> str | None:
    """``"JPEG q75 copy"`` for the project's JPEG pack, ``"JPEG copy"`` when every image is named
    ``*.jpg`` (the official files name PNGs), else None."""
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
    train, train_names = _read_split(folder, spec.train_files, spec, len(classes))
    test, test_names = _read_split(folder, spec.test_files, spec, len(classes))
    label, notes = spec.label, []
    if differ:
        kind = _copy_kind(train_names + test_names)
        label = f"{spec.label} ({kind or 'checksums differ from the official files'})"
        notes.append(f"MD5 differs from the official release: {', '.join(differ)}")
        if kind:
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


# --------------------------------------------------------------------------- synthetic shapes
#: (name, hue in [0, 1]); every colour is shared by two shapes and every shape by two colours.
_COLOURS = (("red", 0.0), ("yellow", 0.15), ("green", 0.33), ("blue", 0.62), ("purple", 0.8))
_SHAPES = ("disk", "square", "triangle", "cross", "ring")
#: class k = (shape k // 2, colour (k // 2 + k % 2) mod 5): neither colour nor shape alone tells the class.
SYNTHETIC_CLASSES = tuple((s, (s + j) % len(_COLOURS)) for s in range(len(_SHAPES)) for j in range(2))


def _shape_distance(shape: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed distance (pixels, negative inside) to ``shape`` of size ``r``, at rotated offsets (u, v)."""
    if shape == "disk":
        return np.hypot(u, v) - r
    if shape == "ring":
        return np.abs(np.hypot(u, v) - 0.7 * r) - 0.3 * r
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.8 * r
    if shape == "cross":
        w = 0.3 * r
        return np.minimum(np.maximum(np.abs(u) - r, np.abs(v) - w), np.maximum(np.abs(u) - w, np.abs(v) - r))
    if shape == "triangle":  # equilateral, circumradius r, pointing up (image y grows downwards)
        angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        return np.max([np.cos(a) * u + np.sin(a) * v for a in angles], axis=0) - 0.5 * r
    raise ValueError(f"unknown shape {shape!r}")


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV → RGB, inputs in [0, 1], output ``[..., 3]``."""
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.astype(np.int64) % 6
    rgb = np.select(
        [i[..., None] == k for k in range(6)],
        [np.stack(c, axis=-1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))],
    )
    return rgb


def _draw_shapes(labels: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """uint8 ``[N, 3, size, size]`` images of the shapes and colours of ``labels``."""
    n = len(labels)
    shape_of = np.array([SYNTHETIC_CLASSES[k][0] for k in range(len(SYNTHETIC_CLASSES))])[labels]
    hue_of = np.array([_COLOURS[c][1] for _, c in SYNTHETIC_CLASSES])[labels]
    f32 = np.float32
    # geometry: centre, size and rotation per image
    cx, cy = rng.uniform(10, size - 10, n).astype(f32), rng.uniform(10, size - 10, n).astype(f32)
    radius = rng.uniform(6.0, 10.0, n).astype(f32)
    theta = rng.uniform(-np.pi / 6, np.pi / 6, n).astype(f32)
    grid = np.arange(size, dtype=f32) + f32(0.5)
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    dist = np.empty((n, size, size), dtype=f32)
    for s, shape in enumerate(_SHAPES):
        idx = shape_of == s
        dist[idx] = _shape_distance(shape, u[idx], v[idx], radius[idx, None, None])
    coverage = np.clip(f32(0.5) - dist, 0.0, 1.0)[:, None]  # anti-aliased edge, [N, 1, H, W]
    # colours: class hue with jitter; background a random dim, weakly tinted grey with a gradient
    hue = (hue_of + rng.normal(0, 0.025, n)) % 1.0
    fg = _hsv_to_rgb(hue, rng.uniform(0.55, 1.0, n), rng.uniform(0.6, 1.0, n)).astype(f32)[:, :, None, None]
    bg = (rng.uniform(0.05, 0.6, (n, 1, 1, 1)) + rng.normal(0, 0.06, (n, 3, 1, 1))).astype(f32)
    centred = grid - f32(size / 2)
    slope = rng.normal(0, 0.006, (n, 2, 1, 1)).astype(f32)
    bg = bg + slope[:, :1] * centred[None, None, None, :] + slope[:, 1:] * centred[None, None, :, None]
    img = rng.standard_normal((n, 3, size, size), dtype=f32)
    img *= f32(0.05)
    img += bg * (1 - coverage) + fg * coverage
    np.clip(img, 0.0, 1.0, out=img)
    img *= 255
    img += f32(0.5)
    return img.astype(np.uint8)


def _synthetic_split(n: int, rng: np.random.Generator) -> ImageSplit:
    labels = rng.permutation(np.arange(n) % len(SYNTHETIC_CLASSES))
    images = _draw_shapes(labels, rng)
    return ImageSplit(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def make_synthetic(n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> ImageDataset:
    """Coloured shapes, 32×32 RGB, in 10 classes (e.g. "red disk", "yellow disk", "yellow square").

    Five shapes × five colours, paired so that each colour belongs to two classes and each shape
    to two classes: a network must combine shape *and* colour. Position, size, rotation, hue,
    saturation, brightness, background and noise vary per image. The same ``seed`` gives the
    same images; the train and test splits come from independent streams, so changing
    ``n_train`` leaves the test split unchanged. Classes are balanced (exactly, when the sizes
    are multiples of 10). Labelled ``"synthetic shapes (not CIFAR)"``.
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}.")
    train = _synthetic_split(n_train, np.random.default_rng([seed, 0]))
    test = _synthetic_split(n_test, np.random.default_rng([seed, 1]))
    mean, std = channel_stats(train.images)
    return ImageDataset(
        name="synthetic",
        classes=[f"{_COLOURS[c][0]} {_SHAPES[s]}" for s, c in SYNTHETIC_CLASSES],
        train=train,
        test=test,
        mean=mean,
        std=std,
        source=f"procedurally generated (seed {seed})",
        synthetic=True,
        label=SYNTHETIC_LABEL,
    )


# --------------------------------------------------------------------------- entry point
def _fallback_to_synthetic(reason: str, synthetic_size: tuple[int, int], seed: int) -> ImageDataset:
    """Say loudly (banner + warning) that synthetic data replaces CIFAR-10, then make it."""
    how = (
        "To use CIFAR-10: connect to the internet and run again, attach a CIFAR-10 dataset on Kaggle, "
        "or place cifar-10-batches-py/ in the data folder (see data/README.md)."
    )
    bar = "=" * 78
    print(
        f"{bar}\nUSING SYNTHETIC DATA, NOT CIFAR-10\n{reason}\n"
        f"Every result below is on {SYNTHETIC_LABEL!r}, not on CIFAR.\n{how}\n{bar}"
    )
    warnings.warn(f"Using synthetic shapes instead of CIFAR-10: {reason} {how}", DataWarning, stacklevel=3)
    return make_synthetic(*synthetic_size, seed=seed)


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


# --------------------------------------------------------------------------- augmentation
def random_crop(images: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop every image of ``[B, C, H, W]`` at its own offset from a zero-padded copy.

    ``offsets`` is ``[B, 2]`` (row, column) in ``0..2*padding``; offset ``(padding, padding)``
    returns the image unchanged. One gather, no loop over samples.
    """
    if padding == 0:
        return images
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)  # [B, H]
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)  # [B, W]
    bi = torch.arange(b, device=images.device)[:, None, None, None]
    ci = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def cutout(images: torch.Tensor, centres: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a ``size``×``size`` square (clipped at the border) around each of ``centres``.

    ``centres`` is ``[B, K, 2]`` (row, column): K holes per image (Cutout, DeVries & Taylor 2017).
    """
    if size <= 0:
        return images
    h, w = images.shape[-2:]
    top_left = centres - size // 2  # [B, K, 2]
    r = torch.arange(h, device=images.device)
    c = torch.arange(w, device=images.device)
    in_rows = (r >= top_left[..., :1]) & (r < top_left[..., :1] + size)  # [B, K, H]
    in_cols = (c >= top_left[..., 1:]) & (c < top_left[..., 1:] + size)  # [B, K, W]
    mask = (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1)  # [B, H, W]
    return images.masked_fill(mask[:, None], 0)


def _mix(*values: int) -> int:
    """A deterministic 63-bit seed from integers (seed, epoch, index, ...)."""
    out = 0x9E3779B97F4A7C15
    for v in values:
        out = (out * 6364136223846793005 + int(v) + 1442695040888963407) % (1 << 63)
    return out


@dataclass(frozen=True)
class _EpochDraws:
    """All random choices of one training epoch, drawn on the CPU (identical on every device)."""

    order: torch.Tensor  # [N] sample order
    offsets: torch.Tensor  # [N, 2] crop offsets
    flips: torch.Tensor  # [N] bool
    centres: torch.Tensor  # [N, K, 2] cutout centres

    @classmethod
    def draw(
        cls, n: int, size: tuple[int, int], padding: int, holes: int, seed: int, epoch: int
    ) -> _EpochDraws:
        gen = torch.Generator().manual_seed(_mix(seed, epoch))
        h, w = size
        return cls(
            order=torch.randperm(n, generator=gen),
            offsets=torch.randint(0, 2 * padding + 1, (n, 2), generator=gen),
            flips=torch.rand(n, generator=gen) < 0.5,
            centres=torch.stack(
                [
                    torch.randint(0, h, (n, holes), generator=gen),
                    torch.randint(0, w, (n, holes), generator=gen),
                ],
                dim=-1,
            ),
        )

    def to(self, device: torch.device) -> _EpochDraws:
        return _EpochDraws(*(t.to(device) for t in (self.order, self.offsets, self.flips, self.centres)))


# --------------------------------------------------------------------------- loaders
class _LoaderBase:
    """What both pipelines share: batch counting, epochs and output placement."""

    def __init__(
        self,
        split: ImageSplit,
        batch_size: int,
        device: torch.device | str,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        train: bool,
        cutout: int,
        cutout_count: int,
        channels_last: bool,
        seed: int,
        padding: int = 4,
        flip: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if train and batch_size > len(split):
            raise ValueError(
                f"batch_size {batch_size} is larger than the {len(split)} training samples, so an epoch "
                "would have no full batch: use a smaller batch_size or more data."
            )
        if cutout < 0 or cutout_count < 1 or padding < 0:
            raise ValueError(
                f"cutout must be >= 0, cutout_count >= 1 and padding >= 0 (got {cutout}, {cutout_count}, {padding})."
            )
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.mean, self.std = tuple(mean), tuple(std)
        self.train = train
        self.cutout, self.cutout_count = cutout, cutout_count
        self.padding, self.flip = padding, flip
        self.channels_last = channels_last
        self.seed = seed
        self.epoch = 0
        self.num_samples = len(split)

    def __len__(self) -> int:
        if self.train:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its shuffle and augmentations)."""
        self.epoch = epoch

    def _next_epoch(self) -> int:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return epoch

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class DeviceLoader(_LoaderBase):
    """Batches from a split held on the device, augmented there with tensor operations.

    The uint8 split is copied to ``device`` once. For each training batch: gather the samples,
    crop at per-sample offsets of the zero-padded images (:func:`random_crop`), flip half of
    them, cut out ``cutout_count`` squares (:func:`cutout`), then normalise to float32. All
    random choices of an epoch are drawn on the CPU from ``(seed, epoch)``, so a run is
    reproducible and the same on every device. Test loaders (``train=False``) only normalise,
    in order, keeping the last partial batch.
    """

    def __init__(
        self,
        split: ImageSplit,
        batch_size: int,
        device: torch.device | str,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        train: bool = False,
        cutout: int = 0,
        cutout_count: int = 1,
        channels_last: bool = False,
        seed: int = 0,
        padding: int = 4,
        flip: bool = True,
    ) -> None:
        super().__init__(
            split,
            batch_size,
            device,
            mean,
            std,
            train,
            cutout,
            cutout_count,
            channels_last,
            seed,
            padding,
            flip,
        )
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self._mean, self._std = _stats_tensors(self.mean, self.std, self.device)  # built once, not per batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._next_epoch()
        draws = None
        if self.train:
            size = (self.images.shape[2], self.images.shape[3])
            draws = _EpochDraws.draw(
                self.num_samples, size, self.padding, self.cutout_count, self.seed, epoch
            ).to(self.device)
        for b in range(len(self)):
            span = slice(b * self.batch_size, (b + 1) * self.batch_size)
            if draws is None:
                x, y = self.images[span], self.labels[span]
            else:
                idx = draws.order[span]
                x, y = self.images[idx], self.labels[idx]
                x = random_crop(x, draws.offsets[span], self.padding)
                if self.flip:
                    x = torch.where(draws.flips[span, None, None, None], x.flip(3), x)
                x = cutout(x, draws.centres[span], self.cutout)
            yield self._finish(_normalize(x, self._mean, self._std)), y


class _TransformedSplit(torch.utils.data.Dataset):
    """Map-style dataset: PIL image → ``transforms.v2`` → cutout → normalised tensor.

    Each training sample's augmentation is seeded from ``(seed, epoch, index)``, so results do
    not depend on the number of worker processes.
    """

    def __init__(self, loader: TorchLoader, split: ImageSplit) -> None:
        from torchvision.transforms import v2

        self.hwc = split.images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = split.labels
        self.train, self.seed, self.epoch = loader.train, loader.seed, 0
        self.cutout, self.cutout_count = loader.cutout, loader.cutout_count
        size = self.hwc.shape[1:3]
        augment = [v2.RandomCrop(size, padding=loader.padding)] if loader.padding else []
        augment += [v2.RandomHorizontalFlip()] if loader.flip else []
        self.augment = v2.Compose([*augment, v2.PILToTensor()])
        self.to_float = v2.Compose(
            [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(loader.mean), list(loader.std))]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        if not self.train:
            x = torch.from_numpy(self.hwc[index]).permute(2, 0, 1)
            return self.to_float(x), self.labels[index]
        with torch.random.fork_rng(devices=[]):
            gen = torch.default_generator.manual_seed(_mix(self.seed, self.epoch, index))
            x = self.augment(Image.fromarray(self.hwc[index]))
            h, w = x.shape[1:]
            centres = torch.stack(
                [
                    torch.randint(0, h, (self.cutout_count,), generator=gen),
                    torch.randint(0, w, (self.cutout_count,), generator=gen),
                ],
                dim=-1,
            )
        x = cutout(x[None], centres[None], self.cutout)[0]
        return self.to_float(x), self.labels[index]


class TorchLoader(_LoaderBase):
    """The textbook pipeline: ``torchvision.transforms.v2`` on PIL images in a ``DataLoader``
    (``num_workers`` processes), batches moved to ``device``. Same augmentations and output as
    :class:`DeviceLoader`, computed per sample on the CPU."""

    def __init__(
        self,
        split: ImageSplit,
        batch_size: int,
        device: torch.device | str,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        train: bool = False,
        cutout: int = 0,
        cutout_count: int = 1,
        channels_last: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        padding: int = 4,
        flip: bool = True,
    ) -> None:
        super().__init__(
            split,
            batch_size,
            device,
            mean,
            std,
            train,
            cutout,
            cutout_count,
            channels_last,
            seed,
            padding,
            flip,
        )
        self.num_workers = num_workers
        self.dataset = _TransformedSplit(self, split)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._next_epoch()
        self.dataset.epoch = epoch
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=self.train,
            drop_last=self.train,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(_mix(self.seed, epoch)),
        )
        non_blocking = self.device.type == "cuda"
        for x, y in loader:
            yield (
                self._finish(x.to(self.device, non_blocking=non_blocking)),
                y.to(self.device, non_blocking=non_blocking),
            )


def _default_workers(device: torch.device) -> int:
    """0 on the CPU (workers would compete with training for the same cores), else up to 4."""
    if device.type == "cpu":
        return 0
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def make_loaders(
    data: ImageDataset,
    batch_size: int,
    device: torch.device,
    pipeline: str = "auto",
    cutout: int = 0,
    cutout_count: int = 1,
    channels_last: bool = False,
    num_workers: int | None = None,
    seed: int = 0,
) -> tuple[DeviceLoader | TorchLoader, DeviceLoader | TorchLoader]:
    """(train loader, test loader) for ``data`` on ``device``.

    Both yield ``(x, y)``: float32 normalised ``[B, 3, 32, 32]`` and int64 labels on ``device``;
    ``len()`` is batches per epoch and ``.num_samples`` the split size. The train loader
    reshuffles every epoch (deterministic given ``seed`` and the epoch), augments (random crop
    with 4-pixel zero padding, horizontal flip, optional ``cutout_count`` Cutout squares of
    ``cutout`` pixels) and drops the last partial batch; the test loader keeps every sample,
    in order, without augmentation.

    ``pipeline``: ``"device"`` (:class:`DeviceLoader`), ``"torch"`` (:class:`TorchLoader`), or
    ``"auto"`` = device everywhere: batched tensor augmentation costs a few per cent of a step, on
    the CPU too, where per-image PIL transforms in the main process cost about a third of it.
    ``num_workers`` is for the torch pipeline (default: 0 on cpu, up to 4 elsewhere).
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"Unknown pipeline {pipeline!r}: use one of {', '.join(PIPELINES)}.")
    device = torch.device(device)
    if pipeline == "auto":
        pipeline = "device"
    common = {
        "batch_size": batch_size,
        "device": device,
        "mean": data.mean,
        "std": data.std,
        "channels_last": channels_last,
        "seed": seed,
    }
    augment = {"cutout": cutout, "cutout_count": cutout_count}
    if pipeline == "device":
        return (
            DeviceLoader(data.train, train=True, **augment, **common),
            DeviceLoader(data.test, train=False, **common),
        )
    workers = _default_workers(device) if num_workers is None else num_workers
    return (
        TorchLoader(data.train, train=True, num_workers=workers, **augment, **common),
        TorchLoader(data.test, train=False, num_workers=workers, **common),
    )


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
