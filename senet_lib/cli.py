"""The command line: ``python -m senet_lib <command>`` (also installed as ``senet``).

=============  ===========================================================================
``train``      train one model with the notebooks' :func:`senet_lib.train.fit`; defaults come
               from the profile (``--profile quick|class|paper``), every value can be overridden
``evaluate``   test loss and accuracy of a checkpoint (on the dataset it was trained on)
``bench``      training-throughput benchmark (:mod:`senet_lib.bench`), printed and recorded
``models``     the model names :func:`senet_lib.create_model` knows
``data``       where CIFAR-10/100 were found and what ``--dataset auto`` will use
=============  ===========================================================================

A run trained here lands in ``<save dir>/<run name>/`` (``checkpoint.pt``, ``history.json``,
``record.json``) with the same run name :func:`senet_lib.train.train_or_load` uses, so the
notebooks load it instead of training again when model, data and recipe agree.

Bad input and environment problems (an unknown model or dataset, a missing or corrupt file, a
recipe that cannot resume, a run folder in use by another run, a folder that cannot be written, a
full disk) end in one line that says what to do, in the command line's words, and exit status 2:
every :class:`senet_lib.errors.UserError` (and ``ValueError`` / ``OSError``) is shown that way in
:func:`main`. Set ``SENET_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .checkpoint import (
    ArchitectureMismatchError,
    CheckpointError,
    MissingArchitectureError,
    atomic_write_json,
    check_writable,
    claim_run_folder,
    describe_arch,
    load_checkpoint,
    read_checkpoint,
)
from .data import DATASETS, PIPELINES, data_status, load_run_data, make_loaders
from .env import PRECISIONS, PROFILES, device_name, get_device, setup
from .errors import UserError
from .models import list_models
from .models.layers import NORMS
from .profiles import Profile, get_settings
from .train import (
    CHECKPOINT_NAME,
    HISTORY_NAME,
    RECORD_NAME,
    ConfigError,
    History,
    RecipeMismatchError,
    RunExistsError,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    default_run_name,
    fit,
    run_environment,
    run_record,
    seeded_model,
    write_record,
)

PROG = "python -m senet_lib"


class UsageError(ValueError, UserError):
    """Bad command-line input; the message is one sentence that says what to do."""


# --------------------------------------------------------------------------- validation
def check_model(name: str) -> str:
    """``name`` if it is a registered model, else a :class:`UsageError` listing the valid ones."""
    if name not in list_models():
        raise UsageError(f"Unknown model {name!r}; valid models: {', '.join(list_models())}.")
    return name


def check_dataset(name: str) -> str:
    """``name`` if it is ``auto`` or a known dataset, else a :class:`UsageError` listing them."""
    valid = ("auto", *DATASETS)
    if name not in valid:
        raise UsageError(f"Unknown dataset {name!r}; valid datasets: {', '.join(valid)}.")
    return name


# --------------------------------------------------------------------------- train
def _flags(f: dataclasses.Field) -> tuple[str, ...]:
    return f.metadata["flags"] or ("--" + f.name.replace("_", "-"),)


#: TrainConfig field → its command-line option, as errors name it (``--wd``, not ``weight_decay``).
_FLAGS = {f.name: _flags(f)[0] for f in dataclasses.fields(TrainConfig)}


def add_config_flags(groups: Mapping[str, Any]) -> None:
    """One option per :class:`TrainConfig` field, generated from the fields' metadata (help, flag
    names, choices, group); ``None`` (the default of each) means "the profile's value"."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if not meta["cli"]:
            continue
        hint, kwargs = hints[f.name], {"dest": f.name, "default": None, "help": meta["help"] or None}
        if f.name == "progress":  # on by default: only the flag that turns it off
            kwargs.update(action="store_false")
        elif hint in (bool, bool | None):
            kwargs.update(action=argparse.BooleanOptionalAction)
        else:
            base = {int | None: int, str | None: str, tuple[int, ...]: int}.get(hint, hint)
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
    return options


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model; print where the checkpoint, history and record went."""
    env = setup(seed=None, device=args.device, profile=args.profile, verbose=False)
    profile = get_settings(env.profile)
    model_name = check_model(args.model or profile.models[1])
    dataset = check_dataset(args.dataset or profile.dataset)
    config = config_from_args(args, profile)
    options = model_options_from_args(args)
    # Every output folder is checked before any work, so that a bad one fails now, not after an epoch.
    save_dir = Path(args.save_dir).expanduser() if args.save_dir else env.paths.checkpoints
    check_writable(save_dir, hint="pass a writable --save-dir")
    if args.record:
        check_writable(args.results_dir or env.paths.results, hint="pass a writable --results-dir")
    print(env)
    train_subset = args.train_subset if args.train_subset is not None else profile.train_subset
    test_subset = args.test_subset if args.test_subset is not None else profile.test_subset
    if args.full_data:
        train_subset = test_subset = None
    data = load_run_data(
        dataset, train_subset, test_subset, root=args.data_dir, download=not args.no_download
    )
    model = seeded_model(model_name, data.num_classes, config.seed, **options)
    run_name = args.run_name or default_run_name(model_name, data, config, **options)
    run_dir = save_dir / run_name
    print(
        f"\n{'Resuming' if args.resume else 'Training'} {model_name} on {data.label} "
        f"(train {len(data.train)}, test {len(data.test)}) for {config.epochs} epochs, profile {env.profile}; "
        f"run folder {run_dir}"
    )
    try:
        with claim_run_folder(run_dir):  # held through the record too; fit's own claim nests in it
            history = _fit_in_cli_words(model, data, config, run_dir, args.resume, env.device)
            record = run_record(
                model,
                data,
                config,
                history,
                run_environment(env.device, config, env.profile),
                history.total_seconds,
            )
            record["profile"] = env.profile
            record["run_name"] = run_name
            atomic_write_json(run_dir / RECORD_NAME, record)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; {_what_is_kept(run_dir)}", file=sys.stderr)
        return 130
    best, final = history.best_test_acc, history.final_test_acc
    print(
        f"\nDone: final test accuracy {100 * final:.2f}%, best {100 * best:.2f}% on {data.label}, "
        f"{history.total_seconds:.1f} s."
    )
    print(f"checkpoint : {run_dir / CHECKPOINT_NAME}")
    print(f"history    : {run_dir / HISTORY_NAME}")
    print(f"run record : {run_dir / RECORD_NAME}")
    if args.record:
        path = write_record(record, args.results_dir or env.paths.results)
        print(f"results    : {path}")
    return 0


def _fit_in_cli_words(
    model: Any, data: Any, config: TrainConfig, run_dir: Path, resume: bool, device: Any
) -> History:
    """:func:`senet_lib.train.fit`, its run-folder errors said with the command line's options."""
    try:
        return fit(model, data, config, run_dir=run_dir, resume=resume, device=device)
    except RunExistsError as err:
        raise UsageError(
            f"{err.path} already exists: add --resume to continue that run, or pass another --run-name "
            "(or --save-dir) to start a new one."
        ) from err
    except RecipeMismatchError as err:
        raise UsageError(
            f"{err.path} was trained with another recipe ({err.differences}): give the same options to "
            "--resume it, or pass another --run-name to start afresh."
        ) from err
    except ArchitectureMismatchError as err:
        raise UsageError(
            f"{run_dir} holds {describe_arch(err.stored)}, not {describe_arch(err.given)}: give the same "
            "--model, --norm and --reduction to --resume it, or pass another --run-name."
        ) from err


