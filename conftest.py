"""pytest set-up for the whole checkout: nbmake's run of the notebooks, kept for the book's browser test.

``make test`` runs every notebook once with nbmake. With ``SENET_KEEP_EXECUTED=<folder>`` set (the Makefile's
test target sets it), each notebook's kernel uses Jupyter's own inline matplotlib backend (so figures become
outputs, where ``make test`` otherwise sets ``MPLBACKEND=Agg``), the executed copy, outputs and errors
included, is also written to that folder, and tests/test_book.py runs after the notebooks and renders those
copies instead of executing the notebooks a second time. Unset, nothing here changes a run.
"""

from __future__ import annotations

import os
from pathlib import Path

KEEP_VARIABLE = "SENET_KEEP_EXECUTED"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def pytest_configure(config) -> None:
    folder = os.environ.get(KEEP_VARIABLE)
    if not folder or not config.getoption("nbmake", default=False):
        return
    import nbformat
    from nbmake.nb_run import NotebookRun

    original = NotebookRun.execute
    config.senet_kept_notebooks = {}  # notebook name -> executed copy, filled as nbmake runs them

    def execute_and_keep(self):
        previous = os.environ.get("MPLBACKEND")
        os.environ["MPLBACKEND"] = INLINE_BACKEND  # read by the kernel nbmake starts, not by this process
        try:
            result = original(self)
        finally:
            if previous is None:
                os.environ.pop("MPLBACKEND")
            else:
                os.environ["MPLBACKEND"] = previous
        copy = Path(folder) / Path(self.filename).name
        copy.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(result.nb, str(copy))
        config.senet_kept_notebooks[copy.name] = copy
        return result

    NotebookRun.execute = execute_and_keep
    config.add_cleanup(lambda: setattr(NotebookRun, "execute", original))


def pytest_collection_modifyitems(config, items) -> None:
    """The book's tests after every notebook, so that they find the kept copies."""
    if hasattr(config, "senet_kept_notebooks"):
        book = [item for item in items if item.path.name == "test_book.py"]
        items[:] = [item for item in items if item.path.name != "test_book.py"] + book
