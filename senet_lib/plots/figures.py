"""Saving figures: one helper for every figure the series writes.

:func:`save_figure` writes ``<figures>/<name>.png`` (for slides), ``<name>.pdf`` (for print) and
``<name>.json``, a provenance file saying what made the figure (commit, device, dataset, model,
checkpoint, ...), into the figures folder of :func:`senet_lib.env.get_paths`.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from ..env import get_paths, git_commit

__all__ = [
    "save_figure",
    "set_style",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def set_style() -> None:
    """The series' plot style: seaborn's whitegrid theme, readable on slides."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", palette="deep")


def save_figure(
    fig: plt.Figure,
    name: str,
    provenance: dict[str, Any] | None = None,
    folder: str | Path | None = None,
    formats: tuple[str, ...] = ("png", "pdf"),
    dpi: int = 200,
) -> dict[str, Path]:
    """Save ``fig`` as ``name.png`` and ``name.pdf`` plus ``name.json`` (provenance).

    Args:
        fig: the matplotlib figure.
        name: file stem, letters, digits, ``_``, ``.`` and ``-`` only (e.g. ``"03_se_placements"``).
        provenance: what made the figure: model, checkpoint, dataset (say ``synthetic`` when it
            is), images per class, device, ... The commit and a timestamp are added.
        folder: where to write (default: the figures folder from :func:`senet_lib.env.get_paths`).

    Returns:
        The written paths keyed by format (and ``"json"``).
    """
    if not _NAME.match(name):
        raise ValueError(f"Figure name {name!r} must use only letters, digits, '_', '.' and '-'.")
    out = Path(folder) if folder is not None else get_paths().figures
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        fig.savefig(
            path, dpi=dpi, bbox_inches="tight", metadata={"Creator": "senet_lib"} if fmt == "pdf" else None
        )
        written[fmt] = path
    record = {
        "figure": name,
        "files": [p.name for p in written.values()],
        "commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(provenance or {}),
    }
    json_path = out / f"{name}.json"
    json_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    written["json"] = json_path
    return written
