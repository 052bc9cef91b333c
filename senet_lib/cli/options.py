"""Training options on the command line: one flag per :class:`~senet_lib.train.TrainConfig` field, the
data and model options, and the way back to a checked ``TrainConfig`` and the run's data."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import LOCK_NAME
from ..data import DATASETS, MAX_SPLIT, SubsetError, check_subsets, load_run_data
from ..env import PROFILES, REPO_ROOT, Paths
from ..models import create_model
from ..se import SqueezeExcitation
from ..train import CHECKPOINT_NAME, HISTORY_NAME, RECORD_NAME, ConfigError, TrainConfig
from ..train.config import Profile, get_settings
from .common import UsageError


def _flags(f: dataclasses.Field) -> tuple[str, ...]:
    return f.metadata["flags"] or ("--" + f.name.replace("_", "-"),)


#: TrainConfig field → its command-line option, as errors name it (``--wd``, not ``weight_decay``).
_FLAGS = {f.name: _flags(f)[0] for f in dataclasses.fields(TrainConfig)}


def profile_defaults(name: str) -> str:
    """``TrainConfig.<name>`` in every profile, for its option's help: ``"40"`` or ``"quick: 5, cpu: 40, ..."``."""

    def show(value: Any) -> str:
        if isinstance(value, tuple):
            return " ".join(map(str, value)) or "none"
        text = "auto" if value is None else str(value)
        return text.replace("%", "%%")  # argparse formats help with %

    values = {p: show(getattr(TrainConfig.from_profile(get_settings(p)), name)) for p in PROFILES}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return ", ".join(f"{p}: {v}" for p, v in values.items())


def add_config_flags(groups: Mapping[str, Any]) -> None:
    """One option per :class:`TrainConfig` field, from the fields' metadata; ``None`` (each default)
    means the profile's value, which the help shows."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if not meta["cli"]:
            continue
        helptext = f"{meta['help'] or f.name.replace('_', ' ')} [profile default: {profile_defaults(f.name)}]"
        hint, kwargs = hints[f.name], {"dest": f.name, "default": None, "help": helptext}
        if _flags(f)[0].startswith("--no-"):  # on by default: only the flag that turns it off
            kwargs.update(action="store_false")
        elif hint in (bool, bool | None):
            kwargs.update(action=argparse.BooleanOptionalAction)
        else:
            base = {int | None: int, str | None: str, float | None: float, tuple[int, ...]: int}.get(
                hint, hint
            )
            kwargs.update(type=base, metavar=meta["metavar"])
            if hint == tuple[int, ...]:
                kwargs.update(nargs="*")
            if meta["choices"]:
                kwargs.update(choices=tuple(c for c in meta["choices"] if c is not None), metavar=None)
        groups[meta["group"]].add_argument(*_flags(f), **kwargs)


def checked_config(build: Callable[[], TrainConfig]) -> TrainConfig:
    """``build()``, with an invalid value reported by its command-line option (``--lr``, not ``lr``)."""
    try:
        return build()
    except ConfigError as err:
        raise UsageError(f"{_FLAGS.get(err.field, err.field)} {err.problem}: give another value.") from err


def config_from_args(args: argparse.Namespace, profile: Profile) -> TrainConfig:
    """The profile's recipe with every option the user gave on the command line applied."""
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.metadata["cli"]]
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if "milestones" in overrides:
        overrides["milestones"] = tuple(overrides["milestones"])
    return checked_config(lambda: TrainConfig.from_profile(profile, **overrides))


