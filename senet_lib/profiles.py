"""Run profiles: the defaults behind every notebook's ``parameters`` cell and the command line.

``quick``  CPU and CI: synthetic data (or a small CIFAR subset), CIFAR ResNet-20 instead of
           ResNet-50, a few epochs — about a minute per notebook on 2 CPU cores.
``class``  about 30 minutes on a Kaggle T4: ResNet-50 vs SE-ResNet-50 (CIFAR stem) on full
           CIFAR-10 with a short schedule, long enough for SE to pull ahead.
``cpu``    full CIFAR-10 on a CPU with native bf16 (AMX / AVX512-BF16): ResNet-20 vs SE-ResNet-20,
           40 epochs of one-cycle SGD (Nesterov, label smoothing 0.1), about 50 minutes a network
           on 2 cores in bf16. The recipe the pretrained networks were trained with.
``paper``  the seeds' full recipe: SGD 0.9, lr 0.1 ÷10 at epochs 30/60/90, 100 epochs,
           weight decay 5e-4, batch 128.

Pick one with ``SENET_PROFILE`` (default: quick on CPU, class on a GPU), or pass a name.
A notebook may override any value in its parameters cell.

A profile is a :class:`~senet_lib.train.TrainConfig` (its recipe: the defaults are the paper's,
a profile names only what it changes) plus the profile-only fields below; the command line's
recipe flags are generated from the same fields (:func:`senet_lib.cli.config_from_args`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from .env import get_profile
from .train.config import TrainConfig

__all__ = [
    "PROFILE_SETTINGS",
    "Profile",
    "get_settings",
]

_RECIPE_FIELDS = frozenset(f.name for f in fields(TrainConfig))


@dataclass(frozen=True)
class Profile:
    """One profile: its training recipe (:attr:`config`) and what only profiles decide.

    Recipe values read through the profile as well (``profile.epochs`` is ``profile.config.epochs``).
    """

    name: str
    config: TrainConfig  # the recipe (seed = the first of ``seeds``)
    models: tuple[str, str]  # (plain, SE) pair that notebook 05 compares
    dataset: str = "cifar10"  # "auto" = CIFAR-10 if it can be had, else synthetic (said loudly)
    train_subset: int | None = None  # class-balanced subset size; None = the full split
    test_subset: int | None = None
    seeds: tuple[int, ...] = (0,)
    images_per_class: int = 50  # excitation statistics (paper Fig. 6 uses 50)
    timing_batch: int = 64  # forward+backward timing in notebook 04
    timing_repeats: int = 10

    def __getattr__(self, name: str) -> Any:
        if name in _RECIPE_FIELDS:
            return getattr(self.config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _profile(name: str, recipe: dict[str, Any], seeds: tuple[int, ...] = (0,), **settings: Any) -> Profile:
    return Profile(name, TrainConfig(**recipe, seed=seeds[0]), seeds=seeds, **settings)


#: The seeds' full recipe: TrainConfig's defaults (SGD 0.9, lr 0.1 ÷10 at epochs 30/60/90, weight decay 5e-4).
_PAPER = _profile(
    "paper",
    dict(epochs=100, batch_size=128),
    seeds=(0, 1, 2),
    models=("resnet50", "se_resnet50"),
    timing_batch=256,
)
#: One-cycle instead of the step schedule (no milestones).
_ONECYCLE = dict(schedule="onecycle", milestones=())

PROFILE_SETTINGS: dict[str, Profile] = {
    "quick": _profile(
        "quick",
        dict(epochs=4, batch_size=64, **_ONECYCLE),
        models=("resnet20", "se_resnet20"),
        dataset="auto",
        train_subset=2000,
        test_subset=1000,
        images_per_class=20,
        timing_batch=2,
        timing_repeats=3,
    ),
    "class": replace(
        _PAPER,
        name="class",
        config=TrainConfig(epochs=15, batch_size=256, lr=0.2, **_ONECYCLE),
        seeds=(0,),
        timing_batch=64,
    ),
    "cpu": _profile(
        "cpu",
        # one-cycle's default rise: the first 30 % of the steps
        dict(
            epochs=40,
            batch_size=128,
            lr=0.2,
            nesterov=True,
            decay_norm_and_bias=False,
            label_smoothing=0.1,
            **_ONECYCLE,
        ),
        seeds=(0, 1, 2),
        models=("resnet20", "se_resnet20"),
        timing_batch=128,
        timing_repeats=5,
    ),
    "paper": _PAPER,
}


def get_settings(name: str | None = None) -> Profile:
    """The :class:`Profile` called ``name`` (default: from :func:`senet_lib.env.get_profile`)."""
    return PROFILE_SETTINGS[get_profile(name)]
