"""The book build's rewriting of plain notebook exercises into sphinx-exercise blocks
(tools/book_extension.py); tests/test_browser.py checks what a reader then sees."""

import copy
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from book_extension import fence, styled_exercises  # noqa: E402
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
