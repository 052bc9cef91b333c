"""The library's shape, checked from its source: imports run one way, no cycles, no borrowed privates,
notebooks import from the short public paths, and every public name exists and says what it is.

The layers, in the order data flows (a module may import from its own package or an earlier one)::

    errors, cloud → env, safe_pickle → data → se → models → cost → checkpoint → train
        → excitation → plots → cli

Inside a package, modules import each other freely as long as no two reach each other (no cycle,
function-level and ``TYPE_CHECKING`` imports included).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "senet_lib"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

LAYERS = {
    "errors": 0,
    "cloud": 0,
    "env": 1,
    "safe_pickle": 1,
    "data": 2,
    "se": 3,
    "models": 4,
    "cost": 5,
    "checkpoint": 6,
    "train": 7,
    "excitation": 8,
    "plots": 9,
    "cli": 10,
    "__main__": 10,
    "__init__": 10,
}

#: Where notebooks may import from: the packages a student meets.
SHORT_PATHS = {
    "senet_lib",
    "senet_lib.data",
    "senet_lib.models",
    "senet_lib.cost",
    "senet_lib.train",
    "senet_lib.excitation",
    "senet_lib.plots",
}


def module_name(path: Path) -> str:
    parts = ["senet_lib", *path.relative_to(LIBRARY).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, source: str | None = None) -> list[tuple[str, str]]:
    """``(module, name)`` for every senet_lib import in ``path`` (relative ones resolved; inside
    functions and ``TYPE_CHECKING`` blocks too). ``name`` is ``""`` for ``import senet_lib.x``."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(source if source is not None else path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            if module == "senet_lib" or module.startswith("senet_lib."):
                found += [(module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.startswith("senet_lib")]
    return found


MODULES = {module_name(p): p for p in sorted(LIBRARY.rglob("*.py"))}


def targets(path: Path, source: str | None = None) -> set[str]:
    """The library modules that ``path`` imports (a name that is itself a module counts as that module)."""
    out = set()
    for module, name in imports_of(path, source):
        out.add(f"{module}.{name}" if f"{module}.{name}" in MODULES else module)
    return out - {module_name(path)}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS["__init__"] if len(parts) == 1 else LAYERS[parts[1]]


def backward(path: Path, source: str | None = None) -> list[str]:
    own = layer(module_name(path))
    return [f"{module_name(path)} imports {t}" for t in sorted(targets(path, source)) if layer(t) > own]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_inits(module: str) -> set[str]:
    """A module's own package ``__init__`` chain: importing those is how Python loads it, not a cycle."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_graph() -> dict[str, set[str]]:
    return {m: {t for t in targets(p) if t not in package_inits(m)} for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    assert {m.split(".")[1] for m in MODULES if m != "senet_lib"} <= set(LAYERS)


def test_imports_run_one_way():
    wrong = [line for path in MODULES.values() for line in backward(path)]
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, f"modules that import each other: {found}"


def test_the_checks_can_fail():
    loaders = MODULES["senet_lib.data.loaders"]
    assert backward(loaders, "from ..train import fit\n") == [
        "senet_lib.data.loaders imports senet_lib.train"
    ]
    assert backward(MODULES["senet_lib.se"], "def f():\n    from .excitation import eval_mode\n")
    assert backward(loaders, "from ..env import REPO_ROOT\n") == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_borrows_another_modules_private_names():
    """Cross-module ``_private`` imports mean a split that follows line counts, not ideas. The one
    exception: the CLI's subcommand modules hand their ``_add_<command>`` parser builders to the parser."""
    borrowed = [
        f"{module_name(p)} imports {module}.{name}"
        for p in MODULES.values()
        for module, name in imports_of(p)
        if name.startswith("_") and not (module.startswith("senet_lib.cli.") and name.startswith("_add_"))
    ]
    assert not borrowed, "\n".join(borrowed)


@pytest.mark.parametrize("package", sorted(SHORT_PATHS))
def test_public_names_exist_and_say_what_they_are(package):
    mod = importlib.import_module(package)
    assert mod.__all__, f"{package} exports nothing"
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"{package}.__all__ names what it does not define: {missing}"
    undocumented = [
        name
        for name in mod.__all__
        if (inspect.isfunction(obj := getattr(mod, name)) or inspect.isclass(obj)) and not inspect.getdoc(obj)
    ]
    assert not undocumented, f"{package}: no docstring for {undocumented}"


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = ("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return "\n".join(
        line for cell in lines for line in cell.splitlines() if not line.lstrip().startswith(("%", "!"))
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_import_from_short_public_paths(notebook):
    code = notebook_code(notebook)
    checked = 0
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("senet_lib"):
            assert node.module in SHORT_PATHS, (
                f"{notebook.name}: from {node.module} import … (not a short path)"
            )
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert (
                    alias.name in module.__all__
                    or alias.name in SHORT_PATHS - {"senet_lib"}
                    or (f"{node.module}.{alias.name}" in SHORT_PATHS)
                ), f"{notebook.name}: {node.module}.{alias.name} is not public"
                checked += 1
    senet_lib = importlib.import_module("senet_lib")
    for dotted in set(re.findall(r"\bsenet_lib\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)", code)):
        head = dotted.split(".")[0]
        assert hasattr(senet_lib, head), f"{notebook.name}: senet_lib.{head} is gone"
        if "." in dotted and f"senet_lib.{head}" in SHORT_PATHS:
            attr = dotted.split(".")[1]
            assert hasattr(getattr(senet_lib, head), attr), f"{notebook.name}: senet_lib.{dotted} is gone"
    assert checked >= 1, f"{notebook.name} imports nothing from the library"


def test_errors_imports_nothing_from_the_library():
    assert imports_of(MODULES["senet_lib.errors"]) == []


def test_every_library_import_names_a_module_that_exists():
    """A relative import left pointing at a module that moved fails only when its function runs: catch it here."""
    missing = [
        f"{module_name(p)} imports {module}"
        for p in MODULES.values()
        for module, _ in imports_of(p)
        if module not in MODULES
    ]
    assert not missing, "\n".join(missing)
