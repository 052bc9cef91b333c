"""Shared test set-up: every test writes into its own temporary folders, never into the repo."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_folders(tmp_path_factory, monkeypatch):
    """Point data, checkpoint, figure, results and pretrained folders at a fresh temporary folder."""
    base = tmp_path_factory.mktemp("senet")
    for var, sub in [
        ("SENET_DATA_DIR", "data"),
        ("SENET_CHECKPOINT_DIR", "checkpoints"),
        ("SENET_FIGURES_DIR", "figures"),
        ("SENET_RESULTS_DIR", "results"),
        ("SENET_PRETRAINED_DIR", "pretrained"),
    ]:
        monkeypatch.setenv(var, str(base / sub))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield base