def _what_is_kept(run_dir: Path) -> str:
    """After Ctrl-C: whether a checkpoint is there to resume (and which epoch), in one sentence."""
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        return "no checkpoint had been written yet, so there is nothing to resume: run the command again to start over."
    try:
        epoch = read_checkpoint(path).get("epoch", "?")
    except CheckpointError:
        return f"{path} cannot be read, so there is nothing to resume: delete it and run the command again."
    return f"the last checkpoint, {path} (epoch {epoch}), is kept: run the same command with --resume to continue."


# --------------------------------------------------------------------------- evaluate
def recorded_dataset(checkpoint: Path) -> dict[str, Any] | None:
    """The dataset descriptor saved beside a checkpoint (``record.json`` of its run folder, or an
    exported weights file's sidecar ``data``), or None.

    Raises:
        UsageError: that file is not valid JSON (the message names it).
    """
    record_path = checkpoint.parent / RECORD_NAME
    if record_path.is_file():
        record = _read_json(record_path)
        return record.get("dataset") if isinstance(record, dict) else None
    sidecar = checkpoint.with_suffix(".json")
    if sidecar.is_file():
        meta = _read_json(sidecar)
        data = meta.get("data") if isinstance(meta, dict) else None
        return data if isinstance(data, dict) else ({"name": data} if isinstance(data, str) else None)
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(
            f"{path} cannot be read as JSON ({err}): repair or delete it, or pass --dataset so that it is not needed."
        ) from err


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print the test loss and accuracy of a checkpoint (writes nothing, needs no writable folder)."""
    device = get_device(args.device)
    path = Path(args.checkpoint).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    config = checked_config(
        lambda: TrainConfig(
            epochs=1,
            batch_size=args.batch_size,
            precision=args.precision,
            pipeline=args.pipeline,
            progress=False,
        )
    )
    try:
        model, payload = load_checkpoint(path, device=device)
    except MissingArchitectureError as err:
        raise UsageError(
            f"{path} does not record its architecture, so evaluate cannot rebuild the model: load it in Python "
            "with senet_lib.checkpoint.load_checkpoint(path, model=<the network>)."
        ) from err
    recorded = (recorded_dataset(path) or {}) if args.dataset is None else {}
    dataset = args.dataset or recorded.get("name")
    if dataset is None:
        raise UsageError(
            f"{path} does not record which dataset it was trained on: pass --dataset "
            f"({', '.join(('auto', *DATASETS))})."
        )
    check_dataset(dataset)
    test_subset = args.test_subset
    if test_subset is None and args.dataset is None:
        test_subset = recorded.get("test_size")
    data = load_run_data(dataset, None, test_subset, root=args.data_dir, download=not args.no_download)
    num_classes = model.arch_config["num_classes"]
    if data.num_classes != num_classes:
        raise UsageError(
            f"The checkpoint has {num_classes} outputs but {data.label} has {data.num_classes} classes: "
            "pass --dataset with the dataset it was trained on."
        )
    recipe = payload.get("config") or {}
    _, test_loader = make_loaders(data, args.batch_size, device, pipeline=args.pipeline)
    trainer = Trainer(model, config, device, steps_per_epoch=1)
    loss, acc = trainer.evaluate(test_loader)
    arch = model.arch_config
    print(
        f"checkpoint : {path} ({arch['name']}, epoch {payload.get('epoch', '?')}, seed {recipe.get('seed', '?')})"
    )
    print(f"dataset    : {data.label}, test split of {len(data.test)} images")
    print(f"device     : {device} ({device_name(device)}), precision {trainer.precision.name}")
    print(f"test loss  : {loss:.4f}")
    print(f"test acc   : {100 * acc:.2f}%")
    return 0


# --------------------------------------------------------------------------- bench, models, data
def cmd_bench(args: argparse.Namespace) -> int:
    """Run the throughput benchmark (see :mod:`senet_lib.bench`). Options not given take the
    device's defaults (:func:`senet_lib.bench.default_settings`); a value given, 0 included, is
    used as given (and refused with a sentence when it makes no sense), never replaced."""
    from dataclasses import replace

    from . import bench

    env = setup(seed=None, device=args.device, verbose=False)
    defaults = bench.default_settings(env.device)
    numbers = ("batch_size", "steps", "warmup", "repeats", "min_seconds", "max_steps", "train_images")
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in (*numbers, "num_workers") if getattr(args, name) is not None
    }
    if args.models:
        overrides["models"] = tuple(check_model(m) for m in args.models)
    if args.variants:
        overrides["variants"] = tuple(args.variants)
    if args.dataset:
        overrides["dataset"] = check_dataset(args.dataset)
    if "steps" in overrides and "max_steps" not in overrides:  # the cap never cuts the steps asked for
        overrides["max_steps"] = max(defaults.max_steps, overrides["steps"])
    settings = replace(defaults, **overrides)
    if args.out:  # checked before minutes of measuring, not after
        out = Path(args.out).expanduser()
        check_writable(out.parent if out.suffix == ".json" else out, hint="pass a writable --out")
    bench.main_bench(settings, out=args.out, profile_trace=args.profile_trace, env=env)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Print the registered model names (optionally those matching a pattern)."""
    names = list_models(args.pattern)
    if not names:
        raise UsageError(f"No model matches {args.pattern!r}; valid models: {', '.join(list_models())}.")
    print("\n".join(names))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Print where the datasets are."""
    print(data_status(args.data_dir))
    return 0


# --------------------------------------------------------------------------- parser
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (defaults from the profile)",
        description="Train one model with the notebooks' fit(); unset options come from the profile "
        "(quick on CPU, class on a GPU, or --profile).",
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        help=f"{' | '.join(PROFILES)} (default: $SENET_PROFILE, else by device)",
    )
    p.add_argument("--model", help="model name (default: the profile's SE model); see `models`")
    p.add_argument("--dataset", help=f"auto | {' | '.join(DATASETS)} (default: the profile's)")
    p.add_argument("--data-dir", help="where to look for / download the dataset")
    p.add_argument("--no-download", action="store_true", help="never download; fail if the data is missing")
    p.add_argument("--train-subset", type=int, help="class-balanced training subset size")
    p.add_argument("--test-subset", type=int, help="class-balanced test subset size")
    p.add_argument(
        "--full-data", action="store_true", help="use the full splits, ignoring the profile's subsets"
    )
    g = p.add_argument_group("recipe (TrainConfig)")
    m = p.add_argument_group("model")
    m.add_argument("--norm", choices=NORMS)
    m.add_argument("--reduction", type=int, help="SE reduction ratio r (default 16)")
    o = p.add_argument_group("output")
    o.add_argument("--save-dir", help="folder of run folders (default: the checkpoints folder)")
    o.add_argument("--run-name", help="run folder name (default: as train_or_load names it)")
    o.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint")
    add_config_flags({"recipe": g, "output": o})
    o.add_argument("--record", action="store_true", help="also write a results record to the results folder")
    o.add_argument("--results-dir", help="where --record writes (default: the results folder)")
    p.add_argument("--device", help="cuda | cuda:N | mps | cpu (default: $SENET_DEVICE, else the best)")
    p.set_defaults(func=cmd_train)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="test loss and accuracy of a checkpoint")
    p.add_argument("checkpoint", help="a checkpoint.pt, a run folder, or an exported weights file")
    p.add_argument("--dataset", help="default: the dataset recorded beside the checkpoint")
    p.add_argument("--test-subset", type=int, help="default: the recorded test-split size")
    p.add_argument("--data-dir")
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--pipeline", choices=PIPELINES, default="auto")
    p.add_argument("--device")
    p.set_defaults(func=cmd_evaluate)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from .bench import ALIASES, VARIANTS

    p = sub.add_parser(
        "bench",
        help="training-throughput benchmark",
        description="Measure training img/s per model and variant (median of repeats, with their spread), "
        "print a table with the SE/plain ratios, speed-ups and targets, and write a JSON record. "
        "Defaults: se_resnet50/resnet50, batch 256, every variant on a CUDA GPU; se_resnet20/resnet20, "
        "batch 128, no torch.compile elsewhere (no bf16 on MPS); 3 repeats of at least 3 s each.",
    )
    p.add_argument("--models", nargs="+", help="models to measure (SE model first, then its plain twin)")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=(*VARIANTS, *ALIASES),
        metavar="VARIANT",
        help=f"{', '.join(VARIANTS)} (old names {', '.join(ALIASES)} still work)",
    )
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps", type=int, help="at least this many timed steps per repeat")
    p.add_argument("--min-seconds", type=float, help="at least this many seconds per repeat (default 3)")
    p.add_argument("--max-steps", type=int, help="at most this many steps per repeat")
    p.add_argument("--repeats", type=int, help="timed repeats per row, reported as their median")
    p.add_argument("--warmup", type=int, help="untimed steps before timing (at least 1)")
    p.add_argument("--train-images", type=int, help="size of the training split the loaders cycle through")
    p.add_argument("--dataset", help="default: synthetic images of CIFAR shape")
    p.add_argument("--num-workers", type=int, help="DataLoader workers for the seed-style pipeline")
    p.add_argument("--out", help="folder (or .json file) for the record (default: the results folder)")
    p.add_argument(
        "--profile-trace", action="store_true", help="also profile a few steps and print the top ops"
    )
    p.add_argument("--device")
    p.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``senet`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Squeeze-and-Excitation Networks tutorial library: train, evaluate, benchmark."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_evaluate(sub)
    _add_bench(sub)
    p = sub.add_parser("models", help="list model names")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'se_*'")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("data", help="where CIFAR-10/100 are and what 'auto' uses")
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status.

    The one place where errors become what the user sees: bad input and environment problems
    (:class:`~senet_lib.errors.UserError`, and the library's ``ValueError`` / ``OSError``) print
    one line and return 2, a diverged training 1, Ctrl-C 130. ``SENET_DEBUG=1`` re-raises instead.
    """
    args = build_parser().parse_args(argv)
    debug = bool(os.environ.get("SENET_DEBUG"))
    try:
        return args.func(args)
    except TrainingDiverged as err:
        if debug:
            raise
        _print_error(str(err))
        return 1
    except (UserError, ValueError) as err:
        # One sentence that says what to do (a bad option, a corrupt file, a run folder in use, ...).
        if debug:
            raise
        _print_error(str(err))
        return 2
    except OSError as err:
        if debug:
            raise
        if err.errno is None:  # the library's own sentence (e.g. a dataset that was not found)
            _print_error(str(err))
        else:  # an environment problem the library did not word: say which file and what to do
            where = f" ({err.filename})" if err.filename else ""
            _print_error(
                f"{err.strerror or err}{where}: check that path, its permissions and the free space, then run "
                "again (SENET_DEBUG=1 shows where it happened)."
            )
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted.", file=sys.stderr)
        return 130


def _print_error(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


__all__ = ["build_parser", "check_dataset", "check_model", "main"]