def model_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Model options given on the command line (only those given, so run names match the notebooks')."""
    options: dict[str, Any] = {}
    if args.norm is not None:
        options["norm"] = args.norm
    if args.reduction is not None:
        options["reduction"] = args.reduction
    if getattr(args, "se_min_hidden", None) is not None:
        options["se_min_hidden"] = args.se_min_hidden
    return options


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def checked_model_options(model_name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` if :func:`senet_lib.create_model` builds ``model_name`` with them (on the meta device),
    else a :class:`UsageError` naming the option; SE options for a network without SE are refused."""
    try:
        with torch.device("meta"):
            model = create_model(model_name, 10, **options)
    except (TypeError, ValueError) as err:
        match = re.search(r"option (\w+) must be (.+?) \(got", str(err))
        if match and match.group(1) in options:
            option = match.group(1)
            raise UsageError(
                f"{_flag(option)} must be {match.group(2)} (got {options[option]!r}): give another value."
            ) from err
        given = ", ".join(f"{_flag(k)} {v}" for k, v in options.items())
        raise UsageError(f"{model_name} cannot be built with {given} ({err})") from err
    for option in ("reduction", "se_min_hidden"):
        if option in options and not any(isinstance(m, SqueezeExcitation) for m in model.modules()):
            raise UsageError(
                f"{_flag(option)} sets the SE blocks' bottleneck, but {model_name} has no SE blocks: drop "
                f"{_flag(option)}, or choose an SE model (see `models se_*`)."
            )
    return dict(options)


def subsets_from_args(
    args: argparse.Namespace, profile: Profile, dataset: str
) -> tuple[int | None, int | None]:
    """The run's subset sizes (the profile's unless ``--train-subset``, ``--test-subset`` or
    ``--full-data``), checked before anything is loaded; a bad one is named by its option."""
    train_subset = args.train_subset if args.train_subset is not None else profile.train_subset
    test_subset = args.test_subset if args.test_subset is not None else profile.test_subset
    if args.full_data:
        train_subset = test_subset = None
    checked_subsets(dataset, train_subset, test_subset)
    return train_subset, test_subset


def checked_subsets(dataset: str, train_subset: int | None, test_subset: int | None) -> None:
    """:func:`senet_lib.data.check_subsets`, its error said with the command line's options."""
    try:
        check_subsets(dataset, train_subset, test_subset)
    except SubsetError as err:
        raise UsageError(f"--{err.split}-subset {err.problem}: give another value.") from err


#: What a run writes in its folder (its temporary files are named after these).
RUN_FILES = (CHECKPOINT_NAME, HISTORY_NAME, RECORD_NAME, LOCK_NAME)


def longest_run_name(model_name: str, seed: int) -> str:
    """A name at least as long as any :func:`senet_lib.train.default_run_name` of ``model_name`` and
    ``seed``, to check path lengths before anything is loaded or created."""
    dataset = "x" * max(len(name) for name in DATASETS)
    return f"{model_name}-{dataset}-n{MAX_SPLIT['train']}-{'f' * 8}-seed{seed}"


def longest_record_name(model_name: str, seed: int) -> str:
    """A name at least as long as any that :func:`senet_lib.train.write_record` gives a record."""
    dataset = "x" * max(len(name) for name in DATASETS)
    return f"train_{model_name}_{dataset}_seed{seed}_YYYYMMDDTHHMMSSZ-999.json"


def run_data_from_args(args: argparse.Namespace, profile: Profile, dataset: str) -> Any:
    """The run's data: ``dataset`` with the profile's subsets unless ``--train-subset``,
    ``--test-subset`` or ``--full-data`` say otherwise (:func:`senet_lib.data.load_run_data`)."""
    train_subset, test_subset = subsets_from_args(args, profile, dataset)
    return load_run_data(
        dataset, train_subset, test_subset, root=args.data_dir, download=not args.no_download
    )


def add_data_options(p: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--data-dir``, ``--no-download`` and the subset options of a training command."""
    p.add_argument("--dataset", help=f"auto | {' | '.join(DATASETS)} (default: the profile's)")
    p.add_argument("--data-dir", help="where to look for / download the dataset")
    p.add_argument("--no-download", action="store_true", help="never download; fail if the data is missing")
    p.add_argument("--train-subset", type=int, help="class-balanced training subset size")
    p.add_argument("--test-subset", type=int, help="class-balanced test subset size")
    p.add_argument(
        "--full-data", action="store_true", help="use the full splits, ignoring the profile's subsets"
    )


def default_results_dir(paths: Paths) -> Path:
    """Where records go (``train --record``, ``ablate``) without ``--results-dir``: the results folder, except
    in a checkout, where the committed ``results/`` only gets the runs recorded on purpose (``--results-dir
    results``) and the default is ``build/results/``."""
    committed = REPO_ROOT / "results" if REPO_ROOT is not None else None
    if committed is not None and paths.results == committed and not os.environ.get("SENET_RESULTS_DIR"):
        return REPO_ROOT / "build" / "results"
    return paths.results
