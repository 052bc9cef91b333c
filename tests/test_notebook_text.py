"""What the notebooks' text says about the series itself: notebook 00's map lists every notebook in
``notebooks/`` under its own title, and no notebook names a profile that ``senet_lib.PROFILES`` lacks.

Both read the files, so a notebook added to the folder, a title changed, or a profile renamed (``paper``
became ``step``) fails here rather than misleading a reader.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import senet_lib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MAP_HEADING = "## 2 · The map of the series"

#: Where a word names a profile: ``SENET_PROFILE=x``, ``--profile x``, ``profile="x"``, ``get_settings("x")``,
#: "`x` profile/recipe", "**x** profile", "x profile(s)", "x and y profiles", "(x | y | z)" beside "profile".
MARKED = [
    r"SENET_PROFILE=(\w+)",
    r"--profile[ =](\w+)",
    r"\bprofile=[\"'](\w+)[\"']",
    r"get_settings\([\"'](\w+)[\"']\)",
    r"`(\w+)`[- ](?:profiles?|recipe)\b",
    r"\*\*(\w+)\*\*[- ]profiles?\b",
    r"\b(\w+),? (?:and|or) (?:the )?\w+ profiles\b",
    r"\b(\w+) profiles?\b",
]
#: Words that stand before "profile" without naming one.
NOT_NAMES = {
    "a", "an", "the", "this", "that", "its", "each", "every", "other", "run", "one", "which", "any", "no", "all",
    "same", "default", "chosen", "given", "named", "recorded", "analysed", "longer", "fuller", "whole", "GPU",
    "CPU", "your", "their", "another", "new", "to", "of", "in", "on", "from", "with", "by", "for", "or", "and",
}  # fmt: skip


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def text(path: Path) -> str:
    return "\n".join("".join(cell["source"]) for cell in cells(path))


def numbered() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def title(path: Path) -> str:
    first = "".join(cells(path)[0]["source"]).splitlines()[0]
    return first.lstrip("# ").split("·", 1)[-1].strip()


def series_map() -> str:
    found = [
        "".join(c["source"])
        for c in cells(NOTEBOOKS / "00_start_here.ipynb")
        if c["cell_type"] == "markdown" and MAP_HEADING in "".join(c["source"])
    ]
    assert len(found) == 1, f"notebook 00 needs exactly one cell with {MAP_HEADING!r}"
    return found[0]


def map_rows(markdown: str) -> dict[str, str]:
    """``{"00": "Start here", ...}`` from the map's table rows ``| NN | title | ...``."""
    return dict(re.findall(r"^\| (\d\d) \| ([^|]+?) \|", markdown, flags=re.MULTILINE))


def profile_names(source: str) -> set[str]:
    """Every word the text uses as a profile name (see :data:`MARKED`), stop words left out."""
    names = set()
    for line in source.splitlines():
        for pattern in MARKED:
            names |= set(re.findall(pattern, line))
        if "SENET_PROFILE" in line or re.search(r"profile", line, re.IGNORECASE):
            names |= set(re.findall(r"`(\w+)`(?:,| or| and| \|)", line)) if "SENET_PROFILE" in line else set()
            for group in re.findall(r"\((\w+(?: \| \w+)+)\)", line):
                names |= set(group.split(" | "))
    names = {n.lower() for n in names}  # "Quick profile" at the start of a sentence is the quick profile
    # a profile name is one lower-case word (no SENET_PROFILE, no senet_lib in "senet_lib profiles")
    return {
        n for n in names if re.fullmatch(r"[a-z][a-z0-9]*", n) and n not in {w.lower() for w in NOT_NAMES}
    }


def test_the_map_lists_every_notebook_in_the_folder_under_its_title():
    rows = map_rows(series_map())
    present = {path.name[:2]: title(path) for path in numbered()}
    assert len(present) >= 8, "the notebooks folder lost its notebooks"
    assert rows == present, f"notebook 00's map {rows} does not match the folder {present}"
    assert senet_lib.notebook_titles(NOTEBOOKS) == present  # the library reads the folder the same way


@pytest.mark.parametrize("path", numbered(), ids=lambda p: p.stem)
def test_no_notebook_names_a_profile_that_does_not_exist(path):
    unknown = profile_names(text(path)) - set(senet_lib.PROFILES)
    assert not unknown, f"{path.name} names profiles that senet_lib.PROFILES lacks: {sorted(unknown)}"


def test_the_checks_can_fail():
    assert map_rows("| 00 | Start here | x |\n| 07 | The paper's ablations, trained | y |") == {
        "00": "Start here",
        "07": "The paper's ablations, trained",
    }
    stale = map_rows(series_map().replace("| 07 |", "| 7 |"))
    assert "07" not in stale  # a map without 07's row no longer matches the folder
    for line in (
        "the class and paper profiles are meant for a GPU",
        "| `SENET_PROFILE` | `quick`, `class` or `paper` | |",
        'print(f"profile   : {env.profile}   (quick | class | paper)")',
        "run it with `SENET_PROFILE=paper`",
        "python -m senet_lib train --profile paper",
    ):
        assert "paper" in profile_names(line), line
    assert "three" in profile_names("**The three profiles.**")  # a count that went stale is caught too
    assert profile_names("Quick profile: the run profile, the `he2016` recipe, `SENET_PROFILE` |") == {
        "quick",
        "he2016",
    }
