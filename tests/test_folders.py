"""Where interactive runs write: never into the committed figures/ unless asked (senet_lib.env)."""

from __future__ import annotations

import pytest

from senet_lib import env
from senet_lib.errors import UserError


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A writable fake checkout as REPO_ROOT, on a local machine, with no SENET_*_DIR set."""
    root = tmp_path / "repo"
    (root / "figures").mkdir(parents=True)
    monkeypatch.setattr(env, "REPO_ROOT", root)
    monkeypatch.setattr(env, "detect_platform", lambda: "local")
    for var in ("SENET_DATA_DIR", "SENET_CHECKPOINT_DIR", "SENET_FIGURES_DIR", "SENET_RESULTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    return root


def test_a_checkout_writes_figures_to_build_not_the_committed_folder(checkout):
    paths = env.get_paths()
    assert paths.root == checkout
    assert paths.figures == checkout / "build" / "figures" and paths.figures.is_dir()
    assert paths.checkpoints == checkout / "checkpoints"
    assert list((checkout / "figures").iterdir()) == []


def test_committed_figures_only_when_asked(checkout, monkeypatch):
    monkeypatch.setenv("SENET_FIGURES_DIR", env.COMMITTED)
    assert env.get_paths().figures == checkout / "figures"
    monkeypatch.setattr(env, "REPO_ROOT", None)
    with pytest.raises(UserError, match="needs a checkout"):
        env.get_paths()


def test_kaggle_and_installed_packages_keep_figures_under_their_root(checkout, monkeypatch, tmp_path):
    monkeypatch.setattr(env, "REPO_ROOT", None)
    monkeypatch.chdir(tmp_path)
    assert env.get_paths(create=False).figures == tmp_path / "figures"
    monkeypatch.setattr(env, "detect_platform", lambda: "kaggle")
    assert env.get_paths(create=False).figures.as_posix() == "/kaggle/working/figures"
