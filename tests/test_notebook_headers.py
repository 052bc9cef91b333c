"""Each notebook's header quotes its measured CPU runtime; the quote must be the recorded one.

``make tutorial`` (``scripts/run_notebooks.py``) records every notebook's seconds in
``results/notebook_runtimes_quick_cpu.json``, and README's table is generated from that record. The
headers are prose, so nothing regenerates them: without this check a new record leaves the notebooks
quoting the old figures, or saying "synthetic data" after a run on CIFAR-10 (and the reverse).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "results" / "notebook_runtimes_quick_cpu.json"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# "(83.1 s measured by `make tutorial`" and, where that run fell back, "... with synthetic data" / "on synthetic data".
QUOTE = re.compile(r"\((\d+(?:\.\d)?) s measured by `make tutorial`(?P<rest>[^)]*)")


def _header(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    for cell in cells[:4]:
        text = "".join(cell["source"])
        if "**Runtime**" in text:
            return text[text.index("**Runtime**") :]
    raise AssertionError(f"{path.name}: no **Runtime** paragraph in its first cells")


def test_every_notebook_is_in_the_record_and_nothing_else():
    record = json.loads(RECORD.read_text())
    assert sorted(record["seconds"]) == [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_quotes_the_recorded_runtime_and_data(path):
    record = json.loads(RECORD.read_text())
    match = QUOTE.search(_header(path))
    assert match, f"{path.name}: the Runtime paragraph has no '(N s measured by `make tutorial`' quote"
    recorded = f"{record['seconds'][path.name]:.1f}"
    assert match.group(1) == recorded, (
        f"{path.name} says {match.group(1)} s, the record says {recorded} s: update the header"
    )
    says_synthetic = "synthetic" in " ".join(match.group("rest").split()[:4])
    ran_synthetic = path.name in record.get("fell_back_to_synthetic", [])
    assert says_synthetic == ran_synthetic, (
        f"{path.name}: the record says the run {'did' if ran_synthetic else 'did not'} fall back to synthetic "
        "data; the header must say the same"
    )


def test_the_quote_pattern_reads_both_kinds_of_header():
    real = "(55.1 s measured by `make tutorial` after\nnotebook 05, recorded in"
    synthetic = "(17.1 s measured by `make tutorial` with synthetic\ndata, recorded in"
    assert QUOTE.search(real).group(1) == "55.1"
    assert "synthetic" in QUOTE.search(synthetic).group("rest")
    assert "synthetic" not in QUOTE.search(real).group("rest")


def test_the_runtime_record_names_the_data_the_notebooks_printed():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    printed = "ImageDataset('CIFAR-10 (JPEG q75 copy)': 10 classes, train 2000, test 1000, source='data')\n"
    nb = {
        "cells": [{"outputs": [{"text": printed}]}, {"outputs": [{"text": printed.replace("10 c", "9 c")}]}]
    }
    assert module.data_labels(nb) == ["CIFAR-10 (JPEG q75 copy)"]
    assert module.data_labels({"cells": []}) == []
    assert module.data_labels(json.dumps(nb)) == ["CIFAR-10 (JPEG q75 copy)"]  # the serialised text too
