"""`make slides`: the story deck (Marp -> PDF) stays on its pages, numbered, in the paper's order, legible.

The deck is built once (about 15 s on two cores: Marp prints it with Chromium), rendered with poppler's
pdftoppm and read back with pdftotext -bbox and pdfimages. Pages are 960 x 540 pt (13.33 x 7.5 in); the
14-pt rule is checked on that page, which is 28 px a point-size of 14 at 1920 x 1080.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("pdftotext", "pdftoppm", "pdfimages", "pdffonts")
#: DejaVu Sans's ascent + descent per em: pdftotext's word box height over the font size.
DEJAVU_BOX = 1.164
MARGIN_PT = 8.0
needs_tools = pytest.mark.skipif(
    not (ROOT / "slides" / "node_modules" / ".bin" / "marp").exists()
    or shutil.which("chromium") is None
    or any(shutil.which(t) is None for t in TOOLS),
    reason="needs Marp (npm ci --prefix slides), Chromium and poppler-utils (.ci/run installs them)",
)


def _load():
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("build_slides", ROOT / "scripts" / "build_slides.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_slides"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def slides():
    return _load()


@pytest.fixture(scope="module")
def built(slides, tmp_path_factory):
    out = tmp_path_factory.mktemp("slides")
    deck = slides.build(out)
    return out, deck


def words(pdf: Path) -> list[list[tuple[float, float, float, float, str]]]:
    """Per page: (xMin, yMin, xMax, yMax, text) of every word, and the page size first."""
    text = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = []
    for page in re.findall(r"<page (.*?)</page>", text, re.S):
        width, height = (float(v) for v in re.findall(r'(?:width|height)="([\d.]+)"', page)[:2])
        boxes = [
            (*(float(v) for v in m.groups()[:4]), m.group(5))
            for m in re.finditer(
                r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)<', page
            )
        ]
        pages.append((width, height, boxes))
    return pages


def overflowing(pdf: Path) -> list[str]:
    """Words that run past a page's edge (less MARGIN_PT)."""
    bad = []
    for n, (width, height, boxes) in enumerate(words(pdf), 1):
        for x0, y0, x1, y1, word in boxes:
            if x0 < MARGIN_PT or y0 < MARGIN_PT or x1 > width - MARGIN_PT or y1 > height - MARGIN_PT:
                bad.append(f"slide {n}: {word!r} at ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f})")
    return bad


@needs_tools
def test_every_text_stays_on_its_slide_is_numbered_and_legible(slides, built):
    out, deck = built
    pdf = out / "slides.pdf"
    pages = words(pdf)
    assert len(pages) == len(deck) >= 20
    assert all((w, h) == (960.0, 540.0) for w, h, _ in pages)
    assert not overflowing(pdf)
    # a slide number "n / N" in the bottom right corner of every slide
    for n, (width, height, boxes) in enumerate(pages, 1):
        corner = " ".join(t for x0, y0, _x1, _y1, t in boxes if x0 > width * 0.8 and y0 > height * 0.88)
        assert corner.endswith(f"{n} / {len(pages)}"), (n, corner)
    # one font family, whose box height per point is known; no word smaller than 14 pt
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert {re.sub(r"^\w+\+", "", line.split()[0]) for line in fonts.splitlines()[2:]} <= {
        "DejaVuSans",
        "DejaVuSans-Bold",
    }
    smallest = min(y1 - y0 for _w, _h, boxes in pages for _x0, y0, _x1, y1, _t in boxes)
    assert smallest / DEJAVU_BOX >= slides.MIN_PT - 0.05, f"smallest text {smallest / DEJAVU_BOX:.1f} pt"


@needs_tools
def test_figures_are_legible_where_they_are_shown(slides, built):
    """Text inside the images: each crop's smallest font, scaled as pdfimages says it is shown, >= 14 pt."""
    out, deck = built
    listing = subprocess.run(
        ["pdfimages", "-list", str(out / "slides.pdf")], capture_output=True, text=True, check=True
    )
    shown = {}
    for line in listing.stdout.splitlines()[2:]:
        cols = line.split()
        if cols[2] == "image":
            shown.setdefault(int(cols[0]), []).append((int(cols[3]), float(cols[12])))
    layout = json.loads((out / "layout.json").read_text())
    assert layout["min_pt"] == slides.MIN_PT == 14.0
    checked = 0
    for slide in layout["slides"]:
        for picture in slide["pictures"]:
            width_pt, height_pt, texts = slides.figure_text(Path(picture["pdf"]))
            x0, y0, x1, y1 = picture["crop"]
            sizes = [
                s
                for x, y, s in texts
                if x0 * width_pt <= x <= x1 * width_pt and y0 * height_pt <= y <= y1 * height_pt
            ]
            pixels, ppi = next(
                (w, p) for w, p in shown[slide["slide"]] if abs(w - _cropped_width(picture)) <= 2
            )
            scale = (pixels / ppi * 72) / ((x1 - x0) * width_pt)
            assert min(sizes) * scale >= slides.MIN_PT - 0.05, (
                slide["title"],
                picture["name"],
                min(sizes) * scale,
            )
            checked += 1
    assert checked >= 15


