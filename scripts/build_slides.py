#!/usr/bin/env python
"""The teacher kit, built offline: a slide deck of the committed figures and a one-page handout.

    python scripts/build_slides.py [--out build/slides]      # what `make slides` runs

Writes, with nothing fetched from the internet:

* ``slides.html``: one self-contained file (images embedded, no external script or style): a title slide,
  one slide per committed figure in ``figures/`` with its one-line caption (``figures/captions.json``) and
  its provenance (from the figure's ``.json``: what made it, on which data, at which commit), and a last
  slide with the paper's key numbers. Arrow keys or Page Down move between slides; print it for paper.
* ``slides.pdf``: the same slides as PDF pages (matplotlib's PdfPages), for a projector without a browser.
* ``handout.pdf``: one A4 page of the paper's key numbers, the tables of ``docs/paper_at_a_glance.md``.
"""

from __future__ import annotations

import argparse
import base64
import collections
import fnmatch
import html
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"
CAPTIONS = FIGURES / "captions.json"
GLANCE = ROOT / "docs" / "paper_at_a_glance.md"
#: The sections of docs/paper_at_a_glance.md whose first table goes into the handout (heading prefixes).
HANDOUT_SECTIONS = ("The block", "Parameters and cost", "Headline ImageNet", "CIFAR", "Ablations")
TITLE = "Squeeze-and-Excitation Networks"
SUBTITLE = "Hu, Shen, Albanie, Sun, Wu, arXiv 1709.01507 (v4, TPAMI 2019)"


# --------------------------------------------------------------------------- inputs
def figures() -> list[dict]:
    """Every committed figure (``figures/<stem>.png`` + ``.json``) with its caption and provenance line.

    A caption is looked up by the figure's stem, else by the first matching pattern (``results_curves_*``);
    ``{field}`` in it is filled from the figure's provenance record.
    """
    captions = json.loads(CAPTIONS.read_text(encoding="utf-8"))
    out = []
    for png in sorted(FIGURES.glob("*.png")):
        meta = png.with_suffix(".json")
        if not meta.is_file():
            continue
        record = json.loads(meta.read_text(encoding="utf-8"))
        pattern = next((p for p in captions if fnmatch.fnmatchcase(png.stem, p)), None)
        if pattern is None:
            raise SystemExit(f"figures/{png.stem}.png has no caption: add one line to figures/captions.json.")
        caption = captions[pattern].format_map(collections.defaultdict(lambda: "?", record))
        out.append({"stem": png.stem, "png": png, "caption": caption, "provenance": provenance(record)})
    return out


def provenance(record: dict) -> str:
    """One line from a figure's provenance record: maker, model, data, paper reference, commit and date."""
    parts = []
    maker = record.get("notebook") or re.match(r"\d\d(?=_)", str(record.get("figure", "")))
    if maker and not record.get("built_by"):
        parts.append(f"notebook {maker if isinstance(maker, str) else maker.group()}")
    if record.get("built_by"):
        parts.append(str(record["built_by"]))
    if record.get("model"):
        parts.append(
            str(record["model"]) + (f" ({record['checkpoint']})" if record.get("checkpoint") else "")
        )
    if record.get("dataset"):
        data = str(record["dataset"]) + (", SYNTHETIC" if record.get("synthetic") else "")
        if record.get("images_per_class"):
            data += f", {record['images_per_class']} {record.get('split', '')} images per class".replace(
                "  ", " "
            )
        parts.append(data)
    if record.get("paper"):
        parts.append(f"paper: {record['paper']}")
    parts.append(f"commit {str(record.get('commit', 'unknown'))[:12]}, {str(record.get('created', ''))[:10]}")
    return " · ".join(parts)


def _plain(cell: str) -> str:
    cell = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", cell)
    return re.sub(r"\*\*|(?<!\w)\*(?!\s)|(?<!\s)\*(?!\w)|`", "", cell).strip()


