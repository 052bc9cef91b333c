#!/usr/bin/env python
"""The teacher kit, built offline: a deck that tells the paper's story, and a one-page handout.

    python scripts/build_slides.py [--out build/slides]      # what `make slides` runs

Writes, with nothing fetched from the internet:

* ``slides.md``: the deck's source for Marp (https://marp.app), written from the committed figures, their
  captions and provenance, the run records in ``results/`` and the paper's numbers in
  ``docs/paper_at_a_glance.md``. Edit the slide list in :func:`deck` rather than the file.
* ``slides.html``: one self-contained file (images embedded; arrow keys move, ``p`` opens presenter view);
* ``slides.pdf``: the same slides as 16:9 pages of 960 x 540 pt (13.33 x 7.5 in, PowerPoint's widescreen
  size; 2 pixels per point when shown at 1920 x 1080). Every text, figures' included, is at least 14 pt on
  that page (:data:`MIN_PT`), which the build checks for the figures and ``tests/test_slides.py`` for all;
* ``layout.json``: which image is on which slide, its crop of the source figure and its smallest text;
* ``handout.pdf``: one A4 page of the paper's key numbers, the tables of ``docs/paper_at_a_glance.md``.

The story follows the paper: the idea, the SE block, where it goes, what it costs, training, what the gates
do, ablations. Marp CLI comes from ``slides/package.json`` (``npm ci --prefix slides``) and renders the PDF
with a Chromium on the PATH (``CHROME_PATH`` to name another).
"""

from __future__ import annotations

import argparse
import base64
import collections
import fnmatch
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"
RESULTS = ROOT / "results"
PRETRAINED = ROOT / "pretrained"
CAPTIONS = FIGURES / "captions.json"
GLANCE = ROOT / "docs" / "paper_at_a_glance.md"
MARP = ROOT / "slides" / "node_modules" / ".bin" / "marp"
#: The sections of docs/paper_at_a_glance.md whose first table goes into the handout (heading prefixes).
HANDOUT_SECTIONS = ("The block", "Parameters and cost", "Headline ImageNet", "CIFAR", "Ablations")
TITLE = "Squeeze-and-Excitation Networks"
SUBTITLE = "Hu, Shen, Albanie, Sun, Wu, arXiv 1709.01507 (v4, TPAMI 2019)"
#: The deck's parts, in the paper's order; each opens with a section slide "<n> · <name>".
PARTS = (
    "The idea",
    "The SE block",
    "Where it goes",
    "What it costs",
    "Training",
    "What the gates do",
    "Ablations",
)
#: Slide size in CSS pixels (Marp's 16:9) and in PDF points: 1 px = 0.75 pt.
SLIDE_PX = (1280, 720)
PT_PER_PX = 0.75
#: The smallest text allowed on a slide, in points on the 960 x 540 pt page (28 px at 1920 x 1080).
MIN_PT = 14.0
#: Image boxes (px): "wide" spans the slide under the title; "side" leaves a text column on the right.
BOXES = {"wide": (1200, 486), "side": (830, 560), "pair": (590, 470)}


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


# --------------------------------------------------------------------------- figure text and pictures
_CM_BT = re.compile(
    rb"(-?[\d.]+) (-?[\d.]+) (-?[\d.]+) (-?[\d.]+) (-?[\d.]+) (-?[\d.]+) cm\s*BT(.*?)ET", re.S
)
_TF = re.compile(rb"/\S+ (-?[\d.]+) Tf")


def figure_text(pdf: Path) -> tuple[float, float, list[tuple[float, float, float]]]:
    """``(width, height, texts)`` of a matplotlib PDF: each text's anchor (pt, origin top left) and size (pt).

    A text's size is its first font size: sub- and superscripts of mathtext (70 % of it) are not counted.
    """
    data = pdf.read_bytes()
    box = re.search(rb"/MediaBox \[ *(-?[\d.]+) (-?[\d.]+) (-?[\d.]+) (-?[\d.]+)", data)
    width, height = float(box.group(3)), float(box.group(4))
    texts = []
    for stream in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            content = zlib.decompress(stream.group(1))
        except zlib.error:
            continue
        for match in _CM_BT.finditer(content):
            a, b, _c, _d, e, f = (float(v) for v in match.groups()[:6])
            size = _TF.search(match.group(7))
            if size:
                texts.append((e, height - f, float(size.group(1)) * (a * a + b * b) ** 0.5))
    return width, height, texts


