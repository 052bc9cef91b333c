"""`make slides`: an offline deck of every committed figure (caption + provenance) and a one-page handout."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def slides(monkeypatch):
    spec = importlib.util.spec_from_file_location("build_slides", ROOT / "scripts" / "build_slides.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "build_slides", module)
    spec.loader.exec_module(module)
    return module


def _pages(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf.read_bytes()))


def test_deck_is_self_contained_and_shows_every_committed_figure(slides, tmp_path):
    items = slides.figures()
    stems = sorted(p.stem for p in (ROOT / "figures").glob("*.png") if p.with_suffix(".json").is_file())
    assert [i["stem"] for i in items] == stems and len(stems) >= 15
    assert all(i["caption"] and "\n" not in i["caption"] and "?" not in i["caption"] for i in items)
    assert all("commit " in i["provenance"] for i in items)
    fig6 = next(i for i in items if i["stem"] == "06_fig6_class_excitations")
    assert "notebook 06" in fig6["provenance"] and "pretrained/" in fig6["provenance"]
    page = tmp_path / "slides.html"
    assert slides.slides_html(items, page) == len(items) + 2
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", text), "the deck must not load anything"
    assert "<link" not in text and "<script src" not in text
    assert text.count("data:image/png;base64,") == len(items)
    for item in items:
        assert f"id='{item['stem']}'" in text
    assert slides.slides_pdf(items[:2], tmp_path / "slides.pdf") == 3
    assert _pages(tmp_path / "slides.pdf") == 3


def test_handout_is_one_page_with_every_number_of_the_papers_tables(slides, tmp_path):
    lines = slides.draw_handout(tmp_path / "handout.pdf")
    assert _pages(tmp_path / "handout.pdf") == 1 and lines > 40
    text = "\n".join(t for _s, t in slides.handout_lines(120))
    assert max(len(t) for s, t in slides.handout_lines(120) if s == "table") <= 120
    glance = (ROOT / "docs" / "paper_at_a_glance.md").read_text()
    tables = slides.handout_tables(glance)
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


def test_text_table_wraps_to_the_width():
    spec = importlib.util.spec_from_file_location("bs", ROOT / "scripts" / "build_slides.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = [["a", "b"], ["short", "a long cell " * 6]]
    lines = module.text_table(rows, 30)
    assert max(map(len, lines)) <= 30 and len(lines) > 3
    assert " ".join(" ".join(lines).split()).count("long") == 6
