"""Getting senet_lib into a Colab or Kaggle kernel: what every notebook's first cell runs.

The cell (written by ``scripts/cloud_cells.py``) pins what it installs: ``REF``, a tag, branch or commit of
``REPO``, defaults to the ref the notebook's own badges open (the version it came from), and the
environment variables ``SENET_REF`` and ``SENET_REPO`` (a fork) override both. On Colab and Kaggle it

1. on Kaggle, puts an attached Kaggle dataset holding this repository (found under ``/kaggle/input``
   up to three folders deep) on ``sys.path``, read-only and offline;
2. otherwise runs ``pip install --no-deps "senet-lib @ git+REPO@REF"``, so the platform's torch and
   torchvision are never touched and no downloaded code is executed by hand;

then runs this file alone (``runpy``: importing the package needs its dependencies) and calls
:func:`bootstrap`, which installs only those light dependencies that are missing (never torch or torchvision)
and points ``SENET_PRETRAINED_DIR`` (unless set) at the ``pretrained/`` networks of the same ref: the attached
copy's, else those of the ref's archive (data files; nothing downloaded is run). Locally it does nothing.
Standard library only: it runs before its dependencies are installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

__all__ = [
    "PLATFORM_PACKAGES",
    "archive_url",
    "bootstrap",
    "cloud_platform",
    "find_attached_repo",
    "installed_requirements",
    "missing_requirements",
]

#: Installed by the platform and never (re)installed here: a pip resolve could replace its CUDA build.
PLATFORM_PACKAGES = ("torch", "torchvision")
#: Where Kaggle mounts attached datasets (``$SENET_KAGGLE_INPUT`` moves it, for tests and odd mounts).
KAGGLE_INPUT = "/kaggle/input"
#: The distribution name in this repository's pyproject.toml, used to recognise a copy of it.
DISTRIBUTION = "senet-lib"


def cloud_platform() -> str:
    """``"colab"``, ``"kaggle"`` or ``"local"`` (the same tests as :func:`senet_lib.env.detect_platform`)."""
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or Path("/kaggle/working").is_dir():
        return "kaggle"
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG"):
        return "colab"
    return "local"


def archive_url(repo_url: str, ref: str = "main") -> str:
    """The GitHub zip archive of ``ref`` (a branch or tag) of ``repo_url``."""
    if not re.match(r"^https://github\.com/[\w.-]+/[\w.-]+$", repo_url.rstrip("/")):
        raise ValueError(f"{repo_url!r} is not a GitHub repository URL (https://github.com/<owner>/<name>).")
    return f"{repo_url.rstrip('/')}/archive/{ref}.zip"


def _is_repo(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    if not (pyproject.is_file() and (folder / "senet_lib" / "__init__.py").is_file()):
        return False
    return re.search(rf'^name\s*=\s*"{DISTRIBUTION}"', pyproject.read_text(), re.MULTILINE) is not None


def find_attached_repo(input_root: Path | None = None, max_depth: int = 3) -> Path | None:
    """The first copy of this repository under ``input_root`` (an attached Kaggle dataset), or None."""
    input_root = input_root or Path(os.environ.get("SENET_KAGGLE_INPUT", KAGGLE_INPUT))
    if not input_root.is_dir():
        return None
    level = [input_root]
    for _depth in range(max_depth):
        level = sorted(p for folder in level for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
        for folder in level:
            if _is_repo(folder):
                return folder
    return None


def _requirements(pyproject: Path) -> list[str]:
    """The ``[project] dependencies`` of a pyproject.toml (tomllib where Python has it)."""
    text = pyproject.read_text()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the array of plain strings, read directly
        block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
        return re.findall(r'"([^"]+)"', block.group(1)) if block else []
    return list(tomllib.loads(text)["project"].get("dependencies", []))


def missing_requirements(pyproject: Path) -> list[str]:
    """The requirements of ``pyproject`` not installed at all, never torch or torchvision."""
    return _missing(_requirements(pyproject))


def _missing(requirements: list[str]) -> list[str]:
    missing = []
    for requirement in requirements:
        name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
        if name.lower() in PLATFORM_PACKAGES:
            continue
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
    return missing


def _pip(*args: str) -> None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *args])


def _download(repo_url: str, ref: str, work_dir: Path) -> Path:
    """Download and unpack the repository's archive into ``work_dir``; return the copy's folder."""
    work_dir.mkdir(parents=True, exist_ok=True)
    archive = work_dir / "senet-tutorial.zip"
    try:
        with (
            urllib.request.urlopen(archive_url(repo_url, ref), timeout=60) as response,
            archive.open("wb") as f,
        ):
            shutil.copyfileobj(response, f)
    except OSError as error:
        raise RuntimeError(
            f"Could not download {repo_url} ({error}). Turn on the notebook's internet access "
            "(Kaggle: Settings → Internet on), or on Kaggle attach a dataset holding a copy of this "
            "repository (Add Input), then run this cell again."
        ) from None
    target = work_dir / "senet-tutorial"
    shutil.rmtree(target, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(work_dir / "unpacked")
    (top,) = (work_dir / "unpacked").iterdir()  # GitHub archives hold one folder, <name>-<ref>/
    top.rename(target)
    shutil.rmtree(work_dir / "unpacked")
    archive.unlink()
    return target


def installed_requirements(distribution: str = DISTRIBUTION) -> list[str]:
    """The requirements of the installed ``distribution`` (no extras), from its metadata."""
    try:
        listed = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return [
        r.split(";", 1)[0].strip() for r in listed if "extra ==" not in r.replace('"', "").split(";", 1)[-1]
    ]


def bootstrap(
    repo_url: str,
    ref: str = "main",
    platform: str | None = None,
    input_root: Path | None = None,
    work_dir: Path | None = None,
) -> str:
    """After the cell put senet_lib on ``sys.path`` (an attached copy) or installed ``ref`` of ``repo_url``
    with ``pip --no-deps``: install the missing light dependencies and find the ``pretrained/`` networks of
    the same ref. Returns what was done, in words (also printed)."""
    platform = platform or cloud_platform()
    if platform == "local":
        return _say("local machine: nothing to do (install with `make install` or `pip install -e .`).")
    attached = find_attached_repo(input_root) if platform == "kaggle" else None
    if attached is not None:
        if str(attached) not in sys.path:
            sys.path.insert(0, str(attached))
        how = f"using the attached copy {attached} (offline; on sys.path)"
        missing = missing_requirements(attached / "pyproject.toml")
    elif importlib.util.find_spec("senet_lib") is None:
        raise RuntimeError(
            f"senet_lib is not installed: turn on the notebook's internet access (Kaggle: Settings → Internet "
            f"on) and run the setup cell, which installs {repo_url}@{ref}, or on Kaggle attach a dataset holding "
            "a copy of this repository (Add Input), then run it again."
        )
    else:
        how = f"installed {repo_url}@{ref} with pip --no-deps; torch and torchvision left as they are"
        missing = _missing(installed_requirements())
    if missing:
        if attached is not None and not _online():
            return _say(f"{how}. Offline and missing {', '.join(missing)}: turn on internet or attach them.")
        _pip(*missing)
        how += f"; installed {', '.join(missing)}"
    if "SENET_PRETRAINED_DIR" not in os.environ:
        pretrained = (
            attached / "pretrained" if attached is not None else _fetch_pretrained(repo_url, ref, work_dir)
        )
        if pretrained is not None and pretrained.is_dir():
            os.environ["SENET_PRETRAINED_DIR"] = str(pretrained)
            how += f"; pretrained networks from {pretrained}"
    importlib.invalidate_caches()
    return _say(f"{platform}: {how}.")


def _fetch_pretrained(repo_url: str, ref: str, work_dir: Path | None) -> Path | None:
    """The ``pretrained/`` folder of the archive of ``ref`` (data files, nothing of it is run), or None
    with a printed sentence where it cannot be downloaded (the notebooks then train their own)."""
    try:
        copy = _download(repo_url, ref, work_dir or Path(tempfile.gettempdir()) / "senet-tutorial-src")
    except RuntimeError as error:
        _say(f"no pretrained networks: {error}")
        return None
    return copy / "pretrained"


def _online(url: str = "https://pypi.org/simple/pip/") -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def _say(message: str) -> str:
    print(f"[senet setup] {message}")
    return message
