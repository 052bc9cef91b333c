"""Run profiles: the defaults behind every notebook's ``parameters`` cell and the command line.

``quick``  CPU and CI: synthetic data (or a small CIFAR subset), CIFAR ResNet-20 instead of
           ResNet-50, a few epochs — about a minute per notebook on 2 CPU cores.
``class``  about 30 minutes on a Kaggle T4: ResNet-50 vs SE-ResNet-50 (CIFAR stem) on full
           CIFAR-10 with a short schedule, long enough for SE to pull ahead.
``cpu``    full CIFAR-10 on a CPU with native bf16 (AMX / AVX512-BF16): ResNet-20 vs SE-ResNet-20,
           40 epochs of one-cycle SGD (Nesterov, label smoothing 0.1), about 50 minutes a network
           on 2 cores in bf16 + channels-last. The recipe the pretrained networks were trained with.
``paper``  the seeds' full recipe: SGD 0.9, lr 0.1 ÷10 at epochs 30/60/90, 100 epochs,
           weight decay 5e-4, batch 128.

Pick one with ``SENET_PROFILE`` (default: quick on CPU, class on a GPU), or pass a name.
A notebook may override any value in its parameters cell.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .env import get_profile


@dataclass(frozen=True)
class Profile:
    """Settings shared by the notebooks and the command line for one profile."""

    name: str
    # data
    dataset: str  # "auto" = CIFAR-10 if it can be had, else synthetic (said loudly)
    train_subset: int | None  # class-balanced subset size; None = the full split
    test_subset: int | None
    # training (notebook 05, 06's fallback, the command line's defaults)
    models: tuple[str, str]  # (plain, SE) pair that notebook 05 compares
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    schedule: str  # "step" | "cosine" | "onecycle"
    milestones: tuple[int, ...]
    warmup_epochs: int
    seeds: tuple[int, ...]
    # analysis and timing
    images_per_class: int  # excitation statistics (paper Fig. 6 uses 50)
    timing_batch: int  # forward+backward timing in notebook 04
    timing_repeats: int
    # training extras (defaults = the paper's plain CIFAR recipe: flip + crop, SGD, no extras)
    nesterov: bool = False
    gamma: float = 0.1  # step schedule: LR factor at each milestone
    decay_norm_and_bias: bool = True  # False: no weight decay on norm weights and biases
    label_smoothing: float = 0.0
    cutout: int = 0  # side of the Cutout square in pixels; 0 = off (DeVries & Taylor 2017 use 16)
    cutout_count: int = 1
    cutmix: float = 0.0  # probability per batch (alpha 1.0); 0 = off
    pipeline: str = "auto"  # data pipeline passed to senet_lib.data.make_loaders

    def as_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> Profile:
        return replace(self, **changes)


PROFILE_SETTINGS: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        dataset="auto",
        train_subset=2000,
        test_subset=1000,
        models=("resnet20", "se_resnet20"),
        epochs=4,
        batch_size=64,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="onecycle",
        milestones=(),
        warmup_epochs=0,
        seeds=(0,),
        images_per_class=20,
        timing_batch=2,
        timing_repeats=3,
    ),
    "class": Profile(
        name="class",
        dataset="cifar10",
        train_subset=None,
        test_subset=None,
        models=("resnet50", "se_resnet50"),
        epochs=15,
        batch_size=256,
        lr=0.2,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="onecycle",
        milestones=(),
        warmup_epochs=0,
        seeds=(0,),
        images_per_class=50,
        timing_batch=64,
        timing_repeats=10,
    ),
    "cpu": Profile(
        name="cpu",
        dataset="cifar10",
        train_subset=None,
        test_subset=None,
        models=("resnet20", "se_resnet20"),
        epochs=40,
        batch_size=128,
        lr=0.2,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="onecycle",
        milestones=(),
        warmup_epochs=0,  # one-cycle's default rise: the first 30 % of the steps
        seeds=(0, 1, 2),
        images_per_class=50,
        timing_batch=128,
        timing_repeats=5,
        nesterov=True,
        decay_norm_and_bias=False,
        label_smoothing=0.1,
    ),
    "paper": Profile(
        name="paper",
        dataset="cifar10",
        train_subset=None,
        test_subset=None,
        models=("resnet50", "se_resnet50"),
        epochs=100,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="step",
        milestones=(30, 60, 90),
        warmup_epochs=0,
        seeds=(0, 1, 2),
        images_per_class=50,
        timing_batch=256,
        timing_repeats=10,
    ),
}


def get_settings(name: str | None = None) -> Profile:
    """The :class:`Profile` called ``name`` (default: from :func:`senet_lib.env.get_profile`)."""
    return PROFILE_SETTINGS[get_profile(name)]
