"""The ``analyse`` command: notebook 06's analysis of a trained SE network, its figures written to a folder.

The command runs the notebook itself (with papermill), its parameters pointing at the given file, so the
figures, checks and verdicts are the notebook's own; the executed copy is kept beside the figures.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..env import PROFILES, REPO_ROOT, get_paths, get_profile
from ..errors import UserError
from ..se import se_blocks
from ..train import CHECKPOINT_NAME
from ..train.config import get_settings
from .common import PROG, UsageError
from .evaluation import load_trusted, recorded_data
from .options import checked_subsets

#: The notebook ``analyse`` runs, in a checkout of the repository.
NOTEBOOK = "06_excitation_per_class.ipynb"
#: Parameters the command sets itself, from the file and its record.
OWN_PARAMETERS = ("CHECKPOINT", "DATASET", "TRAIN_SUBSET", "TEST_SUBSET")


class AnalysisFailed(UserError):
    """The notebook stopped in a cell; the message names the cell, the error and the executed copy."""


def notebook_path() -> Path:
    """Notebook 06 of this checkout; a :class:`UsageError` where senet_lib runs outside one."""
    path = REPO_ROOT / "notebooks" / NOTEBOOK if REPO_ROOT is not None else None
    if path is None or not path.is_file():
        raise UsageError(
            f"analyse runs notebooks/{NOTEBOOK}, which only a checkout of the repository has: clone it and run "
            f"{PROG} analyse there."
        )
    return path


def parse_settings(items: list[str], allowed: dict[str, Any]) -> dict[str, Any]:
    """``["SEED=1", "KNOCKOUT_BLOCK=SE_4_1"]`` → ``{"SEED": 1, "KNOCKOUT_BLOCK": "SE_4_1"}``: a Python literal
    where the value is one, else the text; every name must be one of ``allowed`` (the notebook's parameters)."""
    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise UsageError(f"--set {item!r} is not NAME=VALUE: write e.g. --set SEED=1.")
        if name in OWN_PARAMETERS:
            raise UsageError(
                f"--set {name} is chosen by analyse itself: give the file as its argument, and --dataset, "
                "--train-subset or --test-subset for the data."
            )
        if name not in allowed:
            raise UsageError(
                f"--set {name}: notebook 06 has no such parameter; it has {', '.join(sorted(allowed))}."
            )
        try:
            values[name] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            values[name] = text.strip()
    return values


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables (inherited by the notebook's kernel) while the block runs."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cmd_analyse(args: argparse.Namespace) -> int:
    """Check the file, then run notebook 06 on it with papermill; print where its figures went."""
    path = Path(args.checkpoint).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UsageError(
            f"{path} does not exist: pass a checkpoint.pt, a run folder or an exported weights file (.pt)."
        )
    notebook = notebook_path()
    try:
        import papermill
    except ImportError:
        raise UsageError(
            "analyse runs notebook 06 with papermill, which is not installed: pip install papermill "
            "(or pip install -e '.[notebooks]')."
        ) from None
    model, payload = load_trusted(
        path,
        "so analyse cannot rebuild the network: plot its excitations in Python instead (docs/any_se_network.md).",
    )
    arch = model.arch_config
    if not se_blocks(model):
        raise UsageError(
            f"{path} holds {arch['name']}, a network without SE blocks: analyse reads SE gates, so pass an SE "
            "network (e.g. one trained with --model se_resnet20)."
        )
    dataset, test_subset, recorded, _ = recorded_data(path, payload, args.dataset, args.test_subset)
    train_subset = args.train_subset
    if train_subset is None and args.dataset is None:
        train_subset = _int_or_none(recorded.get("train_size"))  # the same images BatchNorm's reference sees
    checked_subsets(dataset, train_subset, test_subset)
    classes = _int_or_none(recorded.get("num_classes"))
    if classes is not None and classes != arch["num_classes"]:
        raise UsageError(
            f"{path} has {arch['num_classes']} outputs but records data of {classes} classes: pass --dataset."
        )
    allowed = papermill.inspect_notebook(str(notebook))
    parameters: dict[str, Any] = {
        "CHECKPOINT": str(path.resolve()),
        "DATASET": dataset,
        "TRAIN_SUBSET": train_subset,
        "TEST_SUBSET": test_subset,
    }
    images = args.images_per_class
    if images is None and test_subset is not None:  # a small recorded test split: as many as every class has
        profile = get_settings(get_profile(args.profile) if args.profile else get_profile())
        images = min(profile.images_per_class, max(1, test_subset // arch["num_classes"]))
    if images is not None:
        parameters["IMAGES_PER_CLASS"] = images
    parameters.update(parse_settings(args.set or [], allowed))
    name = path.parent.name if path.name == CHECKPOINT_NAME else path.stem
    out = Path(args.out).expanduser() if args.out else get_paths().figures / f"06_{name}"
    out.mkdir(parents=True, exist_ok=True)
    executed = out / NOTEBOOK
    variables = {"SENET_FIGURES_DIR": str(out.resolve()), "SENET_RESULTS_DIR": str(out.resolve())}
    variables["MPLBACKEND"] = "Agg"
    if args.data_dir:
        variables["SENET_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    if args.device:
        variables["SENET_DEVICE"] = args.device
    if args.profile:
        variables["SENET_PROFILE"] = args.profile
    python_path = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    variables["PYTHONPATH"] = os.pathsep.join(filter(None, python_path))
    shown = ", ".join(f"{k}={v!r}" for k, v in parameters.items() if k != "CHECKPOINT")
    print(f"Analysing {arch['name']} from {path} with notebook 06 ({shown}); figures go to {out}")
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    with _environment(**variables):
        try:
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=parameters,
                cwd=str(notebook.parent),
                kernel_name="python3",
                progress_bar=not args.no_progress,
            )
        except papermill.PapermillExecutionError as err:
            raise AnalysisFailed(
                f"notebook 06 stopped in cell {err.exec_count} with {err.ename}: {err.evalue.splitlines()[0]} "
                f"(the executed copy, with the error, is {executed})."
            ) from None
    figures = sorted(p for p in out.glob("*.png") if before.get(p.name) != p.stat().st_mtime_ns)
    print(f"\n{len(figures)} figures (PNG, PDF and provenance JSON) in {out}:")
    print("\n".join(f"  {p.name}" for p in figures))
    print(f"executed notebook: {executed}")
    return 0


def _add_analyse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyse",
        help="notebook 06's per-class excitation figures for a trained SE network",
        description="Run notebook 06 (excitations per class, paper Fig. 6 and 7, class separation by depth, "
        "saturation, knock-outs) on a checkpoint or exported weights file, and write its figures to --out.",
    )
    p.add_argument("checkpoint", help="a checkpoint.pt, a run folder, or an exported weights file")
    p.add_argument("--dataset", help="default: the dataset recorded beside or in the file")
    p.add_argument("--data-dir", help="where to look for / download the dataset (default: $SENET_DATA_DIR)")
    p.add_argument("--out", help="folder for the figures and the executed notebook (default: figures folder)")
    p.add_argument("--train-subset", type=int, help="default: the recorded training-split size")
    p.add_argument("--test-subset", type=int, help="default: the recorded test-split size")
    p.add_argument(
        "--images-per-class", type=int, help="test images per class (default: the profile's, the paper: 50)"
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="any other parameter of notebook 06, e.g. --set PERMUTATIONS=999 (repeatable)",
    )
    p.add_argument(
        "--profile", choices=PROFILES, help="the notebook's profile (default: $SENET_PROFILE, else by device)"
    )
    p.add_argument("--device", help="cuda | cuda:N | mps | cpu (default: $SENET_DEVICE, else the best)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over the notebook's cells")
    p.set_defaults(func=cmd_analyse)
