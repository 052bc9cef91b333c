"""The rendered book (``make book``) in a real browser: Debian's Chromium, driven by Playwright.

Every page of the built site is opened from a local HTTP server and fails on: an image that did not load
(``naturalWidth`` 0), a link into the book that leads to no file or no anchor, math left as TeX source (``$$``,
``\\(`` …) or not typeset on a page whose notebook has math, a Python traceback among the outputs, figure
outputs of the executed notebook that the page does not show, a page without the navigation bar listing every
notebook, a request to anything but the local server (the book works offline; such requests are stopped in the
browser), or a JavaScript error. ``test_checks_find_a_broken_page`` shows that each check can fail.

Where the book comes from, fastest first: ``SENET_BOOK_SITE`` (a site built before, e.g. ``build/book``, checked
as it is); the copies nbmake executed earlier in this session (``make test``, see conftest.py); else the
notebooks are executed here with scripts/run_notebooks.py (quick profile, a few minutes on 2 cores). The last two
are rendered with scripts/build_book.py into a temporary folder.

Chromium: ``SENET_CHROMIUM``, else ``chromium`` on PATH (Debian's package: ``apt-get install chromium``; .ci/run
installs it). Without one the tests skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IN_CI = os.environ.get("CI", "").lower() == "true"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

#: TeX that MathJax should have replaced: display/inline delimiters, environments, $…$ around a command.
RAW_MATH = r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\$[^$\s][^$]*\\[A-Za-z]+[^$]*\$"
#: Math in a notebook's or document's markdown source, as MyST's dollarmath and amsmath read it (no space inside
#: the dollars, no digit after the closing one: "$5 to $10" is prose).
SOURCE_MATH = re.compile(r"\$\$.+?\$\$|(?<![\\$])\$(?=\S)[^$\n]*?(?<=\S)\$(?!\d)|\\begin\{", re.DOTALL)
TRACEBACK = "Traceback (most recent call last)"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


# --------------------------------------------------------------------------- what a page shows
@dataclass
class PageReport:
    """What the browser found on one page."""

    page: str  # path inside the site, e.g. notebooks/01_squeeze.html
    base: str  # the server's URL the page was opened under
    broken_images: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # every href, resolved by the browser
    ids: set[str] = field(default_factory=set)  # element ids and anchor names, for #fragments
    raw_math: list[str] = field(default_factory=list)
    typeset: int = 0  # mjx-container elements
    untypeset: int = 0  # .math elements (Sphinx's) holding no typeset output
    tracebacks: int = 0
    output_images: int = 0  # images inside cell outputs
    cell_outputs: int = 0
    nav_links: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # requests to anything but the local server
    failed: list[str] = field(default_factory=list)  # local requests answered 4xx/5xx
    js_errors: list[str] = field(default_factory=list)


PAGE_SCRIPT = """async ([rawMath, traceback]) => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const images = [...document.images];
  images.forEach(img => { img.loading = "eager"; });
  const settled = img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done); });
  await Promise.race([Promise.all(images.map(settled)), new Promise(done => setTimeout(done, 10000))]);
  const raw = new RegExp(rawMath);
  const walker = document.createTreeWalker(document.querySelector("main") || document.body,
                                           NodeFilter.SHOW_TEXT);
  const rawMathFound = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest("pre, code, script, style, textarea, mjx-container, .highlight")) continue;
    if (raw.test(node.textContent)) rawMathFound.push(node.textContent.trim().slice(0, 120));
  }
  const nav = document.querySelector("nav.bd-docs-nav");
  return {
    broken_images: images.filter(img => !img.complete || img.naturalWidth === 0)
                         .map(img => img.getAttribute("src")),
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    ids: [...document.querySelectorAll("[id]")].map(e => e.id)
           .concat([...document.querySelectorAll("a[name]")].map(a => a.name)),
    raw_math: rawMathFound,
    typeset: document.querySelectorAll("mjx-container").length,
    untypeset: [...document.querySelectorAll(".math")].filter(e => !e.querySelector("mjx-container")).length,
    tracebacks: document.querySelectorAll(".cell_output .traceback, .output.error").length
                + (document.body.innerText.includes(traceback) ? 1 : 0),
    output_images: document.querySelectorAll(".cell_output img").length,
    cell_outputs: document.querySelectorAll(".cell_output").length,
    nav_links: nav ? [...nav.querySelectorAll("a[href]")].map(a => a.href) : [],
  };
}"""


def visit(browser, base: str, page: str) -> PageReport:
    """Open ``base + page`` in a fresh browser page, only the local server reachable, and read it."""
    report = PageReport(page, base)
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def route(request_route, request) -> None:
        if request.url.startswith(base):
            request_route.continue_()
        else:
            report.outside.append(request.url)
            request_route.abort()

    context.route("**/*", route)
    tab = context.new_page()
    tab.on("pageerror", lambda error: report.js_errors.append(str(error)))
    tab.on(
        "response",
        lambda response: (
            report.failed.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    try:
        tab.goto(base + page, wait_until="load")
        found = tab.evaluate(PAGE_SCRIPT, [RAW_MATH, TRACEBACK])
    finally:
        context.close()
    for name, value in found.items():
        setattr(report, name, set(value) if name == "ids" else value)
    return report


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on 127.0.0.1 (a free port) for as long as the block runs; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --------------------------------------------------------------------------- the checks
def site_path(href: str, base: str) -> str:
    """The file inside the site that a link into it names (``dir/`` means ``dir/index.html``)."""
    path = unquote(urlsplit(href).path)[len(urlsplit(base).path) :]
    return path + "index.html" if path == "" or path.endswith("/") else path


def link_problems(report: PageReport, site: Path, ids: dict[str, set[str]]) -> list[str]:
    """Links into the book that lead to no file, or to no element of the named anchor."""
    problems = []
    for href in report.links:
        if urlsplit(href).scheme == "file":
            problems.append(f"{report.page}: link to the local disk {href}")
        if not href.startswith(report.base):
            continue  # outside the book (Colab, the repository, the paper): not reachable offline
        parts, path = urlsplit(href), site_path(href, report.base)
        if not (site / path).is_file():
            problems.append(f"{report.page}: link to a missing file {href}")
        elif (
            parts.fragment and path.endswith(".html") and unquote(parts.fragment) not in ids.get(path, set())
        ):
            problems.append(f"{report.page}: link to a missing anchor {href}")
    return problems


def image_outputs(notebook: dict) -> int:
    """How many figure outputs an executed notebook holds."""
    return sum(
        any(kind in output.get("data", {}) for kind in IMAGE_TYPES)
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
    )


def has_math(markdown_sources: list[str]) -> bool:
    return any(SOURCE_MATH.search(text) for text in markdown_sources)


def draws(notebook: dict) -> bool:
    """Whether a notebook's code makes matplotlib figures."""
    code = "".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code")
    return "plt." in code or "save_figure(" in code


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def chromium() -> str:
    path = os.environ.get("SENET_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if IN_CI:
        pytest.fail("CI runs the book's browser test: install Debian's Chromium (apt-get install chromium).")
    pytest.skip("no Chromium found (apt-get install chromium, or set SENET_CHROMIUM); CI runs this test")


@pytest.fixture(scope="session")
def browser(chromium: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def _run(command: list[str], env: dict[str, str] | None = None, timeout: int = 600) -> None:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


@pytest.fixture(scope="session")
def book(request, tmp_path_factory, chromium: str) -> Path:
    """The built site (see the module docstring for where it comes from)."""
    given = os.environ.get("SENET_BOOK_SITE")
    if given:
        site = Path(given).resolve()
        assert (site / "index.html").is_file(), f"SENET_BOOK_SITE={given} holds no index.html: run make book"
        return site
    base = tmp_path_factory.mktemp("book")
    kept = getattr(request.config, "senet_kept_notebooks", {})
    if all(path.name in kept for path in NOTEBOOKS):
        executed, results = kept[NOTEBOOKS[0].name].parent, []
    else:  # no nbmake run in this session to reuse: execute the notebooks here, as make book does
        executed = base / "executed"
        env = {
            **os.environ,
            "SENET_PROFILE": os.environ.get("SENET_PROFILE", "quick"),
            "MPLBACKEND": INLINE_BACKEND,
            "SENET_FIGURES_DIR": str(base / "figures"),
            "SENET_CHECKPOINT_DIR": str(base / "checkpoints"),
            "SENET_RESULTS_DIR": str(base / "results"),
        }
        _run(
            [sys.executable, "scripts/run_notebooks.py", "--output-dir", str(executed)], env=env, timeout=3600
        )
        results = ["--results", str(base / "results")]
    site = base / "site"
    _run(
        [sys.executable, "scripts/build_book.py", "--notebooks", str(executed), "--out", str(site), *results]
    )
    return site


@pytest.fixture(scope="session")
def pages(book: Path, browser) -> dict[str, PageReport]:
    """Every HTML page of the book, as the browser found it."""
    names = sorted(
        path.relative_to(book).as_posix()
        for path in book.rglob("*.html")
        if not path.relative_to(book).parts[0].startswith("_")
    )
    with serve(book) as base:
        reports = {name: visit(browser, base, name) for name in names}
    return reports


@pytest.fixture(scope="session")
def sources(book: Path) -> dict[str, dict]:
    """The executed notebooks the book was built from (Sphinx keeps them under _sources/), by page."""
    found = {}
    for path in sorted((book / "_sources" / "notebooks").glob("*.ipynb")):
        found[f"notebooks/{path.stem}.html"] = json.loads(path.read_text())
    assert sorted(found) == [f"notebooks/{p.stem}.html" for p in NOTEBOOKS], (
        "a notebook is missing from the book"
    )
    return found


def _fail_on(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:40])


# --------------------------------------------------------------------------- the book's pages
def test_every_notebook_is_a_page_with_outputs(pages, sources):
    """One page per notebook, each showing the executed cells' outputs."""
    _fail_on([f"{page}: no cell outputs" for page in sources if pages[page].cell_outputs == 0])


def test_images_load(pages):
    _fail_on([f"{r.page}: image did not load: {src}" for r in pages.values() for src in r.broken_images])


def test_figures_are_shown(pages, sources):
    """Every figure output of the executed notebooks is on its page, and a notebook that draws has figures."""
    problems = []
    for page, notebook in sources.items():
        expected = image_outputs(notebook)
        if draws(notebook) and expected == 0:
            problems.append(f"{page}: the notebook draws but its executed copy holds no figure output")
        if pages[page].output_images < expected:
            problems.append(f"{page}: {pages[page].output_images} of {expected} figure outputs shown")
    _fail_on(problems)


def test_internal_links_resolve(pages, book):
    ids = {name: report.ids for name, report in pages.items()}
    _fail_on([problem for r in pages.values() for problem in link_problems(r, book, ids)])


def test_math_is_typeset(pages, sources, book):
    """No TeX source left in the text; every page whose markdown has math shows MathJax's output."""
    markdown = {
        page: ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"]
        for page, notebook in sources.items()
    }
    for text in (book / "_sources").rglob("*.md*"):  # Sphinx names them x.md or x.md.txt
        page = text.relative_to(book / "_sources").as_posix().removesuffix(".txt").removesuffix(".md")
        markdown[page + ".html"] = [text.read_text()]
    with_math = [page for page, texts in markdown.items() if has_math(texts)]
    assert with_math, "no page with math found: the check would prove nothing"
    problems = [f"{r.page}: TeX left as text: {text!r}" for r in pages.values() for text in r.raw_math]
    problems += [
        f"{r.page}: {r.untypeset} math element(s) not typeset" for r in pages.values() if r.untypeset
    ]
    problems += [
        f"{page}: has math but nothing typeset by MathJax" for page in with_math if not pages[page].typeset
    ]
    _fail_on(problems)


def test_no_tracebacks(pages, sources):
    problems = [f"{r.page}: a Python traceback is shown" for r in pages.values() if r.tracebacks]
    problems += [
        f"{page}: the executed copy holds an error output ({output.get('ename')})"
        for page, notebook in sources.items()
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    _fail_on(problems)


def test_navigation_lists_every_notebook(pages, sources):
    problems = []
    for report in pages.values():
        listed = {site_path(href, report.base) for href in report.nav_links}
        missing = [page for page in sources if page not in listed]
        if missing:
            problems.append(f"{report.page}: the navigation bar lacks {', '.join(missing)}")
    _fail_on(problems)


def test_offline_and_no_errors(pages):
    """Nothing loaded from outside (MathJax and fonts are the book's own files), no 404, no script error."""
    problems = [f"{r.page}: loads {url} from outside" for r in pages.values() for url in r.outside]
    problems += [f"{r.page}: {failed}" for r in pages.values() for failed in r.failed]
    problems += [f"{r.page}: JavaScript error {error}" for r in pages.values() for error in r.js_errors]
    _fail_on(problems)


# --------------------------------------------------------------------------- the checks can fail
BROKEN_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body><main>
<nav class="bd-docs-nav"><a href="other.html">other</a></nav>
<p>Inline math that nobody typeset: $\\alpha + \\beta$ and $$x^2$$.</p>
<img src="missing.png" alt="a figure that is not there">
<img src="https://example.invalid/badge.svg" alt="a remote badge">
<a href="nowhere.html">a missing page</a> <a href="other.html#no-such-section">a missing anchor</a>
<div class="cell_output"><pre>Traceback (most recent call last):
  File "cell", line 1</pre></div>
<script>undefinedFunction();</script>
</main></body></html>"""


def test_checks_find_a_broken_page(browser, tmp_path):
    """A hand-made page with one fault of each kind: every check reports its fault."""
    (tmp_path / "index.html").write_text(BROKEN_PAGE)
    (tmp_path / "other.html").write_text('<!doctype html><html><body><h1 id="top">other</h1></body></html>')
    with serve(tmp_path) as base:
        report = visit(browser, base, "index.html")
        other = visit(browser, base, "other.html")
    assert sorted(report.broken_images) == ["https://example.invalid/badge.svg", "missing.png"]
    assert report.outside == ["https://example.invalid/badge.svg"]
    assert [failed.split()[0] for failed in report.failed] == ["404"]
    links = link_problems(report, tmp_path, {"index.html": report.ids, "other.html": other.ids})
    assert [problem.split(": ", 1)[1].split(" http")[0] for problem in links] == [
        "link to a missing file",
        "link to a missing anchor",
    ]
    assert len(report.raw_math) == 1 and "$$x^2$$" in report.raw_math[0]
    assert report.typeset == 0 and report.tracebacks >= 1
    assert report.js_errors and "undefinedFunction" in report.js_errors[0]
    assert has_math(["the ratio $r$ of Eq. 5"]) and not has_math(["costs $5 to $10", "no math"])


def test_links_outside_the_book_point_at_the_repository():
    """build_book.py keeps links to book pages and images, and points other repository files at the repository."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_book
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    images: set[str] = set()
    text = (
        "[glance](../docs/paper_at_a_glance.md#recipes) [readme](../README.md) [lib](../senet_lib/) "
        "![fig](../figures/README.md) [gone](../no_such_file.md) [web](https://example.org/a.md) [up](#top)"
    )
    pages = {"docs/paper_at_a_glance.md"}
    assert build_book.relink(text, "notebooks", pages, images, "https://host/r") == (
        "[glance](../docs/paper_at_a_glance.md#recipes) [readme](https://host/r/blob/main/README.md) "
        "[lib](https://host/r/tree/main/senet_lib) ![fig](https://host/r/blob/main/figures/README.md) "
        "[gone](../no_such_file.md) [web](https://example.org/a.md) [up](#top)"
    )
    assert images == set()
    png = next((ROOT / "figures").glob("*.png"), None)
    if png is not None:  # an image the page shows is copied into the book, its link kept
        link = f"![a figure](../figures/{png.name})"
        assert build_book.relink(link, "docs", pages, images, "https://host/r") == link
        assert images == {f"figures/{png.name}"}
