"""The ``train`` command: its options and the run it trains."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from ..checkpoint import (
    ArchitectureMismatchError,
    CheckpointError,
    atomic_write_json,
    check_fits,
    check_writable,
    claim_run_folder,
    describe_arch,
    read_checkpoint,
)
from ..env import PROFILES, RENAMED_PROFILES, setup
from ..models.layers import NORMS
from ..train import (
    CHECKPOINT_NAME,
    HISTORY_NAME,
    RECORD_NAME,
    DistContext,
    History,
    RecipeMismatchError,
    RunExistsError,
    RunNameError,
    RunPlan,
    TrainConfig,
    check_run_name,
    cleanup,
    default_run_name,
    fit,
    init_distributed,
    run_record,
    write_record,
)
from ..train.config import get_settings
from .common import PROG, UsageError, check_dataset, check_model
from .options import (
    RUN_FILES,
    add_config_flags,
    add_data_options,
    checked_model_options,
    config_from_args,
    default_results_dir,
    longest_record_name,
    longest_run_name,
    model_options_from_args,
    run_data_from_args,
    subsets_from_args,
)


# --------------------------------------------------------------------------- train
class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while training (``kill``, a cloud session or a scheduler ending the job)."""


@contextmanager
def sigterm_stops_like_ctrl_c() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``), so ``kill``
    ends training as Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model; print where the checkpoint, history and record went (under torchrun: rank 0)."""
    context, device = init_distributed(args.device, sync_bn=args.sync_bn)
    try:
        if args.sync_bn and not context.enabled:
            print("--sync-bn has no effect in a single process (start several with torchrun).")
        return _train(args, context, str(device) if device is not None else args.device)
    finally:
        cleanup()


def _train(args: argparse.Namespace, context: DistContext, device: str | None) -> int:
    """:func:`cmd_train` in one process (of one or several)."""
    env = setup(seed=None, device=device, profile=args.profile, verbose=False)
    profile = get_settings(env.profile)
    model_name = check_model(args.model or profile.models[1])
    dataset = check_dataset(args.dataset or profile.dataset)
    config = config_from_args(args, profile)
    options = checked_model_options(model_name, model_options_from_args(args))
    if args.run_name is not None:
        try:
            check_run_name(args.run_name)
        except RunNameError as err:  # in the command line's words: the checkpoint folder is --save-dir
            problem = err.problem.replace("its checkpoint folder", "--save-dir")
            raise UsageError(f"--run-name {err.name} {problem}.") from err
    subsets_from_args(args, profile, dataset)  # checked now: nothing is created for a bad size
    # Every output folder is checked before any work, so that a bad one fails now, not after an epoch.
    save_dir = Path(args.save_dir).expanduser() if args.save_dir else env.paths.checkpoints
    results_dir = Path(args.results_dir).expanduser() if args.results_dir else default_results_dir(env.paths)
    # The files' full paths must fit the system's limits (checked with the longest name the run can
    # get), so that a long folder fails now, not at the first save, and nothing is created for it.
    longest = args.run_name or longest_run_name(model_name, config.seed)
    check_fits(save_dir, hint="pass another --save-dir")  # not UTF-8, or too long itself
    check_fits(save_dir / longest, RUN_FILES, hint="choose a shorter --save-dir or --run-name")
    if args.record:
        check_fits(results_dir, hint="pass another --results-dir")
        check_fits(
            results_dir,
            (longest_record_name(model_name, config.seed),),
            hint="choose a shorter --results-dir",
        )
    check_writable(save_dir, hint="pass a writable --save-dir")
    if args.record:
        check_writable(results_dir, hint="pass a writable --results-dir")
    data = run_data_from_args(args, profile, dataset)
    run_name = args.run_name or default_run_name(model_name, data, config, **options)
    run_dir = save_dir / run_name
    plan = RunPlan.resolve(
        config, env.device, profile=env.profile, model=model_name, model_options=options, run_dir=run_dir
    )
    print(plan)
    print(env.context())
    model = plan.build_model(data.num_classes)
    print(
        f"\n{_start_word(run_dir, args.resume)} {model_name} on {data.label} "
        f"(train {len(data.train)}, test {len(data.test)}) for {config.epochs} epochs, profile {env.profile}; "
        f"run folder {run_dir}"
    )
    try:
        # Rank 0 holds the folder through the record too (fit's own claim nests in it) and writes.
        with sigterm_stops_like_ctrl_c(), claim_run_folder(run_dir) if context.is_main else nullcontext():
            history = _fit_in_cli_words(model, data, config, run_dir, args.resume, plan)
            record = run_record(model, data, config, history, plan.record(), history.total_seconds)
            record["profile"] = env.profile
            record["run_name"] = run_name
            if context.enabled:
                record["distributed"] = context.describe()
            if context.is_main:
                atomic_write_json(run_dir / RECORD_NAME, record)
    except KeyboardInterrupt as stopped:
        terminated = isinstance(stopped, Terminated)
        how = "stopped by SIGTERM" if terminated else "interrupted"
        print(f"\n{PROG}: {how}; {_what_is_kept(run_dir)}", file=sys.stderr)
        return 143 if terminated else 130  # the shell's codes for SIGTERM and SIGINT
    best, final = history.best_test_acc, history.final_test_acc
    print(
        f"\nDone: final test accuracy {100 * final:.2f}%, best {100 * best:.2f}% on {data.label}, "
        f"{history.total_seconds:.1f} s."
    )
    print(f"checkpoint : {run_dir / CHECKPOINT_NAME}")
    print(f"history    : {run_dir / HISTORY_NAME}")
    print(f"run record : {run_dir / RECORD_NAME}")
    if args.record and context.is_main:
        path = write_record(record, results_dir)
        print(f"results    : {path}")
    return 0


def _fit_in_cli_words(
    model: Any, data: Any, config: TrainConfig, run_dir: Path, resume: bool, plan: RunPlan
) -> History:
    """:func:`senet_lib.train.fit`, its run-folder errors said with the command line's options."""
    try:
        return fit(model, data, config, run_dir=run_dir, resume=resume, plan=plan)
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
            "--model, --norm, --reduction and --se-min-hidden to --resume it, or pass another --run-name."
        ) from err


