"""Where files go: the writable folders for data, checkpoints, figures and results (:func:`get_paths`).

Re-exported by :mod:`senet_lib.env` (``from senet_lib.env import get_paths`` keeps working). Defaults:

=================  ===========================================  ==============================
platform           root                                          figures
=================  ===========================================  ==============================
a checkout         the repository                                ``build/figures`` (never the
                                                                 committed ``figures/``)
Kaggle             ``/kaggle/working`` (kept as the output)      ``<root>/figures``
anywhere else      the current folder                            ``<root>/figures``
=================  ===========================================  ==============================

Each folder is overridden by its ``SENET_*_DIR`` variable. ``SENET_FIGURES_DIR=committed`` asks for the
checkout's committed ``figures/`` (what ``make figures`` and ``scripts/figures_06.sh`` write), so that an
interactive run on synthetic data never overwrites the presenter's set by accident.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

__all__ = ["COMMITTED", "Paths", "committed_figures", "get_paths"]

#: The value of ``SENET_FIGURES_DIR`` that selects the checkout's committed ``figures/`` folder.
COMMITTED = "committed"


@dataclass(frozen=True)
class Paths:
    """Writable folders. Created on first use by :func:`get_paths`."""

    root: Path
    data: Path
    checkpoints: Path
    figures: Path
    results: Path


def committed_figures() -> Path:
    """The checkout's committed ``figures/`` folder (an error outside a checkout)."""
    from . import env  # at call time: env re-exports this module's names

    if env.REPO_ROOT is None:
        raise UserError(
            f"SENET_FIGURES_DIR={COMMITTED} needs a checkout of the repository (there is no committed "
            "figures/ folder in an installed package): set SENET_FIGURES_DIR to a folder instead."
        )
    return env.REPO_ROOT / "figures"


def get_paths(create: bool = True) -> Paths:
    """Folders for data, checkpoints, figures and results (see the module docstring for the defaults)."""
    from . import env  # at call time: tests and users may patch env.REPO_ROOT / env.detect_platform

    if env.detect_platform() == "kaggle":
        root = Path("/kaggle/working")
    elif env.REPO_ROOT is not None and os.access(env.REPO_ROOT, os.W_OK):
        root = env.REPO_ROOT
    else:
        root = Path.cwd()

    def pick(var: str, default: Path) -> Path:
        value = os.environ.get(var)
        if var == "SENET_FIGURES_DIR" and value == COMMITTED:
            return committed_figures()
        return Path(value).expanduser().resolve() if value else default

    paths = Paths(
        root=root,
        data=pick("SENET_DATA_DIR", root / "data"),
        checkpoints=pick("SENET_CHECKPOINT_DIR", root / "checkpoints"),
        figures=pick("SENET_FIGURES_DIR", root / ("build/figures" if root == env.REPO_ROOT else "figures")),
        results=pick("SENET_RESULTS_DIR", root / "results"),
    )
    if create:
        for folder in (paths.data, paths.checkpoints, paths.figures, paths.results):
            folder.mkdir(parents=True, exist_ok=True)
    return paths
