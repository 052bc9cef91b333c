"""The notebooks' one call: :func:`train_or_load`, the :class:`Run` it returns, run folders and names,
and the shipped networks in ``pretrained/`` (fp16 weights with a JSON sidecar; ``$SENET_PRETRAINED_DIR``
points elsewhere) that it loads instead of training when one matches the run."""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from ..checkpoint import (
    CheckpointError,
    atomic_write_json,
    load_checkpoint,
    read_checkpoint,
    read_json,
    restore_earlier_run,
    verify_weights,
)
from ..env import REPO_ROOT, get_paths
from ..errors import UserError
from ..models import create_model, list_models
from .config import MAX_SEED, TrainConfig, core_recipe
from .distributed import is_main
from .history import RECORD_NAME, History, RunRecord, dataset_descriptor, run_record
from .loop import CHECKPOINT_NAME, fit
from .trainer import RunPlan

if TYPE_CHECKING:
    from ..data import ImageDataset


def default_run_name(model_name: str, data: ImageDataset, config: TrainConfig, **model_options: Any) -> str:
    """``<model>-<dataset>-n<train size>-<hash>-seed<seed>``; the hash covers recipe, dataset and
    model options, so a subset run never shares a folder with a full one."""
    identity = dataset_descriptor(data)
    if not identity["synthetic"]:
        identity.pop("source")  # the folder CIFAR was read from does not change the run
    key = json.dumps(
        {"recipe": config.recipe(), "data": identity, "model": model_options},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{model_name}-{data.name}-n{len(data.train.labels)}-{digest}-seed{config.seed}"


class RunNameError(ValueError, UserError):
    """A run name that is not one folder name (it would put the run outside its checkpoint folder);
    ``name`` is it as printed, ``problem`` the rest of the sentence."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"The run name {name} {problem}.")
        self.name, self.problem = name, problem


def check_run_name(name: str) -> str:
    """``name`` if it names one folder inside the checkpoint folder (no path, ``.``, ``..``, NUL or
    non-UTF-8), else a :class:`RunNameError`."""
    if not isinstance(name, str):
        raise RunNameError(
            repr(name), f"is a {type(name).__name__}, not a string: choose a name such as 'my-run'"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise RunNameError(
            ascii(name), "holds bytes that are not UTF-8 text: choose a plain name such as 'my-run'"
        ) from None
    bad = (
        not name.strip()
        or name in (".", "..")
        or any(sep in name for sep in ("/", "\\", "\0"))
        or Path(name).is_absolute()
    )
    if bad:
        raise RunNameError(
            repr(name),
            "is not one folder name (it must not be empty, '.' or '..', nor hold '/' or '\\'), so the run "
            "would not stay inside its checkpoint folder: choose a plain name such as 'my-run'",
        )
    return name


def run_folder(
    model_name: str,
    data: ImageDataset,
    config: TrainConfig,
    checkpoint_dir: str | Path | None = None,
    **model_options: Any,
) -> Path:
    """``<checkpoint_dir>/<default_run_name>``: where :func:`train_or_load` keeps this run
    (default folder: ``get_paths().checkpoints``)."""
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else get_paths().checkpoints
    return folder / default_run_name(model_name, data, config, **model_options)


@dataclass
class Run:
    """What :func:`train_or_load` returns: model (eval mode), :class:`History`, record and folder (None
    for a pretrained network), checkpoint, and ``source`` (``"run"``, ``"trained"`` or ``"pretrained"``).
    Unpacks as ``model, history``."""

    model: nn.Module
    history: History
    record: RunRecord | None
    folder: Path | None
    checkpoint: Path
    source: Literal["run", "pretrained", "trained"]

    def __iter__(self) -> Iterator[Any]:
        yield self.model
        yield self.history


def train_or_load(
    model_name: str,
    data: ImageDataset,
    config: TrainConfig,
    run_name: str | None = None,
    checkpoint_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    use_pretrained: bool = True,
    **model_options: Any,
) -> Run:
    """Load a finished run, resume a partial one, load the shipped network, or train from scratch; print which.

    The run lives in ``<checkpoint_dir>/<run_name>`` (defaults: ``get_paths().checkpoints``,
    :func:`default_run_name`), with ``record.json``. A copy from an earlier Kaggle session is copied
    there first and continued. With no run and ``use_pretrained``, a matching network in ``pretrained/``
    is loaded and nothing is written.
    """
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else get_paths().checkpoints
    run_name = check_run_name(run_name) if run_name is not None else None
    run_name = run_name or default_run_name(model_name, data, config, **model_options)
    run_dir = checkpoint_dir / run_name
    plan = RunPlan.resolve(config, device, model=model_name, model_options=model_options, run_dir=run_dir)
    device = plan.device
    ckpt_path = run_dir / CHECKPOINT_NAME
    restore_earlier_run(run_name, run_dir)  # a Kaggle session's run, attached read-only: copied back here
    if ckpt_path.exists():
        payload = read_checkpoint(ckpt_path)
        saved_history = History(payload.get("history", []))
        if len(saved_history) >= config.epochs:
            model = create_model(model_name, data.num_classes, **model_options)
            model, _ = load_checkpoint(ckpt_path, model=model, device=device)
            best = saved_history.best_test_acc
            print(
                f"Loaded finished run {run_name} ({len(saved_history)} epochs, best test accuracy "
                f"{100 * best:.2f}%) from {ckpt_path}."
            )
            record_path = run_dir / RECORD_NAME
            record = _read_record(record_path) if record_path.exists() else None
            return Run(model, saved_history, record, run_dir, ckpt_path, "run")
        print(f"Resuming {run_name} from epoch {len(saved_history)} of {config.epochs} ({ckpt_path}).")
        model = create_model(model_name, data.num_classes, **model_options)
        history = fit(model, data, config, run_dir=run_dir, resume=True, plan=plan)
    else:
        shipped = _find_shipped(model_name, data, config, model_options) if use_pretrained else None
        if shipped is not None:
            model, _ = load_checkpoint(shipped.path, device=device)
            print(f"Loaded the repository's pretrained network {shipped.describe()} from {shipped.path}.")
            return Run(model, History(shipped.history), None, None, shipped.path, "pretrained")
        print(f"Training {run_name} for {config.epochs} epochs on {device}; checkpoints go to {run_dir}.")
        model = plan.build_model(data.num_classes)
        history = fit(model, data, config, run_dir=run_dir, plan=plan)
    record = run_record(model, data, config, history, plan.record(), history.total_seconds)
    if is_main():  # several processes (torchrun): rank 0 writes
        atomic_write_json(run_dir / RECORD_NAME, record)
    model.eval()
    return Run(model, history, record, run_dir, ckpt_path, "trained")


class ComparisonError(ValueError, UserError):
    """Notebook 05's ``MODELS`` or ``SEEDS`` is not what a comparison needs (:func:`check_comparison`)."""


def check_comparison(models: Any, seeds: Any) -> tuple[tuple[str, str], tuple[int, ...]]:
    """Notebook 05's ``MODELS`` (two registered names) and ``SEEDS`` (distinct whole numbers, or one)
    checked before any training: ``((plain, se), seeds)``.

    Raises:
        ComparisonError: one sentence naming the parameter and how to pass it.
    """
    example = '-y \'MODELS: [resnet20, se_resnet20]\' with papermill, or MODELS = ("resnet20", "se_resnet20")'
    if isinstance(models, str) or not isinstance(models, Sequence) or len(models) != 2:
        raise ComparisonError(
            f"MODELS must be a pair of model names (plain, SE), not {models!r}: pass {example}."
        )
    unknown = [m for m in models if not isinstance(m, str) or m not in list_models()]
    if unknown:
        raise ComparisonError(
            f"MODELS names {unknown[0]!r}, which is not a model; valid models: {', '.join(list_models())}."
        )
    if models[0] == models[1]:
        raise ComparisonError(
            f"MODELS compares {models[0]!r} with itself: pass two different models ({example})."
        )
    if _whole(seeds):
        seeds = (seeds,)
    seed_example = "-y 'SEEDS: [0, 1, 2]' (or -p SEEDS 0 for one seed) with papermill, or SEEDS = (0, 1, 2)"
    if isinstance(seeds, str) or not isinstance(seeds, Sequence) or not seeds:
        raise ComparisonError(f"SEEDS must be one or more whole numbers, not {seeds!r}: pass {seed_example}.")
    bad = [s for s in seeds if not (_whole(s) and 0 <= s <= MAX_SEED)]
    if bad:
        raise ComparisonError(
            f"SEEDS holds {bad[0]!r}, which is not a whole number in 0..{MAX_SEED}: pass {seed_example}."
        )
    if len(set(seeds)) != len(seeds):
        raise ComparisonError(f"SEEDS lists a seed twice ({list(seeds)}): give each seed once.")
    return (models[0], models[1]), tuple(int(s) for s in seeds)


def _read_record(path: Path) -> RunRecord | None:
    """A finished run's ``record.json``; a damaged one is reported and read as None (the checkpoint holds
    the weights and history, so the run still loads)."""
    try:
        record = read_json(path)
    except (OSError, ValueError) as err:
        warnings.warn(
            f"{path} cannot be read ({err}); the run is loaded without its record: delete or "
            "repair that file.",
            stacklevel=3,
        )
        return None
    return record if isinstance(record, dict) else None


def _find_shipped(
    model_name: str, data: ImageDataset, config: TrainConfig, model_options: Mapping[str, Any]
) -> PretrainedMatch | None:
    arch = {"name": model_name, "num_classes": int(data.num_classes), **model_options}
    return find_pretrained(arch, dataset_descriptor(data), config.to_dict())


#: Recipe fields besides :data:`senet_lib.train.RUNTIME_FIELDS` that do not change the experiment.
SAME_EXPERIMENT_FIELDS = ("precision", "pipeline")


def pretrained_dir() -> Path | None:
    """``$SENET_PRETRAINED_DIR``, else ``<checkout>/pretrained``, else None (an installed package)."""
    if os.environ.get("SENET_PRETRAINED_DIR"):
        return Path(os.environ["SENET_PRETRAINED_DIR"]).expanduser()
    return REPO_ROOT / "pretrained" if REPO_ROOT is not None else None


def recorded_profile(meta: Mapping[str, Any]) -> str:
    """The named recipe (:data:`senet_lib.train.PROFILE_SETTINGS`) a run was started with, read from a sidecar or from the
    ``meta`` of exported weights (both keep the run's environment), or "?" if unrecorded."""
    return str((meta.get("environment") or {}).get("profile") or "?")


@dataclass(frozen=True)
class PretrainedMatch:
    """One shipped weights file that matches a request, with its sidecar."""

    path: Path
    sidecar: dict[str, Any]

    @property
    def history(self) -> list[dict[str, Any]]:
        """The run's per-epoch rows (empty for files exported before histories were kept)."""
        return list(self.sidecar.get("history") or [])

    @property
    def images_seen(self) -> int:
        """Training images the network saw: its recipe's epochs × its training split (0 if unrecorded)."""
        epochs = (self.sidecar.get("recipe") or {}).get("epochs") or 0
        return int(epochs) * int((self.sidecar.get("data") or {}).get("train_size") or 0)

    @property
    def profile(self) -> str:
        """The named recipe the run was started with (:func:`recorded_profile`), or "?"."""
        return recorded_profile(self.sidecar)

    @property
    def data_label(self) -> str:
        return str((self.sidecar.get("data") or {}).get("label", "?"))

    def describe(self) -> str:
        acc = (self.sidecar.get("accuracy") or {}).get("final_test_acc")
        shown = f", final test accuracy {100 * acc:.2f}%" if isinstance(acc, (int, float)) else ""
        profile = self.profile
        recipe = f"profile {profile}, " if profile != "?" else ""
        return f"{self.path.name} ({recipe}trained on {self.data_label}{shown})"


def same_recipe(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two recipes (``TrainConfig.to_dict()``) train the same network: runtime fields,
    precision and pipeline are ignored."""

    def core(recipe: Mapping[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in core_recipe(recipe).items() if k not in SAME_EXPERIMENT_FIELDS}
        return json.loads(json.dumps(kept))

    return core(a) == core(b)


def _same_data(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    keys = ("name", "num_classes", "train_size", "test_size")
    return not saved.get("synthetic") and all(saved.get(k) == wanted.get(k) for k in keys)


class PretrainedWarning(UserWarning):
    """A file in the pretrained folder was skipped (unreadable, or not a weights sidecar); the others are used."""


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _sidecar_problem(sidecar: Any) -> str | None:
    """What makes a parsed ``*.json`` unusable as a weights sidecar, as the end of a sentence, or None."""
    if not isinstance(sidecar, dict):
        return "it is not a JSON object"
    arch = sidecar.get("arch_config")
    if not (isinstance(arch, dict) and isinstance(arch.get("name"), str) and _whole(arch.get("num_classes"))):
        return "its arch_config is not a model description (a name and a number of classes)"
    name = sidecar.get("file")
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        return f"its file entry {name!r} is not the name of a weights file beside it"
    for key, kind in (
        ("data", dict),
        ("recipe", dict),
        ("accuracy", dict),
        ("history", list),
        ("environment", dict),
    ):
        if sidecar.get(key) is not None and not isinstance(sidecar[key], kind):
            return f"its {key!r} entry is a {type(sidecar[key]).__name__}, not a {kind.__name__}"
    for key, values in (("recipe", ("epochs", "seed")), ("data", ("num_classes", "train_size", "test_size"))):
        for field in values:
            value = (sidecar.get(key) or {}).get(field)
            if value is not None and not _whole(value):
                return f"its {key} {field} is {value!r}, not a whole number"
    if not all(isinstance(row, dict) for row in sidecar.get("history") or []):
        return "its history is not a list of rows"
    return None


def _sidecars(folder: str | Path | None) -> list[tuple[Path, dict[str, Any]]]:
    """Every usable sidecar in ``folder`` with its weights file; each unusable one is skipped with a
    :class:`PretrainedWarning` that names it, so one bad file never hides the others."""
    folder = Path(folder) if folder is not None else pretrained_dir()
    if folder is None or not folder.is_dir():
        return []
    found = []
    for sidecar_path in sorted(folder.glob("*.json")):
        try:
            sidecar = read_json(sidecar_path)
            problem = _sidecar_problem(sidecar)
        except (OSError, ValueError) as err:
            problem = f"it cannot be read ({err})"
        if problem:
            warnings.warn(
                f"Skipping {sidecar_path}: {problem}; the other pretrained networks are still used. Repair or "
                "delete that file (or fetch it again: git checkout -- pretrained/).",
                PretrainedWarning,
                stacklevel=3,
            )
            continue
        found.append((sidecar_path.with_name(sidecar["file"]), sidecar))
    return found


def _verified(weights: Path, sidecar: dict[str, Any]) -> PretrainedMatch | None:
    try:
        verify_weights(weights)
    except (CheckpointError, OSError) as err:
        print(f"Skipping {weights.name}: {err}")
        return None
    return PretrainedMatch(weights, sidecar)


def list_pretrained(folder: str | Path | None = None) -> list[PretrainedMatch]:
    """Every weights file with a sidecar in ``folder`` (default :func:`pretrained_dir`), unverified."""
    return [PretrainedMatch(weights, sidecar) for weights, sidecar in _sidecars(folder)]


def _longest_first(
    model_name: str, dataset: str, num_classes: int, folder: str | Path | None
) -> list[tuple[Path, dict[str, Any]]]:
    """The shipped ``model_name`` files (default options) trained on the full real ``dataset``: those
    trained on official pixels first (a label without "JPEG": the official release or the lossless
    copy), then the longest-trained, then the lowest seed."""
    found = [
        (weights, sidecar)
        for weights, sidecar in _sidecars(folder)
        if sidecar["arch_config"] == {"name": model_name, "num_classes": int(num_classes)}
        and (sidecar.get("data") or {}).get("name") == dataset
        and not (sidecar.get("data") or {}).get("synthetic")
    ]

    def preference(candidate: tuple[Path, dict[str, Any]]) -> tuple[bool, int, int]:
        recipe, data = candidate[1].get("recipe") or {}, candidate[1].get("data") or {}
        compressed = "JPEG" in str(data.get("label", ""))
        return compressed, -int(recipe.get("epochs", 0)), int(recipe.get("seed", 0))

    return sorted(found, key=preference)


def pick_pretrained(
    model_name: str, dataset: str, num_classes: int, folder: str | Path | None = None
) -> PretrainedMatch | None:
    """The shipped ``model_name`` (default options) on the full ``dataset``, whatever its recipe: official
    pixels first, then the longest-trained, then the lowest seed; verified, or None."""
    for weights, sidecar in _longest_first(model_name, dataset, num_classes, folder):
        match = _verified(weights, sidecar)
        if match is not None:
            return match
    return None


def pick_pretrained_pair(
    plain_name: str, se_name: str, dataset: str, num_classes: int, folder: str | Path | None = None
) -> tuple[PretrainedMatch, PretrainedMatch] | None:
    """A shipped plain network and its SE twin with the same data, recipe and seed (official pixels,
    then longest-trained, then lowest seed first; both verified), or None."""
    plain = _longest_first(plain_name, dataset, num_classes, folder)
    twin_arch = {"name": se_name, "num_classes": int(num_classes)}
    for weights, sidecar in plain:
        twin = find_pretrained(twin_arch, sidecar["data"], sidecar.get("recipe") or {}, folder)
        if twin is not None and (match := _verified(weights, sidecar)):
            return match, twin
    return None


def find_pretrained(
    arch_config: Mapping[str, Any],
    data: Mapping[str, Any],
    recipe: Mapping[str, Any],
    folder: str | Path | None = None,
) -> PretrainedMatch | None:
    """The shipped weights file trained as asked (``arch_config``, dataset descriptor ``data``, ``recipe``
    compared by :func:`same_recipe`) in ``folder`` (default :func:`pretrained_dir`), or None.

    A file whose SHA-256 does not match its sidecar is skipped with a printed note.
    """
    if data.get("synthetic"):
        return None
    wanted_arch = json.loads(json.dumps(dict(arch_config)))
    for weights, sidecar in _sidecars(folder):
        if sidecar["arch_config"] != wanted_arch or not _same_data(sidecar.get("data") or {}, data):
            continue
        if same_recipe(sidecar.get("recipe") or {}, recipe) and (match := _verified(weights, sidecar)):
            return match
    return None
