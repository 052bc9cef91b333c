"""Sphinx configuration of the book (``make book``; docs/book.md says why Sphinx + MyST-NB).

``scripts/build_book.py`` stages one source folder (``index.md``, the executed notebooks, the documents they link
to, MathJax under ``_static/``) and builds it with this folder as the configuration folder (``sphinx-build -c
book``). Nothing here executes a notebook (``nb_execution_mode = "off"``): the book shows the outputs of the one
run that made the copies.
"""

from __future__ import annotations

from pathlib import Path

import sphinx
from docutils import nodes
from sphinx.transforms import SphinxTransform

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: Sphinx depends on tomli there
    import tomli as tomllib

_project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
_repository = _project["urls"]["Repository"]

project = "Squeeze-and-Excitation Networks, step by step"
author = "senet-tutorial contributors"
copyright = "the senet-tutorial contributors (MIT licence)"
release = _project["version"]

extensions = ["myst_nb"]
exclude_patterns = ["build_info.md", "_static"]
suppress_warnings = ["toc.empty_glob"]  # the reference section is empty when no notebook links a document

# MyST: $…$ and $$…$$ as in Jupyter, amsmath environments, ::: fences; heading anchors so that links to a
# section of another page (the paper at a glance#…) resolve.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_heading_anchors = 3

# Render the stored outputs; never execute (the notebooks ran headless before, in the quick profile or another).
nb_execution_mode = "off"
# Progress bars are ipywidgets: rendering them needs JavaScript from a CDN. Show their text form instead.
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_merge_streams = True

# MathJax 4 from the npm package that build_book.py copies into the source folder's _static/ (no CDN), its
# fonts beside it; setup() below adds that folder (html_static_path is otherwise relative to this folder).
html_static_path: list[str] = []
mathjax_path = "mathjax/tex-mml-chtml.js"
_mathjax_config = {"loader": {"paths": {"fonts": "[mathjax]/../mathjax-fonts"}}}
if sphinx.version_info >= (9,):
    mathjax4_config = _mathjax_config
else:  # Sphinx 7-8 (Python 3.10) name it for MathJax 3; MathJax 4 reads the same window.MathJax object
    mathjax3_config = _mathjax_config

html_theme = "sphinx_book_theme"
html_title = "SE networks, step by step"
html_last_updated_fmt = None
html_theme_options = {
    "repository_url": _repository,
    "use_repository_button": True,
    "use_download_button": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}


class RemoteImagesAsText(SphinxTransform):
    """A remote image (the Colab / Kaggle badges) becomes its alt text, still inside its link: the book loads
    nothing from outside and reads the same offline."""

    default_priority = 400

    def apply(self) -> None:
        for image in list(self.document.findall(nodes.image)):
            if "://" in image["uri"]:
                image.replace_self(nodes.Text(image.get("alt") or image["uri"]))


def _add_staged_static(app, config) -> None:
    config.html_static_path.append(str(Path(app.srcdir) / "_static"))


def setup(app):
    app.connect("config-inited", _add_staged_static)
    app.add_transform(RemoteImagesAsText)
