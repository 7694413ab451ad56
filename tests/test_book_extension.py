"""The book build's rewriting of plain notebook exercises into sphinx-exercise blocks, and each
chapter's "Open the exercises in Colab" link (tools/book_extension.py); tests/test_browser.py
checks what a reader then sees."""

import copy
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from sphinx.errors import ExtensionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from book_extension import STUDENT_LINK, add_student_links, copy_student_edition, fence, styled_exercises  # noqa: E402
from course import discussion_text, exercises, notebook_paths, solution_code  # noqa: E402

NOTEBOOKS = notebook_paths(ROOT)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_exercise_becomes_a_block_with_its_solution_in_a_dropdown(path):
    plain = nbformat.read(path, as_version=4)
    before = copy.deepcopy(plain)
    styled = styled_exercises(nbformat.from_dict(copy.deepcopy(plain)))
    assert plain == before, "the notebook read by others is unchanged"
    found = exercises(plain)
    markdown = [c.source for c in styled.cells if c.cell_type == "markdown"]
    text = "\n".join(markdown)
    assert not re.search(r"^### Exercise ", text, re.M), "no plain heading is left"
    assert "<details>" not in text and "# @title Solution" not in "\n".join(c.source for c in styled.cells)
    for ex in found:
        opening = [m for m in markdown if re.match(rf"`{{3,}}{{exercise}} {re.escape(ex.title)}\n:label: {ex.label}\n:nonumber:\n", m)]
        assert len(opening) == 1, f"{ex.name} is not one exercise block"
        assert ex.statement in opening[0]
        start = next(i for i, c in enumerate(styled.cells) if c.source.startswith(f"```{{solution-start}} {ex.label}\n:class: dropdown"))
        end = next(i for i in range(start, len(styled.cells)) if styled.cells[i].source.startswith("```{solution-end}"))
        inside = styled.cells[start + 1 : end]
        assert [c.source for c in inside if c.cell_type == "code"] == [solution_code(plain.cells[i].source) for i in ex.solutions]
        for i in ex.discussions:
            assert any(discussion_text(plain.cells[i]) == c.source for c in inside), f"{ex.name}'s discussion is not in its dropdown"
        check = plain.cells[ex.checks[0]].source
        assert styled.cells[end + 1].source == check, f"{ex.name}'s self-check follows its solution"
    # Every other cell is kept, in order.
    owned = {i for ex in found for i in (ex.heading, *ex.solutions, *ex.discussions)}
    kept = [c.source for i, c in enumerate(plain.cells) if i not in owned]
    assert [c.source for c in styled.cells if c.source in kept] == kept


def test_a_fence_outlasts_the_backticks_inside():
    assert fence("no code") == "```"
    assert fence("```python\nx\n```") == "````"


def theme_buttons():
    """The header buttons sphinx-book-theme makes for a notebook page: launch and download dropdowns."""
    return [
        {"type": "group", "label": "download-buttons", "buttons": [{"type": "link", "text": ".ipynb"}, {"type": "javascript", "text": ".pdf"}]},
        {"type": "group", "label": "launch-buttons", "buttons": [{"type": "link", "text": "Colab", "url": "https://colab.research.google.com/..."}]},
    ]


@pytest.fixture
def book(tmp_path):
    """A book's source folder with one chapter and its student notebook, and the app a page of it is written by."""
    for folder in ("notebooks", "student"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "04_multihead.ipynb").write_text("{}")
    options = {"repository_url": "https://github.com/someone/course", "repository_branch": "v0.2.0"}
    return SimpleNamespace(srcdir=str(tmp_path), outdir=str(tmp_path / "_build" / "html"), config=SimpleNamespace(html_theme_options=options), builder=SimpleNamespace(format="html"))


def page_context(buttons):
    return {"header_buttons": buttons, "pathto": lambda name, resource: f"../{name}"}


def test_a_chapter_gets_its_exercises_in_colab_and_for_download(book):
    context = page_context(theme_buttons())
    add_student_links(book, "notebooks/04_multihead", "page.html", context, None)
    groups = {g["label"]: g["buttons"] for g in context["header_buttons"]}
    launch = groups["launch-buttons"]
    assert [b["text"] for b in launch] == ["Colab", STUDENT_LINK] and STUDENT_LINK == "Open the exercises in Colab"
    assert launch[1]["url"] == "https://colab.research.google.com/github/someone/course/blob/v0.2.0/student/04_multihead.ipynb"
    assert [b["text"] for b in groups["download-buttons"]] == [".ipynb", ".ipynb (exercises)", ".pdf"]
    assert groups["download-buttons"][1]["url"] == "../student/04_multihead.ipynb"


def test_other_pages_are_left_alone(book):
    context = page_context(theme_buttons())
    add_student_links(book, "book/setup", "page.html", context, None)
    assert context["header_buttons"] == theme_buttons()


def test_a_chapter_without_its_student_notebook_fails_the_build(book):
    (Path(book.srcdir) / "student" / "04_multihead.ipynb").unlink()
    with pytest.raises(ExtensionError, match=r"student/04_multihead.ipynb is missing.*run `make student` and commit student/"):
        add_student_links(book, "notebooks/04_multihead", "page.html", page_context(theme_buttons()), None)


def test_a_theme_without_a_launch_dropdown_fails_the_build(book):
    with pytest.raises(ExtensionError, match="no launch dropdown"):
        add_student_links(book, "notebooks/04_multihead", "page.html", page_context(theme_buttons()[:1]), None)


def test_the_student_notebooks_are_copied_into_the_site(book):
    copy_student_edition(book, None)
    assert (Path(book.outdir) / "student" / "04_multihead.ipynb").read_text() == "{}"
