"""The notebooks' form: no outputs, the Colab cell, the header, the table of contents.

(Running them is nbval's job: `make nbval`.)
"""

import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from markdown_it.renderer import RendererHTML
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.mdit import create_md_parser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from course import (  # noqa: E402
    MYST_FENCE,
    SOLUTION_METADATA,
    SOLUTION_TITLE,
    appendix_paths,
    chapter_heading,
    chapter_paths,
    check_message,
    exercises,
    is_check,
    is_solution,
    notebook_paths,
    read_chapter,
)

NOTEBOOKS = notebook_paths(ROOT)  # the chapters, then the appendices
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]
# The parser the book reads the notebooks' Markdown with (MyST, with _config.yml's extensions):
# what it takes for a role is what Colab and Jupyter show as raw text. A regex would also catch
# `{name}` followed by a backtick inside code or math, such as chapter 1's `\p{L}`.
MYST = create_md_parser(MdParserConfig(enable_extensions=set(CONFIG["parse"]["myst_enable_extensions"])), RendererHTML)


def load(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_chapters_and_appendices():
    chapters, appendices = chapter_paths(ROOT), appendix_paths(ROOT)
    assert [int(p.name[:2]) for p in chapters] == list(range(1, 11)), "chapters 1-10 are notebooks/NN_name.ipynb"
    letters = [p.name.split("_")[1] for p in appendices]
    assert letters == [chr(ord("a") + i) for i in range(len(letters))], "appendices are appendix_a_..., appendix_b_..., in order"
    stray = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb") if p not in NOTEBOOKS)
    assert not stray, f"notebooks that are neither a chapter (NN_name) nor an appendix (appendix_x_name): {stray}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for i, cell in enumerate(code_cells(load(path))):
        assert cell.outputs == [], f"{path.name}: code cell {i} has outputs; clear them (the book build executes notebooks)"
        assert cell.execution_count is None, f"{path.name}: code cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_installs_from_the_configured_repository(path):
    first = code_cells(load(path))[0]
    assert "colab-install" in first.metadata.get("tags", []), f"{path.name}: the first code cell must be the Colab install cell"
    assert '"google.colab" in sys.modules' in first.source, "the install must only run inside Colab"
    assert 'find_spec("gptcourse") is None' in first.source, "and only when gptcourse is missing"
    urls = re.findall(r"git\+(\S+?)@", first.source)
    assert urls == [REPO_URL], f"{path.name} installs from {urls}, but _config.yml's repository.url is {REPO_URL}"
    assert f"@{CONFIG['repository']['branch']}" in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_header_agrees_with_metadata(path):
    nb = load(path)
    meta = nb.metadata.get("course")
    assert meta, f"{path.name}: notebook metadata 'course' is missing (see CONTRIBUTING.md)"
    if path in appendix_paths(ROOT):
        assert meta["chapter"] == path.name.split("_")[1].upper(), f"{path.name}: an appendix's 'chapter' is its letter"
    else:
        assert meta["chapter"] == int(path.name[:2])
    assert meta["objectives"] and meta["prerequisites"] and meta["runtime"]["cpu"] and meta["runtime"]["t4"]
    header = nb.cells[0]
    assert header.cell_type == "markdown" and header.source.startswith(f"# {chapter_heading(meta['chapter'], meta['title'])}\n")
    for item in [*meta["objectives"], *meta["prerequisites"], meta["runtime"]["cpu"], meta["runtime"]["t4"]]:
        assert item in header.source, f"{path.name}: the header cell does not say {item!r}, which the metadata does"


def myst_syntax(nb):
    """Each MyST directive fence and inline role ({cite}`...`, {ref}`...`, ...) in the Markdown of `nb`."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        found += [f"markdown cell {i}: directive {m.group(0).strip()}" for m in MYST_FENCE.finditer(cell.source)]
        tokens = MYST.parse(cell.source)
        while tokens:
            token = tokens.pop()
            tokens += token.children or []
            if token.type == "myst_role":
                found.append(f"markdown cell {i}: role {{{token.meta['name']}}}`{token.content}`")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_has_no_myst_directives_or_roles(path):
    """Students read the notebooks in Colab and Jupyter, where a directive or a role shows as raw text."""
    found = myst_syntax(load(path))
    assert not found, (
        f"{path.name} has MyST syntax that Colab shows raw: {found}. Write plain Markdown: a citation as "
        "[Vaswani et al. (2017)](https://arxiv.org/abs/1706.03762), a cross-reference as a link (see CONTRIBUTING.md)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_in_nbformat_s_own_layout(path):
    """`make release` and `make repository` rewrite notebooks with nbformat: a notebook saved in
    another layout (keys unsorted, by a script's json.dump) would change on every line there."""
    text = path.read_text(encoding="utf-8")
    assert text in (nbformat.writes(load(path)), nbformat.writes(load(path)) + "\n"), (
        f"{path.name}: write it with nbformat.write (sorted keys, indent 1), as Jupyter does"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_hold_no_control_characters(path):
    r"""A backslash meant for LaTeX can reach a cell as a control character: "\times" in a
    plain Python string (a notebook written by a script) is a tab and "imes"; "\beta" a backspace."""
    found = [
        f"cell {i}: {ch!r} in ...{cell.source[max(0, at - 20):at + 20]!r}..."
        for i, cell in enumerate(load(path).cells)
        for at, ch in enumerate(cell.source)
        if ord(ch) < 32 and ch != "\n"
    ]
    assert not found, f"{path.name}: {found[:5]}"


@pytest.mark.parametrize(
    "planted",
    [
        "As {cite}`vaswani2017attention` show.", "As {cite:t}`a,b` show.", "See {ref}`ex-4-2`.", "By {eq}`softmax`,",
        "Figure {numref}`fig-1` shows", "See {doc}`references`.", "Any {any-name}``two ticks`` role.",
        "```{note}\nA note.\n```", ":::{admonition} Why\nText.\n:::",
    ],
)
def test_the_check_finds_planted_myst_syntax(planted):
    nb = load(NOTEBOOKS[0])
    assert not myst_syntax(nb)
    nb.cells[0].source += f"\n\n{planted}\n"
    assert myst_syntax(nb), f"{planted!r} in a markdown cell should be caught"


def test_code_and_math_are_not_taken_for_roles():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "The pattern's `\\p{L}` and ``{cite}`x` `` are code; $x_{t}`$ is math; a [link](https://example.org).\n\n"
        "```python\n{cite}`in_a_fence`\n```"
    )])
    assert myst_syntax(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_are_numbered_solved_out_of_sight_and_checked(path):
    nb = load(path)
    chapter = nb.metadata["course"]["chapter"]
    found = exercises(nb)
    assert len(found) >= 3, f"{path.name}: {len(found)} exercises, at least 3 expected"
    assert [e.number for e in found] == [f"{chapter}.{k}" for k in range(1, len(found) + 1)], "Exercise N.1, N.2, ... in order"
    for ex in found:
        assert ex.title and ex.statement, f"{ex.name} needs a title and a statement"
        assert ex.solutions, f"{ex.name} has no solution cell"
        for i in ex.solutions:
            cell = nb.cells[i]
            assert cell.source.startswith(SOLUTION_TITLE + "\n"), f"{ex.name}: a solution cell starts with {SOLUTION_TITLE!r}"
            for key, value in SOLUTION_METADATA.items():
                assert cell.metadata.get(key) == value, f"{ex.name}: a solution cell needs {key}: {value} (collapsed in Colab and Jupyter)"
        assert len(ex.checks) == 1, f"{ex.name} needs one self-check cell"
        last_line = nb.cells[ex.checks[0]].source.strip().splitlines()[-1]
        assert last_line == f'print("{check_message(ex.number)}")', f"{ex.name}'s self-check should end by printing {check_message(ex.number)!r}"
    owned = {i for ex in found for i in (*ex.solutions, *ex.checks)}
    for i, cell in enumerate(nb.cells):
        if is_solution(cell) or is_check(cell):
            assert i in owned, f"{path.name}: code cell {i} is tagged as a solution or self-check but follows no exercise"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_refers_to_exercises_by_their_numbers(path):
    for cell in load(path).cells:
        if cell.cell_type == "markdown":
            loose = re.findall(r"\b[Ee]xercises? \d+\b(?!\.\d)", cell.source)
            assert not loose, f"{path.name}: say 'Exercise N.k', not {loose}"


def test_only_gpu_chapters_ask_colab_for_a_gpu():
    """A GPU chapter says so in its metadata; the set-up page names exactly those chapters."""
    gpu = [read_chapter(p) for p in NOTEBOOKS if load(p).metadata.get("accelerator") == "GPU"]
    assert gpu, "the measurement chapters use a GPU"
    for path in NOTEBOOKS:
        meta = load(path).metadata
        asks = meta.get("accelerator") == "GPU" or "gpuType" in meta.get("colab", {})
        assert asks == (meta.get("accelerator") == "GPU" and meta["colab"].get("gpuType") == "T4"), f"{path.name}: accelerator and colab.gpuType disagree"
    setup = (ROOT / "book" / "setup.md").read_text()
    listed = re.search(r"GPU chapters: ([^.]*)\.", setup)
    assert listed, "book/setup.md should say which chapters ask for a GPU ('GPU chapters: ...')"
    named = [int(n) if n.isdigit() else n for n in re.findall(r"(?:chapter|appendix) (\d+|[A-Z]\b)", listed[1], re.I)]
    assert named == [ch.number for ch in gpu], f"setup.md names chapters {named}; the notebooks asking for a GPU are {[ch.number for ch in gpu]}"


def test_toc_lists_every_chapter_in_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    chapters = [f for f in files if f.startswith("notebooks/")]
    assert chapters == [f"notebooks/{p.stem}" for p in NOTEBOOKS], "_toc.yml and notebooks/ must list the same chapters, in reading order"
    appendices = next((part for part in toc["parts"] if part["caption"] == "Appendices"), None)
    assert appendices, "_toc.yml needs an 'Appendices' part"
    assert [ch["file"] for ch in appendices["chapters"]] == [f"notebooks/{p.stem}" for p in appendix_paths(ROOT)]
    before = [part for part in toc["parts"][: toc["parts"].index(appendices)]]
    assert f"notebooks/{chapter_paths(ROOT)[-1].stem}" == [ch["file"] for part in before for ch in part["chapters"] if ch["file"].startswith("notebooks/")][-1], (
        "chapter 10 is the last chapter before the appendices"
    )
    for f in files:
        assert (ROOT / f"{f}.ipynb").exists() or (ROOT / f"{f}.md").exists(), f"{f} is in _toc.yml but missing"