def _saved_epoch(path: Path) -> object:
    """The epoch the checkpoint at ``path`` was saved after (``"?"`` when it does not say);
    raises :class:`CheckpointError` when the file cannot be read."""
    return read_checkpoint(path).get("epoch", "?")


def _start_word(run_dir: Path, resume: bool) -> str:
    """The first words of the start line: "Resuming" only where a checkpoint is there to resume from."""
    path = run_dir / CHECKPOINT_NAME
    if not resume:
        return "Training"
    if not path.is_file():
        return "Training (--resume: no checkpoint in the run folder yet, so from epoch 1)"
    try:
        return f"Resuming (after epoch {_saved_epoch(path)})"
    except CheckpointError:
        return "Resuming (its checkpoint cannot be read; fit will say what to do)"


def _what_is_kept(run_dir: Path) -> str:
    """After Ctrl-C or SIGTERM: whether a checkpoint is there to resume (and which epoch), in one sentence."""
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        return "no checkpoint had been written yet, so there is nothing to resume: run the command again to start over."
    try:
        epoch = _saved_epoch(path)
    except CheckpointError:
        return f"{path} cannot be read, so there is nothing to resume: delete it and run the command again."
    return f"the last checkpoint, {path} (epoch {epoch}), is kept: run the same command with --resume to continue."


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
        choices=PROFILES + tuple(RENAMED_PROFILES),  # an old name gets a sentence naming the new one
        metavar="NAME",
        help=f"{' | '.join(PROFILES)} (default: $SENET_PROFILE, else by device); see `profiles`",
    )
    p.add_argument("--model", help="model name (default: the profile's SE model); see `models`")
    add_data_options(p)
    g = p.add_argument_group("recipe (TrainConfig)")
    m = p.add_argument_group("model")
    m.add_argument("--norm", choices=NORMS, help="normalisation layers of the model (default: the model's)")
    m.add_argument("--reduction", type=int, help="SE reduction ratio r (default 16)")
    m.add_argument(
        "--se-min-hidden",
        type=int,
        metavar="N",
        help="narrowest SE bottleneck: at least N hidden units (default 1)",
    )
    o = p.add_argument_group("output")
    o.add_argument("--save-dir", help="folder of run folders (default: the checkpoints folder)")
    o.add_argument("--run-name", help="run folder name (default: as train_or_load names it)")
    o.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint")
    add_config_flags({"recipe": g, "output": o})
    o.add_argument("--record", action="store_true", help="also write a results record (see --results-dir)")
    o.add_argument(
        "--results-dir",
        help="where --record writes (default: $SENET_RESULTS_DIR, in a checkout build/results, never the "
        "committed results/: pass --results-dir results for that)",
    )
    p.add_argument("--device", help="cuda | cuda:N | mps | cpu (default: $SENET_DEVICE, else the best)")
    d = p.add_argument_group("several processes (torchrun --nproc_per_node=N -m senet_lib train ...)")
    d.add_argument(
        "--sync-bn",
        action="store_true",
        help="synchronise BatchNorm statistics over the processes (the global batch's, as in one process)",
    )
    p.set_defaults(func=cmd_train)