@dataclass
class Picture:
    """An image on a slide: a committed figure (or one drawn here), cropped, fitted into a box of pixels."""

    name: str
    png: Path
    pdf: Path
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # fractions, origin top left
    box: tuple[int, int] = BOXES["wide"]
    # filled by place():
    size_px: tuple[int, int] = (0, 0)
    min_pt: float = 0.0
    data: bytes = b""

    def place(self) -> None:
        from PIL import Image

        width, height, texts = figure_text(self.pdf)
        x0, y0, x1, y1 = self.crop
        crop_pt = ((x1 - x0) * width, (y1 - y0) * height)
        scale = min(self.box[0] * PT_PER_PX / crop_pt[0], self.box[1] * PT_PER_PX / crop_pt[1])
        inside = [s for x, y, s in texts if x0 * width <= x <= x1 * width and y0 * height <= y <= y1 * height]
        self.size_px = (round(crop_pt[0] * scale / PT_PER_PX), round(crop_pt[1] * scale / PT_PER_PX))
        self.min_pt = min(inside) * scale if inside else float("inf")
        if self.min_pt < MIN_PT:
            raise SystemExit(
                f"{self.name}: its smallest text would be {self.min_pt:.1f} pt on the slide (at least {MIN_PT}): "
                "crop it to fewer panels or give it a larger box."
            )
        image = Image.open(self.png)
        w, h = image.size
        image = image.crop((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h))).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        self.data = buffer.getvalue()

    def html(self) -> str:
        data = base64.b64encode(self.data).decode()
        w, h = self.size_px
        return f"<img class='pic' alt='{html.escape(self.name)}' style='width:{w}px;height:{h}px' src='data:image/png;base64,{data}'>"


def committed(
    stem: str, crop=(0.0, 0.0, 1.0, 1.0), box: str | tuple[int, int] = "wide", name: str = ""
) -> Picture:
    box = BOXES[box] if isinstance(box, str) else box
    return Picture(name or stem, FIGURES / f"{stem}.png", FIGURES / f"{stem}.pdf", crop, box)


def drawn(fig, name: str, folder: Path, box: str | tuple[int, int] = "wide") -> Picture:
    """A figure drawn for the deck (scripts/slide_diagrams.py), saved as PNG and PDF into ``folder``."""
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    fig.savefig(png, dpi=150)
    fig.savefig(pdf)
    plt.close(fig)
    return Picture(name, png, pdf, box=BOXES[box] if isinstance(box, str) else box)


# --------------------------------------------------------------------------- the numbers behind slides
def glance_rows(heading: str) -> list[list[str]]:
    """The first table of the docs/paper_at_a_glance.md section whose heading starts with ``heading``."""
    for head, rows in handout_tables():
        if head.startswith(heading):
            return rows
    raise SystemExit(f"docs/paper_at_a_glance.md lost its section '{heading}'.")


def glance_row(heading: str, first_cell: str) -> list[str]:
    rows = glance_rows(heading)
    for row in rows:
        if row[0].startswith(first_cell):
            return row
    raise SystemExit(f"docs/paper_at_a_glance.md, '{heading}': no row '{first_cell}'.")


def table14() -> dict[str, str]:
    """The paper's Table 14 (v4) errors per placement, with the §6 baseline, as 'top-1 / top-5'."""
    cell = glance_row("Ablations", "Table 14")[2]
    names = {"standard": "standard", "SE-PRE": "pre", "SE-POST": "post", "SE-Identity": "identity"}
    notes = {names[n]: f"{a} / {b}" for n, a, b in re.findall(r"(SE-\w+|standard) ([\d.]+) / ([\d.]+)", cell)}
    baseline = re.search(r"plain ResNet-50 reaches ([\d.]+) / ([\d.]+)", GLANCE.read_text(encoding="utf-8"))
    if baseline is None or len(notes) != 4:
        raise SystemExit("docs/paper_at_a_glance.md: Table 14 or the §6 baseline is not where it was.")
    notes["plain"] = f"{baseline.group(1)} / {baseline.group(2)}"
    return notes


