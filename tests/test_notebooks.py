"""The notebooks' form: no outputs, the Colab cell, the header, the table of contents.

(Running them is nbval's job: `make nbval`.)
"""

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]


def load(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks/NN_name.ipynb found"


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
    assert meta["chapter"] == int(path.name[:2])
    assert meta["objectives"] and meta["prerequisites"] and meta["runtime"]["cpu"] and meta["runtime"]["t4"]
    header = nb.cells[0]
    assert header.cell_type == "markdown" and header.source.startswith(f"# {meta['chapter']}. {meta['title']}")
    for item in [*meta["objectives"], *meta["prerequisites"], meta["runtime"]["cpu"], meta["runtime"]["t4"]]:
        assert item in header.source, f"{path.name}: the header cell does not say {item!r}, which the metadata does"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_have_hidden_solutions_and_checks(path):
    nb = load(path)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    exercises = re.findall(r"\{exercise\}[^\n]*\n:label: (\S+)", text)
    assert len(exercises) >= 3, f"{path.name}: {len(exercises)} exercises, at least 3 expected"
    solved = re.findall(r"\{solution(?:-start)?\} (\S+)\n:class: dropdown", text)
    assert sorted(solved) == sorted(exercises), f"{path.name}: every exercise needs exactly one dropdown solution"
    for cell in code_cells(nb):
        if "solution" in cell.metadata.get("tags", []):
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source


def test_toc_lists_every_chapter_in_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    chapters = [f for f in files if f.startswith("notebooks/")]
    assert chapters == sorted(chapters), "chapters must appear in reading order"
    assert chapters == [f"notebooks/{p.stem}" for p in NOTEBOOKS], "_toc.yml and notebooks/ must list the same chapters"
    for f in files:
        assert (ROOT / f"{f}.ipynb").exists() or (ROOT / f"{f}.md").exists(), f"{f} is in _toc.yml but missing"
