"""The training recipe: :class:`TrainConfig`, validated in one place, and the recipe that names a run."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from ..data import PIPELINES
from ..env import PRECISIONS
from ..errors import UserError

if TYPE_CHECKING:
    from ..profiles import Profile


SCHEDULES = ("step", "cosine", "onecycle")

#: A value that a field must be given (``epochs``, ``batch_size``): ``dataclasses.MISSING``.
_REQUIRED: Any = MISSING


def _recipe(
    default: Any = _REQUIRED,
    *,
    help: str = "",
    runtime: bool = False,
    cli: bool = True,
    flags: tuple[str, ...] = (),
    choices: tuple[Any, ...] | None = None,
    metavar: str | None = None,
    group: str = "recipe",
    omit_default: bool = False,
) -> Any:
    """A :class:`TrainConfig` field with what the command line and run names need to know about it.

    ``runtime`` fields change how a run executes or reports, not what it computes, so they stay out
    of :meth:`TrainConfig.recipe` (and of run names). ``flags`` default to ``--<name-with-dashes>``;
    ``cli=False`` keeps a field off the command line. ``omit_default`` marks a recipe field added
    after run names were pinned: :meth:`TrainConfig.recipe` leaves it out while it has its default,
    so every earlier run keeps its name and its pretrained match.
    """
    metadata = {
        "help": help,
        "runtime": runtime,
        "cli": cli,
        "flags": flags,
        "choices": choices,
        "metavar": metavar,
        "group": group,
        "omit_default": omit_default,
    }
    if default is _REQUIRED:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


#: The largest seed torch accepts (``torch.manual_seed`` takes a signed 64-bit value).
MAX_SEED = 2**63 - 1


class ConfigError(ValueError, UserError):
    """An invalid :class:`TrainConfig` value: ``field`` names it, ``problem`` says what it must be."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Invalid TrainConfig: {field} {problem}; fix that value.")
        self.field, self.problem = field, problem