def shipped_pair() -> dict:
    """The longest-trained ResNet-20 / SE-ResNet-20 pair in pretrained/, its run records and curves figure."""
    sidecars = {}
    for path in sorted(PRETRAINED.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        name = record.get("arch_config", {}).get("name")
        if name in ("resnet20", "se_resnet20"):
            sidecars.setdefault(record["recipe"]["epochs"], {})[name] = (path, record)
    epochs = max(e for e, pair in sidecars.items() if len(pair) == 2)
    pair = sidecars[epochs]
    records = {}
    for name, (_path, sidecar) in pair.items():
        for path in sorted(RESULTS.glob(f"train_{name}_cifar10_seed{sidecar['recipe']['seed']}_*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("epochs") == epochs and record.get("commit") == sidecar.get("commit"):
                records[name] = (path.name, record)
    if set(records) != {"resnet20", "se_resnet20"}:
        raise SystemExit(f"results/ lacks the run records of the shipped {epochs}-epoch pair.")
    for meta in sorted(FIGURES.glob("results_curves_*.json")):
        provenance_record = json.loads(meta.read_text(encoding="utf-8"))
        if {n for n, _r in records.values()} == set(provenance_record.get("records", [])):
            return {
                "epochs": epochs,
                "records": records,
                "figure": meta.stem,
                "provenance": provenance_record,
            }
    raise SystemExit("figures/ has no results_curves_* figure of exactly the shipped pair's two records.")


def ablation_records() -> list[str]:
    return sorted(p.name for p in RESULTS.glob("ablation_*.json"))


# --------------------------------------------------------------------------- the deck
@dataclass
class Slide:
    title: str
    kind: str = "content"  # title | part | content
    pictures: list[Picture] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # paragraphs (HTML-escaped when written)
    source: str = ""
    tables: list[tuple[str, list[list[str]]]] = field(default_factory=list)
    layout: str = "wide"  # wide (text under the pictures) | side (text right of them)


def _caption(stem: str) -> tuple[str, str]:
    item = next(i for i in figures() if i["stem"] == stem)
    return item["caption"], item["provenance"]


def deck(work: Path) -> list[Slide]:
    """The slides, in the paper's order."""
    from slide_diagrams import draw_module_row, draw_placements

    slides = [
        Slide(
            TITLE,
            "title",
            text=[SUBTITLE, f"A class deck from the tutorial's figures and records, commit {_commit()}"],
        )
    ]

    def part(n: int) -> None:
        slides.append(Slide(f"{n + 1} · {PARTS[n]}", "part"))

    def fig(title, picture, stem=None, extra=(), layout="wide", caption=True):
        cap, prov = _caption(stem or picture.name)
        slides.append(
            Slide(
                title,
                pictures=[picture],
                text=([cap] if caption else []) + list(extra),
                source=prov,
                layout=layout,
            )
        )

    part(0)
    fig("Squeeze, excite, scale", committed("00_se_block", (0.0, 0.08, 0.895, 1.0)))
    fig(
        "Why squeeze: a convolution sees a small window",
        committed("01_receptive_field", box="side"),
        layout="side",
    )

    part(1)
    block = glance_rows("The block")
    slides.append(
        Slide(
            "The block in three equations",
            tables=[
                (
                    "The paper (v4), §3",
                    [block[0]]
                    + [
                        r
                        for r in block[1:]
                        if r[0] in ("squeeze", "excitation", "scale", "default reduction ratio")
                    ],
                )
            ],
            source="docs/paper_at_a_glance.md, from the paper (v4)",
        )
    )
    fig("The gate: sigmoid, not ReLU", committed("02_gates", (0.0, 0.015, 1.0, 0.985)))
    fig(
        "How narrow the bottleneck: the reduction ratio r",
        committed("02_reduction_tradeoff", box="side"),
        layout="side",
    )

    part(2)
    slides.append(
        Slide(
            "SE-Inception (paper Fig. 2)",
            pictures=[drawn(draw_module_row("Inception"), "slide_se_inception", work)],
            text=[
                _caption("03_se_inception")[0],
                "Redrawn left to right for the slide (notebook 03 draws it top to bottom).",
            ],
            source="scripts/slide_diagrams.py after paper Fig. 2 (v4); schematic, no numbers",
        )
    )
    slides.append(
        Slide(
            "The SE-ResNet module (paper Fig. 3)",
            pictures=[drawn(draw_module_row("Residual", residual=True), "slide_se_resnet_module", work)],
            text=[_caption("03_se_resnet_module")[0]],
            source="scripts/slide_diagrams.py after paper Fig. 3 (v4); schematic, no numbers",
        )
    )
    slides.append(
        Slide(
            "Where in the unit? (paper Fig. 5, Table 14)",
            pictures=[drawn(draw_placements(table14()), "slide_se_placements", work, box=(1200, 500))],
            text=[
                "Right: ImageNet top-1 / top-5 error (%) of SE-ResNet-50, the paper's Table 14 (v4, §6 ablation recipe); no SE: the §6 baseline."
            ],
            source="docs/paper_at_a_glance.md (paper v4, Table 14 and §6); diagram: scripts/slide_diagrams.py",
        )
    )

    part(3)
    cap, prov = _caption("04_cost_per_stage")
    for half, crop in (
        ("parameters", (0.0, 0.0, 0.492, 1.0)),
        ("multiply-accumulates", (0.492, 0.0, 1.0, 1.0)),
    ):
        slides.append(
            Slide(
                f"What SE costs per stage: {half}",
                pictures=[committed("04_cost_per_stage", crop, "side", f"04_cost_{half[:6]}")],
                text=[cap],
                source=prov,
                layout="side",
            )
        )
    cost = glance_rows("Parameters and cost")
    keep = ("parameters as printed", '"GFLOPs"', "one forward", "CPU inference")
    slides.append(
        Slide(
            "Cost and accuracy, the paper's numbers",
            tables=[
                (
                    "ResNet-50 against SE-ResNet-50 (paper v4, §4)",
                    [[cost[0][0], cost[0][2], cost[0][3]]]
                    + [
                        [r[0] + f" ({r[1]})", r[2], r[3]]
                        for r in cost[1:]
                        if r[0].startswith(keep) and "r = 16" not in r[0]
                    ],
                ),
                (
                    "ImageNet top-1 / top-5 error in %, paper v4 Table 2 (main recipe)",
                    glance_rows("Headline ImageNet"),
                ),
            ],
            source="docs/paper_at_a_glance.md: the paper's numbers (v4), not this repository's",
        )
    )

    part(4)
    pair = shipped_pair()
    acc = {name: record["final_test_acc"] for name, (_f, record) in pair["records"].items()}
    prov = pair["provenance"]
    slides.append(
        Slide(
            "Training on CIFAR-10: ResNet-20 against SE-ResNet-20",
            pictures=[
                committed(pair["figure"], (0.0, 0.13, 0.405, 1.0), (600, 470), "curves_accuracy"),
                committed(pair["figure"], (0.835, 0.17, 1.0, 0.75), (240, 470), "curves_legend"),
            ],
            text=[
                f"The shipped pair (pretrained/): {prov['recipe']}; {prov['dataset']}.",
                f"Final test accuracy: ResNet-20 {100 * acc['resnet20']:.2f} %, SE-ResNet-20 {100 * acc['se_resnet20']:.2f} % "
                f"({100 * (acc['se_resnet20'] - acc['resnet20']):+.2f} points), one seed each.",
            ],
            source=f"results/{pair['records']['resnet20'][0]}, results/{pair['records']['se_resnet20'][0]}; figures/{pair['figure']}.json",
            layout="side",
        )
    )

    part(5)
    cap, prov = _caption("06_fig6_class_excitations")
    slides.append(
        Slide(
            "Per-class excitations, early and late (paper Fig. 6)",
            pictures=[
                committed("06_fig6_class_excitations", (0.0, 0.095, 0.338, 0.535), "pair", "fig6_SE_2_3"),
                committed("06_fig6_class_excitations", (0.0, 0.535, 0.338, 1.0), "pair", "fig6_SE_4_2"),
            ],
            text=[cap, "Left: SE_2_3 (stage 2), right: SE_4_2 (stage 4); one line per class."],
            source=prov,
        )
    )
    fig(
        "Do the gates tell the classes apart?",
        committed("06_class_separation_by_depth", (0.1, 0.112, 0.9, 0.89)),
        extra=[
            "Blue: the trained network with 95 % bootstrap intervals; green: the same network untrained; dotted: the 95th percentile with shuffled labels."
        ],
    )
    fig("Saturated gates", committed("06_gate_saturation"))
    fig("Switching channels off", committed("06_channel_knockout"))

    part(6)
    records = ablation_records()
    if records:
        from senet_lib.train import grid_verdicts, largest_recipe, recorded_ablations

        runs = largest_recipe(recorded_ablations(RESULTS))
        first = runs.iloc[0]
        lines = [
            f"SE-ResNet-20 on {first['dataset']}, {first['epochs']} epochs on {first['train_size']:,} images, seeds "
            f"{', '.join(str(s) for s in sorted(set(runs['seed'])))}: differences from standard SE beyond the seed "
            "noise (points):"
        ]
        for v in grid_verdicts(runs):
            beyond = ", ".join(f"{name} {diff:+.1f}" for name, diff in v["beyond"]) or "nothing"
            lines.append(f"{v['table']} ({v['ablation']}): {beyond}")
        lines.append(
            "A short schedule: it cannot rank differences of tenths of a point (notebook 07, section 5)."
        )
        slides.append(
            Slide(
                "The ablation grids, trained (notebook 07)",
                text=lines,
                source=f"results/ablation_*.json ({len(records)} records, scripts/ablation_grid_cpu.sh)",
            )
        )
    else:
        slides.append(
            Slide(
                "The ablation grids: not trained yet",
                text=[
                    "Notebook 07 repeats the paper's ablations (reduction ratio, squeeze, gate, stages, placement) on CIFAR. "
                    "No ablation record is in results/ yet, so this deck shows no result of ours.",
                    "To train a grid: python -m senet_lib ablate --help (records go to results/ablation_*.json).",
                    "The paper's own ablation numbers (v4, Tables 10–16) are on the handout.",
                ],
                source="results/ holds no ablation_*.json",
            )
        )
    return slides


CSS = """
section { font-family: 'DejaVu Sans', sans-serif; font-size: 24px; color: #111; background: #fff;
  padding: 20px 40px 40px 40px; justify-content: flex-start; }
section h1, section h2 { font-family: 'DejaVu Sans', sans-serif; color: #1c3d6e; }
section h2 { font-size: 34px; margin: 0 0 8px 0; line-height: 1.2; }
section.title, section.part { justify-content: center; }
section.title h1 { font-size: 56px; } section.part h1 { font-size: 64px; }
section p { margin: 4px 0; }
.row { display: flex; gap: 20px; align-items: flex-start; }
.pics { display: flex; gap: 20px; justify-content: center; align-items: flex-start; flex: none; }
.cap { font-size: 22px; line-height: 1.28; }
.src { font-size: 19px; color: #555; line-height: 1.25; margin-top: 4px; }
.side { flex: 1; min-width: 0; font-size: 22px; line-height: 1.3; }
section p { overflow-wrap: anywhere; }
table { font-size: 20px; border-collapse: collapse; margin: 4px 0 10px 0; }
th, td { padding: 3px 12px; border-bottom: 1px solid #ccc; text-align: left; }
h3 { font-size: 24px; margin: 6px 0 2px 0; color: #1c3d6e; }
section::after { font-size: 19px; content: attr(data-marpit-pagination) ' / ' attr(data-marpit-pagination-total); }
"""


def _table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def _text_lines(text: str, width_px: int, px: int) -> int:
    """A generous estimate of the lines a paragraph wraps to (DejaVu Sans averages about 0.6 em a letter)."""
    return len(textwrap.wrap(text, max(10, int(width_px / (0.6 * px))))) or 1


def markdown(slides: list[Slide]) -> str:
    """The deck as Marp Markdown; a long caption shrinks its slide's pictures instead of running off the page."""
    front = "---\nmarp: true\ntheme: default\nsize: 16:9\npaginate: true\n" + f"title: {TITLE}\nstyle: |\n"
    front += textwrap.indent(CSS.strip(), "  ") + "\n---\n\n"
    parts: list[str] = []
    for slide in slides:
        if slide.kind in ("title", "part"):
            body = f"<!-- _class: {slide.kind} -->\n\n# {html.escape(slide.title)}\n\n" + "\n\n".join(
                html.escape(t) for t in slide.text
            )
            parts.append(body + "\n")
            continue
        text_width = (
            SLIDE_PX[0] - 80
            if slide.layout == "wide"
            else SLIDE_PX[0]
            - 80
            - 20
            - sum(p.box[0] for p in slide.pictures)
            - 20 * (len(slide.pictures) - 1)
        )
        lines = (
            sum(_text_lines(t, text_width, 22) for t in slide.text) * 28
            + _text_lines(slide.source, text_width, 19) * 24
        )
        if slide.layout == "wide" and slide.pictures:
            room = SLIDE_PX[1] - 20 - 40 - 50 - 12 - lines - 8
            for picture in slide.pictures:
                picture.box = (picture.box[0], min(picture.box[1], room))
        for picture in slide.pictures:
            picture.place()
        paragraphs = "".join(f"<p class='cap'>{html.escape(t)}</p>" for t in slide.text)
        tables = "".join(f"<h3>{html.escape(h)}</h3>{_table(rows)}" for h, rows in slide.tables)
        source = f"<p class='src'>{html.escape(slide.source)}</p>" if slide.source else ""
        pics = (
            "<div class='pics'>" + "".join(p.html() for p in slide.pictures) + "</div>"
            if slide.pictures
            else ""
        )
        if slide.layout == "side":
            inner = f"<div class='row'>{pics}<div class='side'>{paragraphs}{source}</div></div>"
        else:
            inner = f"{pics}{tables}{paragraphs}{source}"
        parts.append(f"## {html.escape(slide.title)}\n\n<div>{inner}</div>\n")
    return front + "\n---\n\n".join(parts)


def marp(source: Path, out: Path, *extra: str) -> None:
    """Run Marp CLI (slides/node_modules) on ``source``; the PDF is printed by Chromium."""
    if not MARP.exists():
        raise SystemExit(
            "Marp CLI is not installed: run 'npm ci --prefix slides' (make slides does), then try again."
        )
    env = dict(os.environ)
    if "CHROME_PATH" not in env:
        chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if chrome is None:
            raise SystemExit(
                "slides.pdf needs Chromium: install it (Debian: apt-get install chromium) or set CHROME_PATH."
            )
        env["CHROME_PATH"] = chrome
    result = subprocess.run(
        [str(MARP), "--html", "--allow-local-files", "--no-stdin", *extra, str(source), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not out.is_file():
        raise SystemExit(f"Marp could not write {out.name}:\n{result.stderr.strip()[-2000:]}")


def build(out: Path, slides: list[Slide] | None = None) -> list[Slide]:
    """Write slides.md, slides.html, slides.pdf and layout.json into ``out``; return the slides."""
    out.mkdir(parents=True, exist_ok=True)
    slides = slides if slides is not None else deck(out / "drawn")
    source = out / "slides.md"
    source.write_text(markdown(slides), encoding="utf-8")
    marp(source, out / "slides.html")
    marp(source, out / "slides.pdf", "--pdf")
    layout = [
        {
            "slide": n,
            "title": s.title,
            "kind": s.kind,
            "pictures": [
                {"name": p.name, "pdf": str(p.pdf), "crop": p.crop, "size_px": p.size_px, "min_pt": p.min_pt}
                for p in s.pictures
            ],
        }
        for n, s in enumerate(slides, 1)
    ]
    (out / "layout.json").write_text(
        json.dumps(
            {
                "min_pt": MIN_PT,
                "page_pt": [SLIDE_PX[0] * PT_PER_PX, SLIDE_PX[1] * PT_PER_PX],
                "slides": layout,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    return slides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "slides", help="output folder")
    args = parser.parse_args(argv)
    slides = build(args.out)
    n_lines = draw_handout(args.out / "handout.pdf")
    print(f"{args.out / 'slides.html'}: {len(slides)} slides (self-contained, offline)")
    print(
        f"{args.out / 'slides.pdf'}: {len(slides)} pages of 960 x 540 pt, every text at least {MIN_PT:g} pt"
    )
    print(f"{args.out / 'handout.pdf'}: 1 page, {n_lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
