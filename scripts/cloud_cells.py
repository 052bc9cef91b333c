#!/usr/bin/env python
"""Put the "Open in Colab / Kaggle" badges and the cloud setup cell into every notebook, from pyproject.toml.

    python scripts/cloud_cells.py            # rewrite notebooks/*.ipynb (title cell's badges + first setup cell)
    python scripts/cloud_cells.py --check    # exit 1 and name the notebooks that are out of date

The repository URL comes from ``[project.urls] Repository`` in pyproject.toml, its one home; README's badges
are checked against the same value (tests/test_cloud.py). Only the title cell's badge line and the cell
tagged ``cloud-setup`` (inserted right after the title cell) are touched. On Colab and Kaggle the setup cell
installs ``REF`` of the repository with ``pip install --no-deps "senet-lib @ git+URL@REF"`` (or uses a copy
attached on Kaggle), then runs :func:`senet_lib.cloud.bootstrap`; it does nothing anywhere else. ``REF`` is the
ref the badges open (``--ref``, default ``main``; a release writes its tag), and ``SENET_REF`` / ``SENET_REPO``
override it and the repository (a fork) when the notebook runs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = "cloud-setup"
BADGE_START = "[![Open in Colab]"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
KAGGLE_BADGE = "https://kaggle.com/static/images/open-in-kaggle.svg"
BRANCH = "main"

SETUP_CELL = """\
# Colab / Kaggle only (nothing happens elsewhere): install senet_lib, leaving the platform's torch alone.
import os
import sys

# What is installed: REF (a tag, branch or commit; by default the one this notebook came from) of REPO (or a fork).
REPO = os.environ.get("SENET_REPO", "{url}")
REF = os.environ.get("SENET_REF", "{ref}")
if "google.colab" in sys.modules or os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
    import glob
    import importlib.util
    import runpy
    import subprocess

    root = os.environ.get("SENET_KAGGLE_INPUT", "/kaggle/input")  # where Kaggle mounts attached datasets
    attached = [p for d in ("*", "*/*", "*/*/*") for p in glob.glob(f"{{root}}/{{d}}/senet_lib/cloud.py")]
    if attached:  # a copy of this repository attached as a dataset: used read-only, offline
        sys.path.insert(0, os.path.dirname(os.path.dirname(attached[0])))
    elif importlib.util.find_spec("senet_lib") is None:  # --no-deps: torch, torchvision stay the platform's
        package = f"senet-lib @ git+{{REPO}}@{{REF}}"
        if subprocess.call([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", package]) != 0:
            raise RuntimeError(
                f"pip could not install {{REPO}}@{{REF}}: turn on internet (Kaggle: Settings → Internet on), "
                "check that SENET_REF names a tag, branch or commit of SENET_REPO, or on Kaggle attach a copy "
                "of this repository as a dataset (Add Input); then run this cell again."
            )
        importlib.invalidate_caches()
    # senet_lib/cloud.py of that copy alone (standard library only; `import senet_lib` needs what it installs):
    # the missing light dependencies, and the pretrained/ networks of the same REF
    cloud = os.path.join(os.path.dirname(importlib.util.find_spec("senet_lib").origin), "cloud.py")
    runpy.run_path(cloud, run_name="senet_cloud")["bootstrap"](REPO, REF)"""


def project_version(root: Path = ROOT) -> str:
    """``[project] version`` of pyproject.toml."""
    match = re.search(r'^version\s*=\s*"([^"]+)"', (root / "pyproject.toml").read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit("pyproject.toml has no [project] version.")
    return match.group(1)


def repo_url(root: Path = ROOT) -> str:
    """``[project.urls] Repository`` of pyproject.toml."""
    text = (root / "pyproject.toml").read_text()
    urls = text.split("[project.urls]", 1)[-1].split("\n[", 1)[0]
    match = re.search(r'^Repository\s*=\s*"([^"]+)"', urls, re.MULTILINE)
    if match is None:
        raise SystemExit('pyproject.toml has no [project.urls] Repository = "https://github.com/..." line.')
    return match.group(1).rstrip("/")


def badges(url: str, notebook: str, ref: str = BRANCH) -> str:
    """The markdown line of both badges for ``notebooks/<notebook>`` at ``ref``."""
    blob = f"{url}/blob/{ref}/notebooks/{notebook}"
    colab = blob.replace("https://github.com/", "https://colab.research.google.com/github/")
    return (
        f"{BADGE_START}({COLAB_BADGE})]({colab}) "
        f"[![Open in Kaggle]({KAGGLE_BADGE})](https://kaggle.com/kernels/welcome?src={blob})"
    )


def setup_cell(url: str, ref: str = BRANCH) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": TAG,
        "metadata": {"tags": [TAG]},
        "outputs": [],
        "source": SETUP_CELL.format(url=url, ref=ref).splitlines(keepends=True),
    }


def _lines(source: str | list[str]) -> list[str]:
    return ("".join(source) if isinstance(source, list) else source).split("\n")


def updated(nb: dict, url: str, name: str, ref: str = BRANCH) -> dict:
    """``nb`` with the badges in its title cell and the setup cell right after it, both for ``ref``."""
    cells = [c for c in nb["cells"] if TAG not in c.get("metadata", {}).get("tags", [])]
    title = dict(cells[0])
    if title["cell_type"] != "markdown" or not "".join(title["source"]).startswith("# "):
        raise SystemExit(f"{name}: the first cell must be the markdown title cell ('# NN · Title').")
    lines = [line for line in _lines(title["source"]) if not line.startswith(BADGE_START)]
    if len(lines) > 1 and lines[1] == "" and len(lines) > 2 and lines[2] == "":
        del lines[1]  # the blank line left by a removed badge line
    lines[1:1] = ["", badges(url, name, ref)]
    text = "\n".join(lines)
    title["source"] = text.splitlines(keepends=True)
    return {**nb, "cells": [title, setup_cell(url, ref), *cells[1:]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that are out of date")
    parser.add_argument(
        "--ref",
        default=BRANCH,
        help=f"the tag or branch the badges open and the setup cell installs (default {BRANCH}; a release: its tag)",
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9][0-9]_*.ipynb")
    args = parser.parse_args(argv)
    url = repo_url()
    stale = []
    for path in args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        new = updated(nb, url, path.name, args.ref)
        if new == nb:
            continue
        stale.append(path.name)
        if not args.check:
            path.write_text(json.dumps(new, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.check and stale:
        print("out of date (run python scripts/cloud_cells.py): " + ", ".join(stale))
        return 1
    print(("updated: " + ", ".join(stale)) if stale else "all notebooks up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
