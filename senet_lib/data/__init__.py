"""Datasets and loaders: CIFAR-10/100 from a local copy (read with :mod:`senet_lib.safe_pickle`,
checked against the official MD5 sums) or a download, synthetic shapes (:func:`make_synthetic`),
``"auto"`` (CIFAR-10 if it can be had, else synthetic, said loudly), and the two pipelines of
:func:`make_loaders` (:class:`DeviceLoader`, :class:`TorchLoader`).
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
