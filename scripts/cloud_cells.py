#!/usr/bin/env python
"""Put the "Open in Colab / Kaggle" badges and the cloud setup cell into every notebook, from pyproject.toml.

    python scripts/cloud_cells.py            # rewrite notebooks/*.ipynb (title cell's badges + first setup cell)
    python scripts/cloud_cells.py --check    # exit 1 and name the notebooks that are out of date

The repository URL comes from ``[project.urls] Repository`` in pyproject.toml, its one home; README's badges
are checked against the same value (tests/test_cloud.py). Only the title cell's badge line and the cell
tagged ``cloud-setup`` (inserted right after the title cell) are touched. The setup cell runs
``senet_lib/cloud.py`` on Colab and Kaggle and does nothing anywhere else.
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

if "google.colab" in sys.modules or os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
    import glob
    import pathlib
    import urllib.request

    REPO = "{url}"
    root = os.environ.get("SENET_KAGGLE_INPUT", "/kaggle/input")  # where Kaggle mounts attached datasets
    attached = [p for d in ("*", "*/*", "*/*/*") for p in glob.glob(f"{{root}}/{{d}}/senet_lib/cloud.py")]
    raw = REPO.replace("github.com", "raw.githubusercontent.com") + "/{branch}/senet_lib/cloud.py"
    code = pathlib.Path(attached[0]).read_text() if attached else urllib.request.urlopen(raw).read().decode()
    cloud = {{"__name__": "senet_cloud"}}
    exec(code, cloud)  # senet_lib/cloud.py: an attached copy of this repository, else pip install --no-deps
    cloud["bootstrap"](REPO)"""


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


def badges(url: str, notebook: str) -> str:
    """The markdown line of both badges for ``notebooks/<notebook>``."""
    blob = f"{url}/blob/{BRANCH}/notebooks/{notebook}"
    colab = blob.replace("https://github.com/", "https://colab.research.google.com/github/")
    return (
        f"{BADGE_START}({COLAB_BADGE})]({colab}) "
        f"[![Open in Kaggle]({KAGGLE_BADGE})](https://kaggle.com/kernels/welcome?src={blob})"
    )


def setup_cell(url: str) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": TAG,
        "metadata": {"tags": [TAG]},
        "outputs": [],
        "source": SETUP_CELL.format(url=url, branch=BRANCH).splitlines(keepends=True),
    }


def _lines(source: str | list[str]) -> list[str]:
    return ("".join(source) if isinstance(source, list) else source).split("\n")


def updated(nb: dict, url: str, name: str) -> dict:
    """``nb`` with the badges in its title cell and the setup cell right after it."""
    cells = [c for c in nb["cells"] if TAG not in c.get("metadata", {}).get("tags", [])]
    title = dict(cells[0])
    if title["cell_type"] != "markdown" or not "".join(title["source"]).startswith("# "):
        raise SystemExit(f"{name}: the first cell must be the markdown title cell ('# NN · Title').")
    lines = [line for line in _lines(title["source"]) if not line.startswith(BADGE_START)]
    if len(lines) > 1 and lines[1] == "" and len(lines) > 2 and lines[2] == "":
        del lines[1]  # the blank line left by a removed badge line
    lines[1:1] = ["", badges(url, name)]
    text = "\n".join(lines)
    title["source"] = text.splitlines(keepends=True)
    return {**nb, "cells": [title, setup_cell(url), *cells[1:]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that are out of date")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9][0-9]_*.ipynb")
    args = parser.parse_args(argv)
    url = repo_url()
    stale = []
    for path in args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        new = updated(nb, url, path.name)
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
