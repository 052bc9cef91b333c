"""The Colab / Kaggle route, simulated: every notebook's first setup cell and senet_lib/cloud.py.

The cell is executed as written (from the notebook) with the platform faked: Colab by a ``google.colab``
module, Kaggle by ``KAGGLE_KERNEL_RUN_TYPE`` and a temporary folder standing in for the read-only
``/kaggle/input`` (``$SENET_KAGGLE_INPUT``). The network and pip are replaced by recorders, and
``senet_lib`` is made to look not installed, so nothing is downloaded or installed for real.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
import urllib.request
import zipfile
from pathlib import Path

import pytest

from senet_lib import cloud

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _script():
    spec = importlib.util.spec_from_file_location("cloud_cells", ROOT / "scripts" / "cloud_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(notebook: Path = NOTEBOOKS[0]) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    assert "cloud-setup" in cells[1]["metadata"].get("tags", []), f"{notebook.name}: no setup cell first"
    return "".join(cells[1]["source"])


def _repo_copy(folder: Path) -> Path:
    """A minimal copy of this repository: pyproject.toml, senet_lib/, a pretrained/ folder."""
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    shutil.copytree(ROOT / "senet_lib", folder / "senet_lib", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "pretrained").mkdir()
    (folder / "pretrained" / "README.md").write_text("weights go here\n")
    return folder


def _snapshot(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.fixture
def cloud_sandbox(monkeypatch, tmp_path):
    """Not installed, no network, pip recorded, sys.path / environment restored afterwards."""
    pip_calls: list[list[str]] = []
    real_find_spec = importlib.util.find_spec
    installed = {"senet_lib": False}

    def find_spec(name, *args):
        if name != "senet_lib" or installed["senet_lib"]:
            return real_find_spec(name, *args)
        for entry in sys.path:  # only a copy the cell put on sys.path (an attached dataset) is found
            init = Path(entry) / "senet_lib" / "__init__.py"
            if entry.startswith(str(tmp_path)) and init.is_file():
                return importlib.util.spec_from_file_location("senet_lib", init)
        return None

    def pip(cmd, **kw):
        pip_calls.append(list(cmd))
        installed["senet_lib"] |= any(arg.startswith("senet-lib @ git+") for arg in cmd)
        return 0

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "check_call", pip)
    monkeypatch.setattr(subprocess, "call", pip)

    def offline(*_args, **_kwargs):
        raise OSError("network is unreachable (simulated)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    for var in (
        "KAGGLE_KERNEL_RUN_TYPE",
        "COLAB_RELEASE_TAG",
        "SENET_PRETRAINED_DIR",
        "SENET_REF",
        "SENET_REPO",
    ):
        monkeypatch.setenv(var, "x")
        monkeypatch.delenv(var)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("SENET_KAGGLE_INPUT", str(tmp_path / "no-input"))
    return pip_calls


def test_url_and_version_have_one_source_readme_and_notebooks_agree():
    script = _script()
    url = script.repo_url()
    assert url.startswith("https://github.com/") and cloud.archive_url(url).endswith("/archive/main.zip")
    assert script.project_version() == importlib.metadata.version("senet-lib")
    assert script.main(["--check"]) == 0, "run python scripts/cloud_cells.py"
    readme = (ROOT / "README.md").read_text()
    assert script.badges(url, "00_start_here.ipynb") in readme
    assert set(__import__("re").findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme)) == {url}
    for notebook in NOTEBOOKS:
        cell = _cell(notebook)
        assert f'REPO = os.environ.get("SENET_REPO", "{url}")' in cell
        assert f'REF = os.environ.get("SENET_REF", "{script.BRANCH}")' in cell  # the ref its badges open
        assert "--no-deps" in cell and "exec(" not in cell and "urlopen" not in cell  # no downloaded code run
        title = "".join(json.loads(notebook.read_text())["cells"][0]["source"])
        assert script.badges(url, notebook.name) in title


def test_the_check_sees_a_stale_notebook(tmp_path):
    script = _script()
    nb = json.loads(NOTEBOOKS[0].read_text())
    nb["cells"][1]["source"] = ["import os\n"]
    stale = tmp_path / NOTEBOOKS[0].name
    stale.write_text(json.dumps(nb))
    assert script.main(["--check", str(stale)]) == 1
    assert script.main([str(stale)]) == 0 and script.main(["--check", str(stale)]) == 0
    assert script.updated(json.loads(stale.read_text()), script.repo_url(), stale.name) == json.loads(
        stale.read_text()
    )


def test_locally_the_cell_does_nothing(cloud_sandbox):
    namespace: dict = {}
    exec(_cell(), namespace)  # urlopen raises and pip is recorded: the cell touches neither
    assert "cloud" not in namespace and cloud_sandbox == []
    assert cloud.bootstrap("https://github.com/a/b", platform="local").startswith("local machine")


def test_kaggle_offline_uses_an_attached_read_only_copy(cloud_sandbox, monkeypatch, tmp_path):
    inputs = tmp_path / "kaggle-input"
    repo = _repo_copy(inputs / "senet-tutorial-dataset" / "senet-tutorial-main")
    (inputs / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)  # another attached dataset
    before = _snapshot(inputs)
    monkeypatch.setenv("SENET_KAGGLE_INPUT", str(inputs))
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    namespace: dict = {}
    exec(_cell(NOTEBOOKS[-1]), namespace)
    assert sys.path[0] == str(repo)
    assert cloud_sandbox == []  # nothing to install: every light dependency is there, torch untouched
    assert os.environ["SENET_PRETRAINED_DIR"] == str(repo / "pretrained")
    assert _snapshot(inputs) == before  # nothing written under the read-only input folder


def test_kaggle_offline_without_a_copy_says_what_to_do(cloud_sandbox, monkeypatch):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    with pytest.raises(RuntimeError, match="Internet on.*attach a dataset"):
        cloud.bootstrap("https://github.com/senet-tutorial/senet-tutorial")
    assert cloud_sandbox == []


@pytest.mark.parametrize("pinned", [False, True], ids=["the-notebooks-ref", "SENET_REF-and-a-fork"])
def test_colab_pip_installs_the_pinned_ref_without_deps_and_never_torch(
    cloud_sandbox, monkeypatch, tmp_path, pinned
):
    url, ref = _script().repo_url(), _script().BRANCH
    if pinned:
        url, ref = "https://github.com/a-fork/senet-tutorial", "v0.1.0"
        monkeypatch.setenv("SENET_REPO", url)
        monkeypatch.setenv("SENET_REF", ref)
    archive = io.BytesIO()
    source = _repo_copy(tmp_path / "src")
    with zipfile.ZipFile(archive, "w") as zf:
        for path in source.rglob("*"):
            if path.is_file():
                zf.write(path, f"senet-tutorial-{ref}/" + str(path.relative_to(source)))
    served = {cloud.archive_url(url, ref): archive.getvalue()}  # the ref's pretrained/ networks: data only
    asked: list[str] = []

    def urlopen(address, *_args, **_kwargs):
        asked.append(address)
        return io.BytesIO(served[address])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    real_distribution = importlib.metadata.distribution

    def distribution(name):
        if name == "torchinfo":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(_cell(NOTEBOOKS[2]), {})
    assert asked == list(served)
    pip = [call[call.index("install") + 1 :] for call in cloud_sandbox]
    assert pip == [["--quiet", "--no-deps", f"senet-lib @ git+{url}@{ref}"], ["--quiet", "torchinfo>=1.8"]]
    assert not any(arg.split(">")[0] in cloud.PLATFORM_PACKAGES for call in pip for arg in call)
    copy = tmp_path / "tmp" / "senet-tutorial-src" / "senet-tutorial"
    assert os.environ["SENET_PRETRAINED_DIR"] == str(copy / "pretrained")


def test_a_failed_pip_install_says_what_to_do(cloud_sandbox, monkeypatch):
    monkeypatch.setattr(subprocess, "call", lambda cmd, **kw: cloud_sandbox.append(list(cmd)) or 1)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    with pytest.raises(RuntimeError, match="pip could not install .*Internet on.*SENET_REF"):
        exec(_cell(), {})
    assert len(cloud_sandbox) == 1


def test_the_cells_ref_and_the_badges_follow_ref(tmp_path):
    script = _script()
    nb = script.updated(json.loads(NOTEBOOKS[0].read_text()), script.repo_url(), NOTEBOOKS[0].name, "v0.2.0")
    assert "/blob/v0.2.0/notebooks/" in "".join(nb["cells"][0]["source"])
    assert 'REF = os.environ.get("SENET_REF", "v0.2.0")' in "".join(nb["cells"][1]["source"])


def test_missing_requirements_never_lists_torch(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "senet-lib"\ndependencies = [\n    "torch>=2.4",\n    "torchvision>=0.19",\n'
        '    "numpy>=1.24",\n    "surely-not-installed-pkg>=1",\n]\n'
    )
    assert cloud.missing_requirements(tmp_path / "pyproject.toml") == ["surely-not-installed-pkg>=1"]
    with pytest.raises(ValueError, match="not a GitHub repository URL"):
        cloud.archive_url("https://example.org/repo")


def test_cloud_py_runs_before_anything_is_installed():
    """The cell runs senet_lib/cloud.py alone before the light dependencies are installed: standard library only."""
    import ast

    tree = ast.parse((ROOT / "senet_lib" / "cloud.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported


def test_readme_routes_name_only_what_exists():
    """Every make target, script, CLI command and document the README's routes name is there."""
    import re

    from senet_lib.cli.parser import build_parser

    readme = (ROOT / "README.md").read_text()
    routes = readme.split("## Quick start", 1)[1].split("## The notebooks", 1)[0]
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z]+):", makefile, re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z]+)", routes))
    assert {"tutorial", "test", "slides", "figures"} <= named <= targets
    for script in re.findall(r"scripts/[\w.]+\.py", readme):
        assert (ROOT / script).is_file(), script
    for doc in re.findall(r"\]\(((?:docs|data|figures)/[\w./]+)\)", readme):
        assert (ROOT / doc).exists(), doc
    assert (
        ROOT / "figures" / "captions.json"
    ).is_file() and "/kaggle/input/<notebook>/checkpoints/" in routes
    commands = {a for a in build_parser()._subparsers._group_actions[0].choices}
    for command in re.findall(r"python -m senet_lib (\w+)", readme):
        assert command in commands, command
    assert "<this repository's URL>" not in readme