# --------------------------------------------------------------------------- recipe
@dataclass
class TrainConfig:
    """One training recipe, as plain values (JSON-ready through :meth:`to_dict`).

    ``precision=None`` takes the device's default (:func:`senet_lib.env.get_precision`);
    ``channels_last=None`` turns it on for CUDA and CPUs (:func:`senet_lib.env.default_channels_last`);
    ``compile=None`` turns ``torch.compile`` on for CUDA (:func:`senet_lib.train.runtime.resolve_compile`).
    ``cutmix`` is the probability that a batch is mixed (alpha 1.0). ``save_every`` and ``eval_every``
    are in epochs (checkpoint 0 = only at the end; the last epoch is always evaluated and saved);
    ``tta`` adds a flip-TTA accuracy to the last epoch's row; ``print_freq`` is in steps (0 = the
    progress bar only). ``max_steps_per_epoch`` shortens epochs for smoke runs. Fields marked
    ``omit_default`` (:data:`LATER_FIELDS`) stay out of run names while at their defaults.

    The one definition of the recipe: each field's metadata (:func:`_recipe`) gives its
    command-line option and help (:func:`senet_lib.cli.add_config_flags`) and whether it is
    runtime-only (:data:`RUNTIME_FIELDS`); profiles are overrides of these defaults
    (:mod:`senet_lib.profiles`).
    """

    epochs: int = _recipe(help="number of epochs")
    batch_size: int = _recipe(help="images per training step")
    lr: float = _recipe(0.1, help="(peak) learning rate")
    momentum: float = _recipe(0.9, help="SGD momentum")
    nesterov: bool = _recipe(False, help="Nesterov momentum")
    weight_decay: float = _recipe(5e-4, help="L2 weight decay", flags=("--wd", "--weight-decay"))
    decay_norm_and_bias: bool = _recipe(True, cli=False)
    schedule: str = _recipe("step", choices=SCHEDULES, help="learning-rate schedule")
    milestones: tuple[int, ...] = _recipe(
        (30, 60, 90), help="epochs at which the step schedule divides the lr"
    )
    gamma: float = _recipe(0.1, help="step schedule factor (default 0.1)")
    warmup_epochs: int = _recipe(0, help="epochs of linear warm-up")
    warmup_constant: float | None = _recipe(
        None,
        metavar="FACTOR",
        omit_default=True,
        help="hold lr x FACTOR through the warm-up epochs instead of a linear ramp (He et al. 2016: 0.1)",
    )
    label_smoothing: float = _recipe(0.0, help="label smoothing of the cross-entropy")
    cutout: int = _recipe(0, metavar="LENGTH", help="Cutout square side in pixels (0 = off)")
    cutout_count: int = _recipe(1, metavar="N", help="Cutout squares per image")
    cutmix: float = _recipe(0.0, metavar="P", help="probability that a batch is CutMix-ed")
    zero_init_residual: bool = _recipe(
        False,
        omit_default=True,
        help="start each residual block's last BatchNorm scale at 0 (Goyal et al. 2017)",
    )
    precision: str | None = _recipe(None, choices=PRECISIONS, help="default: the device's")
    channels_last: bool | None = _recipe(None, runtime=True, help="default: on for CUDA and CPUs, off on MPS")
    compile: bool | None = _recipe(None, runtime=True, help="torch.compile the model (default: on for CUDA)")
    pipeline: str = _recipe("auto", choices=PIPELINES, help="data pipeline")
    seed: int = _recipe(0, help="random seed (default: the profile's first)")
    save_every: int = _recipe(
        1, runtime=True, group="output", metavar="N", help="checkpoint every N epochs (0 = at the end)"
    )
    eval_every: int = _recipe(
        1, runtime=True, group="output", metavar="N", help="evaluate every N epochs and at the end"
    )
    tta: bool = _recipe(
        False, runtime=True, group="output", help="also report flip-TTA test accuracy at the end"
    )
    print_freq: int = _recipe(0, runtime=True, group="output", metavar="N", help="print a line every N steps")
    max_steps_per_epoch: int | None = _recipe(
        None, flags=("--max-steps",), metavar="N", help="at most N steps per epoch (smoke runs)"
    )
    progress: bool = _recipe(
        True, runtime=True, group="output", flags=("--no-progress",), help="hide the progress bar"
    )

    def __post_init__(self) -> None:
        """Check every value (type and range); the one place a recipe is validated.

        Raises:
            ConfigError: the first invalid value, named with what it must be (a ``ValueError``).
        """
        if isinstance(self.milestones, (list, tuple)):
            self.milestones = tuple(self.milestones)
        milestones = self.milestones if isinstance(self.milestones, tuple) else ()
        whole = _is_whole
        checks: list[tuple[str, bool, str]] = [
            ("epochs", whole(self.epochs, 1), "must be a whole number, at least 1"),
            ("batch_size", whole(self.batch_size, 1), "must be a whole number, at least 1"),
            ("lr", _is_number(self.lr) and self.lr > 0, "must be a finite positive number"),
            ("momentum", _is_number(self.momentum) and 0 <= self.momentum < 1, "must be in [0, 1)"),
            ("nesterov", isinstance(self.nesterov, bool), "must be True or False"),
            (
                "nesterov",
                not (self.nesterov and self.momentum == 0),
                "needs a momentum above 0 (Nesterov momentum without momentum does nothing)",
            ),
            (
                "weight_decay",
                _is_number(self.weight_decay) and self.weight_decay >= 0,
                "must be a finite number, 0 or more",
            ),
            ("decay_norm_and_bias", isinstance(self.decay_norm_and_bias, bool), "must be True or False"),
            ("schedule", self.schedule in SCHEDULES, f"must be one of {', '.join(SCHEDULES)}"),
            (
                "milestones",
                isinstance(self.milestones, tuple)
                and all(whole(m, 1) for m in milestones)
                and all(a < b for a, b in zip(milestones, milestones[1:], strict=False)),
                "must be positive epoch numbers in increasing order",
            ),
            ("gamma", _is_number(self.gamma) and 0 < self.gamma <= 1, "must be in (0, 1]"),
            (
                "warmup_epochs",
                whole(self.warmup_epochs, 0) and whole(self.epochs, 1) and self.warmup_epochs < self.epochs,
                f"must be between 0 and epochs - 1 ({self.epochs} epochs)",
            ),
            (
                "warmup_constant",
                self.warmup_constant is None
                or (
                    _is_number(self.warmup_constant)
                    and 0 < self.warmup_constant <= 1
                    and self.schedule != "onecycle"
                    and self.warmup_epochs > 0
                ),
                "must be None or in (0, 1], with warmup_epochs above 0 and a step or cosine schedule",
            ),
            ("zero_init_residual", isinstance(self.zero_init_residual, bool), "must be True or False"),
            (
                "label_smoothing",
                _is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
                "must be in [0, 1)",
            ),
            ("cutout", whole(self.cutout, 0), "must be a whole number of pixels, 0 (off) or more"),
            ("cutout_count", whole(self.cutout_count, 1), "must be a whole number, at least 1"),
            (
                "cutmix",
                _is_number(self.cutmix) and 0 <= self.cutmix <= 1,
                "is a probability per batch, in [0, 1]",
            ),
            (
                "precision",
                self.precision is None or self.precision in PRECISIONS,
                "must be bf16, fp16, fp32 or None",
            ),
            (
                "channels_last",
                self.channels_last is None or isinstance(self.channels_last, bool),
                "must be True, False or None",
            ),
            (
                "compile",
                self.compile is None or isinstance(self.compile, bool),
                "must be True, False or None",
            ),
            ("eval_every", whole(self.eval_every, 1), "must be a whole number of epochs, at least 1"),
            ("tta", isinstance(self.tta, bool), "must be True or False"),
            ("pipeline", self.pipeline in PIPELINES, f"must be one of {', '.join(PIPELINES)}"),
            (
                "seed",
                whole(self.seed, 0) and self.seed <= MAX_SEED,
                f"must be a whole number in 0..{MAX_SEED}",
            ),
            (
                "save_every",
                whole(self.save_every, 0),
                "must be a whole number of epochs, 0 (only at the end) or more",
            ),
            ("print_freq", whole(self.print_freq, 0), "must be a whole number of steps, 0 (off) or more"),
            (
                "max_steps_per_epoch",
                self.max_steps_per_epoch is None or whole(self.max_steps_per_epoch, 1),
                "must be None or a whole number, at least 1",
            ),
            ("progress", isinstance(self.progress, bool), "must be True or False"),
        ]
        for name, ok, problem in checks:
            if not ok:
                raise ConfigError(name, f"{problem} (got {getattr(self, name)!r})")
        for name in ("epochs", "batch_size", "warmup_epochs", "cutout", "cutout_count", "seed"):
            setattr(self, name, int(getattr(self, name)))  # e.g. numpy integers → int (JSON-ready)
        self.milestones = tuple(int(m) for m in milestones)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain values (``milestones`` as a list)."""
        values = asdict(self)
        values["milestones"] = list(self.milestones)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` (or its JSON round trip)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown TrainConfig field(s) {', '.join(unknown)}: remove them (valid: {', '.join(sorted(known))})."
            )
        return cls(**dict(values))

    @classmethod
    def from_profile(cls, profile: Profile, **overrides: Any) -> TrainConfig:
        """The recipe of a :class:`~senet_lib.profiles.Profile` (``profile.config``), with overrides."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"TrainConfig has no field(s) {', '.join(unknown)}: use one of {', '.join(sorted(names))}."
            )
        return replace(profile.config, **overrides)

    def recipe(self) -> dict[str, Any]:
        """The values that determine what training computes (runtime-only fields left out, and
        :data:`LATER_FIELDS` while at their defaults)."""
        return core_recipe(self.to_dict())


#: Fields that change how a run is executed or reported, not what it computes (left out of
#: :meth:`TrainConfig.recipe`), read from the fields' metadata.
RUNTIME_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.metadata["runtime"])

#: Recipe fields added after run names were pinned, with their defaults: left out of a recipe while
#: at the default, so that runs trained before they existed keep their names and matches.
LATER_FIELDS = {f.name: f.default for f in fields(TrainConfig) if f.metadata["omit_default"]}


def core_recipe(values: Mapping[str, Any]) -> dict[str, Any]:
    """A recipe's values (``to_dict()`` or a saved record's) without runtime-only fields, and without
    :data:`LATER_FIELDS` at their defaults (a record older than a field reads as its default)."""
    return {
        k: v
        for k, v in values.items()
        if k not in RUNTIME_FIELDS and not (k in LATER_FIELDS and v == LATER_FIELDS[k])
    }


def _is_whole(value: Any, least: int) -> bool:
    """An integer (not a bool) of at least ``least``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def _is_number(value: Any) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
