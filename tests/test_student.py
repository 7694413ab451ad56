"""The student edition (`make student`): no solution left, every answer cell open, every
self-check kept. (That its checks then fail, and pass on the full chapter, is
tests/test_grade.py's, which grades both.)"""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from course import exercises, notebook_paths, solution_code, tags  # noqa: E402
from student_edition import student_notebook  # noqa: E402

NOTEBOOKS = notebook_paths(ROOT)


def load(path):
    return nbformat.read(path, as_version=4)


def sources(nb, tag):
    return [c.source for c in nb.cells if tag in tags(c)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_solution_is_left(path):
    full = load(path)
    student = student_notebook(full)
    text = "\n".join(c.source for c in student.cells)
    assert "# @title Solution" not in text and "<details>" not in text
    assert not sources(student, "solution"), "a solution cell is left"
    for ex in exercises(full):
        for i in ex.solutions:
            code = solution_code(full.cells[i].source).strip()
            assert code not in text, f"{ex.name}'s solution is still in the student edition"
        for i in ex.discussions:
            assert full.cells[i].source.strip() not in text, f"{ex.name}'s discussion is left"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_answer_cells_are_open_and_name_their_exercise(path):
    full, student = load(path), student_notebook(load(path))
    answers = [c for c in student.cells if "answer" in tags(c)]
    solved = [ex for ex in exercises(full) for _ in ex.solutions]
    assert len(answers) == len(solved), "one answer cell for each solution cell"
    for cell, ex in zip(answers, solved, strict=True):
        assert cell.source.startswith("# YOUR CODE HERE\nraise NotImplementedError(")
        assert f'"{ex.name}: ' in cell.source, f"the stub should name {ex.name}"
        assert "cellView" not in cell.metadata and "jupyter" not in cell.metadata, "an answer cell is shown open"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_self_checks_and_exercises_are_kept(path):
    full = load(path)
    student = student_notebook(full)
    assert sources(student, "self-check") == sources(full, "self-check"), "the self-check cells must stay exactly as they are"
    assert [(e.number, e.title, e.statement) for e in exercises(student)] == [(e.number, e.title, e.statement) for e in exercises(full)]
    assert all(e.checks for e in exercises(student)), "each exercise keeps its check"
    # Everything that is not a solution or its discussion is unchanged, in order.
    owned = {i for e in exercises(full) for i in (*e.solutions, *e.discussions)}
    others = [c.source for i, c in enumerate(full.cells) if i not in owned]
    kept = [c.source for c in student.cells if "answer" not in tags(c)]
    kept[0] = kept[0].split("\n\n> **Student edition.**")[0]
    assert kept == others
    nbformat.validate(student)


def test_make_student_writes_every_chapter(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools" / "student_edition.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    for path in tmp_path.glob("*.ipynb"):
        nb = load(path)
        assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
        assert "Student edition" in nb.cells[0].source
