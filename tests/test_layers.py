"""The package's house rules, read from its source: layers, sizes, lines a student reads.

The modules of `gptcourse` form layers, each building on those before it:

    base → text → model → training → measurement → figures → appendices

A module imports only from its own layer or below, and no import cycle exists, not even
through an import inside a function. The imports are read with `ast`, so nothing runs.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gptcourse"

LAYERS: dict[str, tuple[str, ...]] = {
    "base": ("checks", "files", "config"),
    "text": ("tokenizer", "data"),
    "model": ("attention", "kv_cache", "generate", "model", "weights"),
    "training": ("device", "checkpoint", "train", "chunked_loss"),
    "measurement": ("flops", "peaks", "timing", "memory", "mfu", "gpu_budget", "ladder", "results", "perf"),
    "figures": ("alt_text", "figure_style", "model_plots", "plots", "perf_plots", "profile_plots", "diagrams", "widgets"),
    "appendices": ("data_parallel", "distributed", "sharding", "llama_rope", "llama", "llama_weights", "llama_flops", "llama_check", "profiling", "roofline"),
}
# `import gptcourse` is the front door of chapters 1–7: it may open onto those layers only.
FRONT_DOOR_LAYER = "training"
# What a student opens from the chapters: every line fits the book's 88-column code cell.
STUDENT_LAYERS = ("base", "text", "model", "training")
MAX_MODULE_LINES = 500  # SPEC.md: small modules, each read in one sitting
MAX_DOCSTRING_LINES = 10  # what and why in a few lines, quotes included; the prose is the book's
MAX_MODEL_CLOSURE_LINES = 1000  # model.py and its imports, with the clear errors of issue 23
COLUMNS = 88


def rank(module: str) -> int:
    """The layer's place in the order, 0 for the base."""
    for index, members in enumerate(LAYERS.values()):
        if module in members:
            return index
    if module == "__init__":
        return list(LAYERS).index(FRONT_DOOR_LAYER)
    raise KeyError(module)


def package_imports(source: str, modules: set[str]) -> Iterator[tuple[str, bool]]:
    """(module, at_top_level) for every import of a sibling module in `source`, anywhere in it.

    Understands ``from . import x``, ``from .x import y``, ``from gptcourse.x import y``,
    ``from gptcourse import x`` and ``import gptcourse.x``.
    """
    tree = ast.parse(source)
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            package = node.level == 1 or (node.level == 0 and node.module is not None and node.module.split(".")[0] == "gptcourse")
            if not package:
                continue
            dotted = (node.module or "").split(".") if node.level == 1 else (node.module or "").split(".")[1:]
            if dotted and dotted[0]:
                names.append(dotted[0])
            else:  # from . import x, y / from gptcourse import x, y: the names may be modules
                names += [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name.split(".")[1] for alias in node.names if alias.name.startswith("gptcourse.")]
        for name in names:
            if name in modules:
                yield name, id(node) in top_level


def module_names() -> set[str]:
    return {path.stem for path in PACKAGE.glob("*.py")}


def import_graph(top_level_only: bool = False) -> dict[str, set[str]]:
    modules = module_names()
    return {
        name: {imported for imported, top in package_imports((PACKAGE / f"{name}.py").read_text(), modules) if top or not top_level_only}
        for name in modules
    }


def upward_edges(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{importer} ({_layer(importer)}) imports {imported} ({_layer(imported)})"
        for importer, imports in sorted(graph.items())
        for imported in sorted(imports)
        if rank(imported) > rank(importer)
    ]


