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

from .cifar import (
    DATA_SEED,
    KAGGLE_INPUT,
    KAGGLE_MAX_DEPTH,
    MAX_SPLIT,
    SubsetError,
    check_subsets,
    data_status,
    find_cifar,
    load_dataset,
    load_run_data,
    search_dirs,
)
from .dataset import (
    DATASETS,
    PIPELINES,
    SYNTHETIC_LABEL,
    DataWarning,
    ImageDataset,
    ImageSplit,
    balanced_indices,
    channel_stats,
    normalize_images,
)
from .loaders import DeviceLoader, TorchLoader, cutout, make_loaders, random_crop
from .synthetic import SHAPES, SYNTHETIC_CLASSES, make_synthetic, shape_distance

__all__ = [
    "DATASETS",
    "DataWarning",
    "DeviceLoader",
    "ImageDataset",
    "ImageSplit",
    "MAX_SPLIT",
    "SubsetError",
    "TorchLoader",
    "balanced_indices",
    "check_subsets",
    "cutout",
    "data_status",
    "find_cifar",
    "load_dataset",
    "load_run_data",
    "make_loaders",
    "make_synthetic",
    "normalize_images",
    "random_crop",
    "search_dirs",
]