def handout_tables(text: str | None = None) -> list[tuple[str, list[list[str]]]]:
    """``(heading, rows)`` of the first table of each :data:`HANDOUT_SECTIONS` section; rows[0] is the header."""
    text = text if text is not None else GLANCE.read_text(encoding="utf-8")
    tables = []
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        heading, _, body = section.partition("\n")
        if not heading.startswith(HANDOUT_SECTIONS):
            continue
        lines = [line for line in body.splitlines() if line.startswith("|")]
        rows = [[_plain(c) for c in line.strip().strip("|").split("|")] for line in lines]
        rows = [r for r in rows if not all(re.fullmatch(r":?-+:?", c) for c in r)]
        if rows:
            tables.append((_plain(heading), rows))
    missing = [s for s in HANDOUT_SECTIONS if not any(h.startswith(s) for h, _ in tables)]
    if missing:
        raise SystemExit(f"docs/paper_at_a_glance.md lost the table(s) of: {', '.join(missing)}.")
    return tables


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --------------------------------------------------------------------------- handout (one A4 page)
def text_table(rows: list[list[str]], max_chars: int) -> list[str]:
    """Rows as aligned monospace lines no wider than ``max_chars``, wrapping the widest columns."""
    ncols = max(len(r) for r in rows)
    rows = [r + [""] * (ncols - len(r)) for r in rows]
    widths = [max(len(r[c]) for r in rows) for c in range(ncols)]
    while sum(widths) + 3 * (ncols - 1) > max_chars:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    lines = []
    for index, row in enumerate(rows):
        wrapped = [
            textwrap.wrap(cell, w, break_on_hyphens=False) or [""]
            for cell, w in zip(row, widths, strict=True)
        ]
        for k in range(max(len(w) for w in wrapped)):
            parts = [
                (w[k] if k < len(w) else "").ljust(width) for w, width in zip(wrapped, widths, strict=True)
            ]
            lines.append(" │ ".join(parts).rstrip())
        if index == 0:
            lines.append("─┼─".join("─" * w for w in widths))
    return lines


def handout_lines(max_chars: int) -> list[tuple[str, str]]:
    """``(style, text)`` lines of the handout: title, note, then each section's heading and table."""
    lines = [
        ("title", f"{TITLE}: the paper's key numbers"),
        ("note", SUBTITLE),
        ("note", "Every number here is the paper's (v4), not this repository's; ImageNet unless marked."),
        ("note", f"From docs/paper_at_a_glance.md (commit {_commit()}), where each entry's recipe is named."),
    ]
    for heading, rows in handout_tables():
        lines += [("blank", ""), ("heading", heading)]
        lines += [("table", line) for line in text_table(rows, max_chars)]
    return lines


