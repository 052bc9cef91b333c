"""Saving figures: :func:`save_figure` writes PNG, PDF and a provenance JSON into the figures folder."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from ..env import get_paths, git_commit

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
    """Save ``fig`` as ``name.png``, ``name.pdf`` and ``name.json`` (``provenance`` plus commit and time) in
    ``folder`` (default: the figures folder); ``name`` is letters, digits, ``_``, ``.`` and ``-``.
    Returns the paths by format."""
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