def _cropped_width(picture: dict) -> int:
    from PIL import Image

    png = Path(picture["pdf"]).with_suffix(".png")
    x0, _y0, x1, _y1 = picture["crop"]
    width = Image.open(png).size[0]
    return round(x1 * width) - round(x0 * width)


@needs_tools
def test_sections_come_in_the_papers_order_and_the_ablation_slide_invents_nothing(slides, built):
    out, deck = built
    parts = [s.title for s in deck if s.kind == "part"]
    assert parts == [f"{n} · {name}" for n, name in enumerate(slides.PARTS, 1)]
    assert list(slides.PARTS) == [
        "The idea",
        "The SE block",
        "Where it goes",
        "What it costs",
        "Training",
        "What the gates do",
        "Ablations",
    ]
    pages = words(out / "slides.pdf")
    text = [" ".join(t for *_b, t in boxes) for _w, _h, boxes in pages]
    assert [n for n, s in enumerate(deck) if s.kind == "part"] == [
        n for n, t in enumerate(text) if re.match(r"\d · ", t)
    ]
    after = deck[[s.title for s in deck].index(parts[-1]) + 1 :]
    if not slides.ablation_records():
        assert len(after) == 1 and "not trained yet" in after[0].title
        assert not re.search(r"\d+\.\d", " ".join(after[0].text)), "no ablation number of ours exists to show"
    # the training slide's numbers are the shipped pair's run records'
    pair = slides.shipped_pair()
    training = next(s for s in deck if s.title.startswith("Training"))
    for _name, record in pair["records"].values():
        assert f"{100 * record['final_test_acc']:.2f} %" in " ".join(training.text)


@needs_tools
def test_pages_render_and_nothing_is_drawn_on_the_edges(built, tmp_path):
    out, deck = built
    subprocess.run(
        ["pdftoppm", "-r", "24", "-gray", str(out / "slides.pdf"), str(tmp_path / "p")], check=True
    )
    from PIL import Image

    images = sorted(tmp_path.glob("p-*.pgm"))
    assert len(images) == len(deck)
    for n, path in enumerate(images, 1):
        image = Image.open(path)
        w, h = image.size
        edge = [image.getpixel((x, y)) for x in range(w) for y in (0, 1, h - 2, h - 1)]
        edge += [image.getpixel((x, y)) for y in range(h) for x in (0, 1, w - 2, w - 1)]
        assert min(edge) > 235, f"slide {n} draws on its edge"
    html = (out / "slides.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", html), "the deck must not load anything"
    assert html.count("data:image/png;base64,") >= 15


@needs_tools
def test_an_overflowing_caption_is_caught(slides, tmp_path):
    """The checks can fail: a caption too long for its slide runs past the page and is reported."""
    deck = [slides.Slide("A slide", text=["a caption much too long for its slide " * 120], source="s")]
    slides.build(tmp_path, deck)
    assert overflowing(tmp_path / "slides.pdf")


def test_table14_and_the_shipped_pair_come_from_their_records(slides):
    notes = slides.table14()
    assert notes == {
        "plain": "23.30 / 6.55",
        "standard": "22.28 / 6.03",
        "pre": "22.23 / 6.00",
        "post": "22.78 / 6.35",
        "identity": "22.20 / 6.15",
    }
    pair = slides.shipped_pair()
    assert set(pair["records"]) == {"resnet20", "se_resnet20"} and pair["figure"].startswith(
        "results_curves_"
    )


def test_a_too_small_figure_is_refused(slides):
    picture = slides.committed("06_excitation_heatmaps", box="pair")
    with pytest.raises(SystemExit, match="smallest text would be"):
        picture.place()


def test_handout_is_one_page_with_every_number_of_the_papers_tables(slides, tmp_path):
    lines = slides.draw_handout(tmp_path / "handout.pdf")
    assert (
        len(re.findall(rb"/Type\s*/Page\b(?!s)", (tmp_path / "handout.pdf").read_bytes())) == 1 and lines > 40
    )
    text = "\n".join(t for _s, t in slides.handout_lines(120))
    assert max(len(t) for s, t in slides.handout_lines(120) if s == "table") <= 120
    tables = slides.handout_tables((ROOT / "docs" / "paper_at_a_glance.md").read_text())
    assert [h.split(" ")[0] for h, _ in tables] == ["The", "Parameters", "Headline", "CIFAR", "Ablations"]
    numbers = {
        n for _h, rows in tables for row in rows for cell in row for n in re.findall(r"\d[\d,.]*", cell)
    }
    assert {"23.29", "6.62", "25,557,032", "22.28", "5.21"} <= numbers
    missing = [n for n in numbers if n not in text]
    assert not missing, missing


def test_a_figure_without_a_caption_is_named(slides, tmp_path, monkeypatch):
    captions = json.loads(slides.CAPTIONS.read_text())
    captions.pop("00_se_block")
    monkeypatch.setattr(slides, "CAPTIONS", tmp_path / "captions.json")
    slides.CAPTIONS.write_text(json.dumps(captions))
    with pytest.raises(SystemExit, match="00_se_block.png has no caption"):
        slides.figures()


def test_text_table_wraps_to_the_width(slides):
    rows = [["a", "b"], ["short", "a long cell " * 6]]
    lines = slides.text_table(rows, 30)
    assert max(map(len, lines)) <= 30 and len(lines) > 3
    assert " ".join(" ".join(lines).split()).count("long") == 6