def draw_handout(path: Path) -> int:
    """Write the one-page handout PDF; return its number of lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width_in, height_in, margin_in = 8.27, 11.69, 0.45
    for size in (7.0, 6.5, 6.0, 5.5, 5.0):
        max_chars = int((width_in - 2 * margin_in) * 72 / (0.602 * size))
        lines = handout_lines(max_chars)
        step = size * 1.32 / 72 / height_in
        if len(lines) * step <= 1 - 2 * margin_in / height_in - 2 * step:
            break
    else:
        raise SystemExit("The handout does not fit on one page: shorten HANDOUT_SECTIONS.")
    fig = plt.figure(figsize=(width_in, height_in))
    y = 1 - margin_in / height_in
    styles = {
        "title": {"size": size * 1.8, "weight": "bold"},
        "heading": {"size": size * 1.25, "weight": "bold"},
        "note": {"size": size * 1.05, "style": "italic"},
        "table": {"size": size, "family": "DejaVu Sans Mono"},
        "blank": {"size": size},
    }
    for style, text in lines:
        y -= step * (1.9 if style == "title" else 1.0)
        fig.text(margin_in / width_in, y, text, va="baseline", **styles[style])
    fig.savefig(path, metadata={"Creator": "senet-tutorial scripts/build_slides.py"})
    plt.close(fig)
    return len(lines)


# --------------------------------------------------------------------------- slides
def slides_pdf(items: list[dict], path: Path) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path, metadata={"Title": TITLE, "Creator": "scripts/build_slides.py"}) as pdf:
        fig = plt.figure(figsize=(13.33, 7.5))
        fig.text(0.5, 0.6, TITLE, ha="center", size=34, weight="bold")
        fig.text(0.5, 0.5, SUBTITLE, ha="center", size=16)
        fig.text(0.5, 0.38, f"figures of the notebook series, commit {_commit()}", ha="center", size=13)
        pdf.savefig(fig)
        plt.close(fig)
        for item in items:
            fig = plt.figure(figsize=(13.33, 7.5))
            ax = fig.add_axes((0.03, 0.15, 0.94, 0.82))
            ax.imshow(mpimg.imread(item["png"]))
            ax.set_axis_off()
            fig.text(0.5, 0.09, textwrap.fill(item["caption"], 130), ha="center", va="center", size=15)
            fig.text(
                0.5,
                0.03,
                textwrap.fill(item["provenance"], 190),
                ha="center",
                va="center",
                size=8.5,
                color="0.35",
            )
            pdf.savefig(fig)
            plt.close(fig)
    return len(items) + 1


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


STYLE = """
html{scroll-snap-type:y mandatory}body{margin:0;font-family:system-ui,sans-serif;background:#fff}
section{height:100vh;scroll-snap-align:start;display:flex;flex-direction:column;align-items:center;
justify-content:center;box-sizing:border-box;padding:2vh 3vw;page-break-after:always}
section img{max-width:94vw;max-height:76vh;object-fit:contain}
.caption{font-size:2.6vh;margin:1vh 0 0;text-align:center}.prov{font-size:1.4vh;color:#666;text-align:center}
h1{font-size:6vh;margin:0}h2{font-size:3vh;margin:1.2vh 0 .4vh}.numbers{justify-content:flex-start;overflow:auto}
table{border-collapse:collapse;font-size:1.45vh}td,th{border-bottom:1px solid #ddd;padding:.2vh .6vw;text-align:left}
"""
SCRIPT = """document.addEventListener('keydown',e=>{const d={ArrowRight:1,ArrowDown:1,ArrowLeft:-1,ArrowUp:-1}[e.key];
if(!d)return;e.preventDefault();window.scrollBy({top:d*window.innerHeight,behavior:'smooth'});});"""


def slides_html(items: list[dict], path: Path) -> int:
    sections = [
        f"<section><h1>{html.escape(TITLE)}</h1><p>{html.escape(SUBTITLE)}</p>"
        f"<p class='prov'>figures of the notebook series, commit {_commit()}; arrow keys move between slides</p></section>"
    ]
    for item in items:
        data = base64.b64encode(item["png"].read_bytes()).decode()
        sections.append(
            f"<section id='{item['stem']}'><img alt='{html.escape(item['caption'])}' src='data:image/png;base64,{data}'>"
            f"<p class='caption'>{html.escape(item['caption'])}</p><p class='prov'>{html.escape(item['provenance'])}</p></section>"
        )
    tables = "".join(f"<h2>{html.escape(h)}</h2>{_html_table(rows)}" for h, rows in handout_tables())
    sections.append(
        "<section class='numbers'><h2>The paper's key numbers (v4; the paper's, not this repository's)</h2>"
        f"{tables}</section>"
    )
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(TITLE)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(sections)}<script>{SCRIPT}</script></body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return len(sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "slides", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    items = figures()
    n_html = slides_html(items, args.out / "slides.html")
    n_pdf = slides_pdf(items, args.out / "slides.pdf")
    n_lines = draw_handout(args.out / "handout.pdf")
    print(f"{args.out / 'slides.html'}: {n_html} slides (self-contained, offline)")
    print(f"{args.out / 'slides.pdf'}: {n_pdf} pages")
    print(f"{args.out / 'handout.pdf'}: 1 page, {n_lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
