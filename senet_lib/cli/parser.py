"""The parser with its subcommands (``models`` and ``data`` are one line each) and :func:`main`, where errors
become one line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import re
import sys
from collections.abc import Sequence

from ..data import data_status
from ..env import REPO_ROOT
from ..errors import UserError
from ..models import list_models
from ..train import (
    TrainingDiverged,
)
from .ablation import _add_ablate
from .analysis import _add_analyse
from .common import PROG, UsageError, print_error
from .evaluation import _add_evaluate
from .listing import _add_profiles
from .sweep import _add_sweep
from .training import _add_train


def version() -> str:
    """This package's version: pyproject.toml's in a checkout (its one source), else the installed one."""
    if REPO_ROOT is not None:
        match = re.search(
            r'^version\s*=\s*"([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.MULTILINE
        )
        if match:
            return match.group(1)
    try:
        return importlib.metadata.version("senet-lib")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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


def build_parser() -> argparse.ArgumentParser:
    """The ``senet`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Squeeze-and-Excitation Networks tutorial library: train, evaluate, analyse, ablate, sweep.",
    )
    parser.add_argument("--version", action="version", version=f"senet-lib {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_evaluate(sub)
    _add_analyse(sub)
    _add_ablate(sub)
    _add_sweep(sub)
    _add_profiles(sub)
    p = sub.add_parser("models", help="list model names")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'se_*'")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("data", help="where CIFAR-10/100 are and what 'auto' uses")
    p.add_argument(
        "--data-dir", help="search this folder first (default: $SENET_DATA_DIR, data/, /kaggle/input)"
    )
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with :func:`build_parser` and run the command; returns the exit status."""
    return run_command(build_parser(), argv)


def debug_enabled() -> bool:
    """``SENET_DEBUG`` asks for tracebacks: ``1``, ``true``, ``yes`` or ``on`` (any case); anything else does not."""
    return os.environ.get("SENET_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _tolerate_unprintable_paths() -> None:
    """Print a path holding bytes that are not UTF-8 (from a folder name) escaped, never crash on it."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def _discard_stdout() -> None:
    """Point stdout at the null device, so that the flush at exit does not raise a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured in a test)
        pass


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` and call the chosen ``func``; returns the exit status.

    The one place where errors become what the user sees (the library's commands and the scripts
    beside it): bad input and environment problems (:class:`~senet_lib.errors.UserError`, and the
    library's ``ValueError`` / ``OSError``) print one line and return 2, a diverged training 1,
    Ctrl-C 130, a closed stdout pipe (``| head``) nothing and 141. ``SENET_DEBUG=1`` re-raises
    instead (:func:`debug_enabled`).
    """
    args = parser.parse_args(argv)
    debug = debug_enabled()
    _tolerate_unprintable_paths()
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at exit
        return code
    except BrokenPipeError:
        # The reader of stdout went away (`... | head -1`): stop quietly, as command-line tools do.
        _discard_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by a closed pipe
    except TrainingDiverged as err:
        if debug:
            raise
        print_error(str(err))
        return 1
    except (UserError, ValueError) as err:
        # One sentence that says what to do (a bad option, a corrupt file, a run folder in use, ...).
        if debug:
            raise
        print_error(str(err))
        return 2
    except OSError as err:
        if debug:
            raise
        if err.errno is None:  # the library's own sentence (e.g. a dataset that was not found)
            print_error(str(err))
        else:  # an environment problem the library did not word: say which file and what to do
            where = f" ({err.filename})" if err.filename else ""
            print_error(
                f"{err.strerror or err}{where}: check that path, its permissions and the free space, then run "
                "again (SENET_DEBUG=1 shows where it happened)."
            )
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted.", file=sys.stderr)
        return 130