def _layer(module: str) -> str:
    return "front door" if module == "__init__" else list(LAYERS)[rank(module)]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def closure(module: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = {module}, [module]
    while todo:
        for imported in graph[todo.pop()]:
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def lines(module: str) -> list[str]:
    return (PACKAGE / f"{module}.py").read_text().splitlines()


# ------------------------------------------------------------------------- the rules


def test_every_module_has_a_layer():
    placed = [m for members in LAYERS.values() for m in members]
    assert len(placed) == len(set(placed)), "a module is placed in two layers"
    unplaced = module_names() - set(placed) - {"__init__"}
    assert not unplaced, f"place these modules in a layer of LAYERS (tests/test_layers.py) and README's table: {sorted(unplaced)}"
    gone = set(placed) - module_names()
    assert not gone, f"LAYERS names modules that no longer exist: {sorted(gone)}"


def test_imports_point_down_the_layers():
    graph = import_graph()
    assert sum(map(len, graph.values())) > 50, "the parser found too few imports to be reading them right"
    assert not upward_edges(graph), "imports pointing up the layers:\n" + "\n".join(upward_edges(graph))


def test_there_is_no_import_cycle_even_inside_functions():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_no_module_is_too_long_to_read_in_one_sitting():
    long = {m: len(lines(m)) for m in module_names() if len(lines(m)) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by idea): {long}"


def long_docstrings(source: str, name: str) -> list[str]:
    """``name.function: N lines`` for each docstring of `source` over `MAX_DOCSTRING_LINES`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node):
            doc = node.body[0]
            length = doc.end_lineno - doc.lineno + 1
            if length > MAX_DOCSTRING_LINES:
                found.append(f"{name}.{getattr(node, 'name', '<module>')}: {length} lines")
    return found


def test_docstrings_say_what_and_why_in_a_few_lines():
    long = [found for m in sorted(module_names()) for found in long_docstrings("\n".join(lines(m)), m)]
    assert not long, "docstrings to shorten (the explanation belongs in the chapter):\n" + "\n".join(long)


def test_a_long_docstring_is_caught():
    essay = "def f():\n    \"\"\"One line.\n" + "    More.\n" * 10 + "    \"\"\"\n"
    assert long_docstrings(essay, "m") == ["m.f: 12 lines"]
    assert long_docstrings('"""Short."""\n', "m") == []


def test_model_py_stays_small_with_what_it_imports():
    graph = import_graph(top_level_only=True)
    needed = closure("model", graph)
    total = sum(len(lines(m)) for m in needed)
    assert total <= MAX_MODEL_CLOSURE_LINES, f"model.py pulls in {total} lines: {sorted(needed)}"


def test_what_a_student_opens_fits_the_book_column():
    wide = [
        f"gptcourse/{m}.py:{n}: {len(line)} columns"
        for layer in STUDENT_LAYERS
        for m in LAYERS[layer]
        for n, line in enumerate(lines(m), 1)
        if len(line) > COLUMNS
    ]
    assert not wide, f"lines wider than {COLUMNS} columns:\n" + "\n".join(wide[:40])


def printed_sources() -> list[str]:
    """The names whose source a notebook prints with ``inspect.getsource(name)``."""
    names = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                names += re.findall(r"inspect\.getsource\((\w+)\)", "".join(cell["source"]))
    return names


def definition(name: str) -> tuple[str, ast.AST]:
    for module in sorted(module_names()):
        for node in ast.parse((PACKAGE / f"{module}.py").read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                return module, node
    raise LookupError(name)


def test_code_a_notebook_prints_fits_the_book_column():
    names = printed_sources()
    assert names, "no notebook prints package code with inspect.getsource: update this test"
    for name in names:
        module, node = definition(name)
        source = lines(module)[node.lineno - 1 : node.end_lineno]
        wide = [line for line in source if len(line) > COLUMNS]
        assert not wide, f"{module}.{name}, printed by a notebook, has lines over {COLUMNS} columns: {wide}"


# ---------------------------------------------- the checks above can fail: proof on fakes


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from .model import GPT\n", [("model", True)]),
        ("from . import model, os\n", [("model", True)]),
        ("import gptcourse.model\n", [("model", True)]),
        ("from gptcourse import model\n", [("model", True)]),
        ("from gptcourse.model import GPT\n", [("model", True)]),
        ("def f():\n    from .model import GPT\n", [("model", False)]),
        ("class C:\n    def f(self):\n        import gptcourse.model\n", [("model", False)]),
        ("import os\nfrom torch import nn\n", []),
    ],
)
def test_the_parser_finds_every_spelling_of_an_import(source, expected):
    assert list(package_imports(source, {"model"})) == expected


def test_an_upward_import_inside_a_function_is_caught():
    graph = {"config": {"model"}, "model": set()}  # a base module reaching up, lazily
    assert upward_edges(graph) == ["config (base) imports model (model)"]


def test_a_cycle_through_three_modules_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
