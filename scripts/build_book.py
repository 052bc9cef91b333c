#!/usr/bin/env python
"""Render executed notebooks into the static HTML book (Sphinx + MyST-NB; the configuration is book/conf.py).

    python scripts/build_book.py --notebooks build/tutorial/notebooks --out build/book [--results DIR]

``make book`` first runs every notebook headless (``make tutorial``: scripts/run_notebooks.py) and then this.
It executes nothing: it stages one source folder (``<out>-src/``) with book/index.md, a note on the run the
pages show (commit, data, and from ``--results``' runtime record the profile and device), the executed
notebooks, the documents under docs/ that they link to and MathJax with its font from book/node_modules
(``npm ci --prefix book``), so that the pages load nothing from outside. Sphinx turns every warning (a broken
cross-reference, a missing image) into an error. A notebook missing from ``--notebooks`` or saved without
outputs stops the build with one sentence that says what to run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
MATHJAX = BOOK / "node_modules"
#: What the pages load of the MathJax package (one combined component and the pieces it loads on demand) and of
#: its default font (the CHTML output's tables and woff2 files).
MATHJAX_FILES = (
    "tex-mml-chtml.js",
    "a11y",
    "adaptors",
    "input",
    "output",
    "sre",
    "ui",
    "LICENSE",
    "package.json",
)
FONT_FILES = ("chtml", "chtml.js", "package.json")
#: A markdown link or image: ``[text](target)`` / ``![alt](target)``.
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg"}

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_notebooks import data_labels  # noqa: E402  (scripts/ is not a package)


def source_notebooks() -> list[Path]:
    """The series' notebooks, as run_notebooks.py picks them."""
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def executed_copies(folder: Path) -> list[Path]:
    """The executed copy of every source notebook in ``folder``; one sentence and exit when one is missing or
    holds no outputs (a copy of the committed, stripped notebook)."""
    copies = []
    for source in source_notebooks():
        copy = folder / source.name
        if not copy.is_file():
            raise SystemExit(
                f"{copy} is missing: run the notebooks first (make tutorial, or make book which runs them)."
            )
        cells = json.loads(copy.read_text())["cells"]
        if not any(cell.get("outputs") for cell in cells if cell["cell_type"] == "code"):
            raise SystemExit(f"{copy} has no outputs: give --notebooks the folder of executed copies.")
        copies.append(copy)
    return copies


def markdown_cells(nb: dict) -> list[dict]:
    return [cell for cell in nb["cells"] if cell["cell_type"] == "markdown"]


def local_targets(text: str, folder: str) -> list[str]:
    """The repository paths (``docs/x.md``) that the relative links in ``text``, written in ``folder``, name."""
    found = []
    for _, target, _ in LINK.findall(text):
        if not re.match(r"[a-z][a-z0-9+.-]*:|#", target):
            found.append(os.path.normpath(os.path.join(folder, unquote(target.split("#")[0]))))
    return found


def linked_docs(notebooks: list[Path]) -> list[str]:
    """The docs/*.md files the notebooks link to, and those these link to in turn (``docs/NAME.md`` paths)."""
    texts = [
        ("notebooks", "".join(c["source"]))
        for p in notebooks
        for c in markdown_cells(json.loads(p.read_text()))
    ]
    docs: set[str] = set()
    while texts:
        folder, text = texts.pop()
        for path in local_targets(text, folder):
            if (
                path.startswith("docs/")
                and path.endswith(".md")
                and path not in docs
                and (ROOT / path).is_file()
            ):
                docs.add(path)
                texts.append(("docs", (ROOT / path).read_text()))
    return sorted(docs)


def relink(text: str, folder: str, pages: set[str], images: set[str], repository: str) -> str:
    """``text`` (written in repository folder ``folder``) with each relative link to a repository file that is
    not a page of the book pointed at the repository instead; images it shows are added to ``images`` (to be
    copied). Links to pages, and links to nothing, stay as written (Sphinx reports the latter)."""

    def fix(match: re.Match) -> str:
        opening, target, closing = match.groups()
        if re.match(r"[a-z][a-z0-9+.-]*:|#", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(folder, unquote(path)))
        full = ROOT / resolved
        if resolved.startswith("..") or resolved in pages or not full.exists():
            return match.group(0)
        if opening.startswith("!") and full.suffix.lower() in IMAGE_SUFFIXES:
            images.add(resolved)
            return match.group(0)
        kind = "tree" if full.is_dir() else "blob"
        return f"{opening}{repository}/{kind}/main/{resolved}{'#' + anchor if anchor else ''}{closing}"

    return LINK.sub(fix, text)


