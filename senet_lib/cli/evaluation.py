"""The ``evaluate`` command: test loss and accuracy of a checkpoint on the data it was trained on."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..checkpoint import (
    WEIGHTS_FORMAT,
    MissingArchitectureError,
    load_checkpoint,
    read_json,
    verify_weights,
)
from ..data import DATASETS, PIPELINES, load_run_data, make_loaders
from ..env import PRECISIONS, device_name, get_device
from ..train import (
    CHECKPOINT_NAME,
    RECORD_NAME,
    TrainConfig,
    Trainer,
)
from .common import UsageError, check_dataset
from .options import checked_config, checked_subsets


# --------------------------------------------------------------------------- evaluate
@dataclasses.dataclass(frozen=True)
class Recorded:
    """What was written beside a checkpoint: its run folder's ``record.json`` or an exported weights
    file's sidecar. Any field can be missing (None)."""

    source: Path
    dataset: dict[str, Any] | None
    epochs: int | None
    seed: int | None
    final_test_acc: float | None


def recorded_beside(checkpoint: Path) -> Recorded | None:
    """The record of the run a checkpoint belongs to, or None where nothing is written beside it.

    Raises:
        UsageError: that file is not valid JSON (the message names it).
    """
    record_path = checkpoint.parent / RECORD_NAME
    if record_path.is_file():
        record = _read_json(record_path)
        record = _mapping(record)
        dataset = record.get("dataset")
        recipe, accuracy = _mapping(record.get("recipe")), record
    else:
        record_path = checkpoint.with_suffix(".json")
        if not record_path.is_file():
            return None
        meta = _read_json(record_path)
        meta = _mapping(meta)
        data = meta.get("data")
        dataset = data if isinstance(data, dict) else ({"name": data} if isinstance(data, str) else None)
        recipe, accuracy = _mapping(meta.get("recipe")), _mapping(meta.get("accuracy"))
    final = accuracy.get("final_test_acc")
    if not isinstance(final, (int, float)) or isinstance(final, bool):
        final = None  # a hand-edited or damaged file may hold anything here: only a number is shown
    return Recorded(
        source=record_path,
        dataset=dataset if isinstance(dataset, dict) else None,
        epochs=recipe.get("epochs"),
        seed=recipe.get("seed"),
        final_test_acc=final,
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _read_json(path: Path) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError) as err:
        raise UsageError(
            f"{path} cannot be read as JSON ({err}): repair or delete it, or pass --dataset so that it is not needed."
        ) from err


def recorded_data(
    path: Path, payload: dict[str, Any], dataset: str | None, test_subset: int | None
) -> tuple[str, int | None, dict[str, Any], Recorded | None]:
    """``(dataset, test size, recorded descriptor, record beside)`` to measure a checkpoint on.

    ``dataset`` as given, else the one written beside the file, else the one the checkpoint itself
    records (fit saves it with every checkpoint, so an unfinished or killed run knows it too); the
    recorded test size only where neither ``dataset`` nor ``test_subset`` was given.

    Raises:
        UsageError: no dataset is recorded, or what is recorded is not a name or a size.
    """
    saved = (payload.get("extra") or {}).get("dataset")
    saved = saved if isinstance(saved, dict) else None
    try:
        beside = recorded_beside(path)
    except UsageError:
        if dataset is None and saved is None:
            raise
        beside = None  # unreadable, but not needed: the dataset is known without it
    recorded = ((beside.dataset if beside else None) or saved or {}) if dataset is None else {}
    source = beside.source.name if beside and beside.dataset else path.name
    given, dataset = dataset, dataset or recorded.get("name")
    if dataset is None:
        raise UsageError(
            f"{path} does not record which dataset it was trained on: pass --dataset "
            f"({', '.join(('auto', *DATASETS))})."
        )
    if not isinstance(dataset, str):
        raise UsageError(f"{source} names the dataset {dataset!r}, which is not a name: pass --dataset.")
    check_dataset(dataset)
    if test_subset is None and given is None:
        test_subset = recorded.get("test_size")
        if test_subset is not None and not (
            isinstance(test_subset, int) and not isinstance(test_subset, bool) and test_subset >= 1
        ):
            raise UsageError(
                f"{source} records a test split of {test_subset!r} images, not a count: pass --test-subset "
                "(or --dataset)."
            )
    return dataset, test_subset, recorded, beside


def load_trusted(path: Path, advice: str, device: Any = "cpu") -> tuple[Any, dict[str, Any]]:
    """The network in a checkpoint or exported weights file and its payload; an exported file with a
    sidecar must match the sidecar's SHA-256 first. A file that records no architecture ends in one
    sentence: "<path> does not record its architecture, <advice>"."""
    try:
        model, payload = load_checkpoint(path, device=device)
    except MissingArchitectureError as err:
        raise UsageError(f"{path} does not record its architecture, {advice}") from err
    if payload.get("format") == WEIGHTS_FORMAT and path.with_suffix(".json").is_file():
        verify_weights(path)  # an exported file with its sidecar: its SHA-256 must match before it is trusted
    return model, payload


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print the test loss and accuracy of a checkpoint, and with ``--tta`` its flip-TTA accuracy
    (writes nothing, needs no writable folder)."""
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
    model, payload = load_trusted(
        path,
        "so evaluate cannot rebuild the model: load it in Python with "
        "senet_lib.checkpoint.load_checkpoint(path, model=<the network>).",
        device,
    )
    dataset, test_subset, _, beside = recorded_data(path, payload, args.dataset, args.test_subset)
    checked_subsets(dataset, None, test_subset)
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
    # An exported weights file holds only weights: its epoch and seed come from the sidecar.
    epoch = payload.get("epoch", beside.epochs if beside and beside.epochs is not None else "?")
    seed = recipe.get("seed", beside.seed if beside and beside.seed is not None else "?")
    print(f"checkpoint : {path} ({arch['name']}, epoch {epoch}, seed {seed})")
    print(f"dataset    : {data.label}, test split of {len(data.test)} images")
    print(f"device     : {device} ({device_name(device)}), precision {trainer.precision.name}")
    print(f"test loss  : {loss:.4f}")
    print(f"test acc   : {100 * acc:.2f}%")
    if beside and beside.final_test_acc is not None and args.dataset is None and args.test_subset is None:
        print(
            f"recorded   : {100 * beside.final_test_acc:.2f}% at the end of training ({beside.source.name})"
        )
    if args.tta:
        tta = trainer.evaluate_flip_tta(test_loader)
        print(f"flip-TTA   : {100 * tta:.2f}% (mean logits of each image and its mirror; single-crop above)")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="test loss and accuracy of a checkpoint")
    p.add_argument("checkpoint", help="a checkpoint.pt, a run folder, or an exported weights file")
    p.add_argument("--dataset", help="default: the dataset recorded beside the checkpoint")
    p.add_argument("--test-subset", type=int, help="default: the recorded test-split size")
    p.add_argument("--data-dir", help="where to look for / download the dataset")
    p.add_argument("--no-download", action="store_true", help="never download; fail if the data is missing")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    p.add_argument("--precision", choices=PRECISIONS, help="default: the device's ($SENET_PRECISION)")
    p.add_argument("--pipeline", choices=PIPELINES, default="auto", help="data pipeline (default auto)")
    p.add_argument("--device", help="cuda | cuda:N | mps | cpu (default: $SENET_DEVICE, else the best)")
    p.add_argument(
        "--tta", action="store_true", help="also the accuracy with horizontal-flip test-time augmentation"
    )
    p.set_defaults(func=cmd_evaluate)