def repository_url() -> str:
    """The repository's URL from pyproject.toml (``[project.urls] Repository``)."""
    match = re.search(r'^Repository\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit("pyproject.toml names no [project.urls] Repository: the book links files there.")
    return match.group(1).rstrip("/")


def latest_record(results: Path | None) -> dict | None:
    """The newest runtime record run_notebooks.py wrote into ``results`` (profile, device, commit, data)."""
    records = (
        sorted(results.glob("notebook_runtimes_*.json"), key=lambda p: p.stat().st_mtime) if results else []
    )
    return json.loads(records[-1].read_text()) if records else None


def build_note(notebooks: list[Path], record: dict | None) -> str:
    """Markdown saying which run the pages show: from the runtime record when there is one, else from the
    notebooks themselves (their data labels) and the checkout's commit."""
    texts = {path.name: path.read_text() for path in notebooks}
    labels = list(dict.fromkeys(label for text in texts.values() for label in data_labels(text)))
    synthetic = [name for name, text in texts.items() if "USING SYNTHETIC DATA" in text]
    if record is not None:
        run = (
            f"with scripts/run_notebooks.py on {record['device_name']} ({record['device']}, "
            f"{record['cpu_count']} CPU cores, torch {record['torch']}), profile `{record['profile']}`, commit "
            f"`{record['commit']}`, {record['created']}; {record['total_seconds']:.0f} s in all"
        )
    else:
        sys.path.insert(0, str(ROOT))
        from senet_lib import env

        built = datetime.now(timezone.utc).isoformat(timespec="seconds")
        run = (
            f"before {built}, when the book was built at commit `{env.git_commit()}` (each notebook's setup "
            "cell prints the commit, device and profile it ran with)"
        )
    lines = [
        "```{admonition} The run these pages show",
        f"The notebooks were executed {run}.",
        f"Data: {', '.join(labels) if labels else 'none loaded'}.",
    ]
    if synthetic:
        lines.append(
            "No CIFAR-10 copy was found, so these notebooks ran on the synthetic coloured-shapes stand-in, "
            f"labelled *synthetic* in every figure: {', '.join(synthetic)}."
        )
    return "\n".join(lines + ["```", ""])


def fold_cloud_setup(nb: dict) -> dict:
    """Fold the Colab / Kaggle setup cell's code behind a toggle (MyST-NB's ``hide-input`` tag): it does nothing
    where the book's run happened, and the badges above it say where it matters."""
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "cloud-setup" in tags and "hide-input" not in tags:
            cell["metadata"]["tags"] = [*tags, "hide-input"]
    return nb


def copy_mathjax(static: Path, mathjax: Path) -> None:
    """MathJax 4 and its font into ``static`` (book/conf.py points the pages at them)."""
    package = mathjax / "mathjax" / "package.json"
    if not package.is_file():
        raise SystemExit(
            f"MathJax is not installed in {mathjax}: run 'npm ci --prefix book' (needs Node.js's npm)."
        )
    version = json.loads(package.read_text())["version"]
    if not version.startswith("4."):
        raise SystemExit(
            f"book/conf.py is written for MathJax 4, {mathjax} has {version}: run 'npm ci --prefix book'."
        )
    for target, source, names in [
        (static / "mathjax", mathjax / "mathjax", MATHJAX_FILES),
        (
            static / "mathjax-fonts" / "mathjax-newcm-font",
            mathjax / "@mathjax" / "mathjax-newcm-font",
            FONT_FILES,
        ),
    ]:
        target.mkdir(parents=True)
        for name in names:
            copy = shutil.copytree if (source / name).is_dir() else shutil.copy2
            copy(source / name, target / name)


def stage(pages: Path, notebooks: list[Path], docs: list[str], note: str, mathjax: Path) -> None:
    """The Sphinx source folder, laid out as the repository is (notebooks/, docs/, the images they show):
    index, build note, executed notebooks, linked documents, MathJax."""
    pages.mkdir(parents=True)
    shutil.copy2(BOOK / "index.md", pages / "index.md")
    (pages / "build_info.md").write_text(note)
    in_book = {f"notebooks/{path.name}" for path in notebooks} | set(docs)
    images: set[str] = set()
    repository = repository_url()
    (pages / "notebooks").mkdir()
    for path in notebooks:
        nb = fold_cloud_setup(json.loads(path.read_text()))
        for cell in markdown_cells(nb):
            cell["source"] = relink("".join(cell["source"]), "notebooks", in_book, images, repository)
        (pages / "notebooks" / path.name).write_text(json.dumps(nb))
    for name in docs:
        (pages / name).parent.mkdir(parents=True, exist_ok=True)
        (pages / name).write_text(relink((ROOT / name).read_text(), "docs", in_book, images, repository))
    for name in sorted(images):
        (pages / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, pages / name)
    copy_mathjax(pages / "_static", mathjax)


def clear(folder: Path, marker: str) -> None:
    """Remove ``folder`` if it is empty or one this script made before (it holds ``marker``); refuse otherwise."""
    if folder.exists():
        if any(folder.iterdir()) and not (folder / marker).exists():
            raise SystemExit(
                f"{folder} exists and is not a book built before: give another --out or remove it."
            )
        shutil.rmtree(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, required=True, help="the executed copies (make tutorial's)")
    parser.add_argument(
        "--out", type=Path, required=True, help="where the HTML goes (replaced if built before)"
    )
    parser.add_argument("--results", type=Path, help="the run's results folder, for its runtime record")
    parser.add_argument("--mathjax", type=Path, default=MATHJAX, help="node_modules holding mathjax 4")
    args = parser.parse_args(argv)

    from sphinx.cmd.build import build_main

    notebooks = executed_copies(args.notebooks)
    staging = args.out.with_name(args.out.name + "-src")
    clear(args.out, ".buildinfo")
    clear(staging, "pages")
    stage(
        staging / "pages",
        notebooks,
        linked_docs(notebooks),
        build_note(notebooks, latest_record(args.results)),
        args.mathjax,
    )
    pages, doctrees = str(staging / "pages"), str(staging / "doctrees")
    status = build_main(
        ["-b", "html", "-q", "-W", "--keep-going", "-c", str(BOOK), "-d", doctrees, pages, str(args.out)]
    )
    if status:
        print(f"the book did not build (Sphinx's warnings above are errors); sources staged in {staging}")
        return status
    print(f"Book: {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
