"""The student edition (`make student`): no solution left, every self-check kept, and the checks
fail until the exercises are done."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from course import SOLUTION_END, SOLUTION_START, notebook_paths, tags  # noqa: E402
from grade import run_checks  # noqa: E402
from student_edition import student_notebook  # noqa: E402

NOTEBOOKS = notebook_paths(ROOT)
REGION = re.compile(r"^[ \t]*### BEGIN SOLUTION[^\n]*\n(.*?)^[ \t]*### END SOLUTION", re.M | re.S)


def load(path):
    return nbformat.read(path, as_version=4)


def sources(nb, tag):
    return [c.source for c in nb.cells if tag in tags(c)]


def gated_markdown(nb):
    """The markdown cells inside {solution-start} ... {solution-end}: the solutions' prose."""
    inside, found = False, []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and SOLUTION_START.search(cell.source):
            inside = True
        elif cell.cell_type == "markdown" and SOLUTION_END.search(cell.source):
            inside = False
        elif inside and cell.cell_type == "markdown":
            found.append(cell.source)
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_solution_is_left(path):
    full = load(path)
    student = student_notebook(full)
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, "a solution marker is left"
    assert not re.search(r"\{solution(-start|-end)?\}", text), "a solution directive is left"

    # What lay between the markers is gone: each solution cell keeps only its lines outside them, and the stub.
    full_cells = sources(full, "solution")
    student_cells = sources(student, "solution")
    assert len(student_cells) == len(full_cells), "every solution cell stays, as a stub to fill in"
    for before, after in zip(full_cells, student_cells, strict=True):
        assert "# YOUR CODE HERE" in after and "raise NotImplementedError(" in after
        kept = {line.strip() for line in REGION.sub("", before).splitlines()}
        stub = {"# YOUR CODE HERE"} | {line.strip() for line in after.splitlines() if line.lstrip().startswith("raise NotImplementedError(")}
        assert {line.strip() for line in after.splitlines()} <= kept | stub, f"solution code is left in:\n{after}"
        for region in REGION.findall(before):
            if region.strip().count("\n") >= 1:  # (a one-line answer may well occur elsewhere too)
                assert region.strip() not in text, f"the solution\n{region}\nis still in the student edition"
    for prose in gated_markdown(full):
        if len(prose.strip()) > 40:
            assert prose.strip() not in text, f"a solution's explanation is left:\n{prose}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_self_checks_and_exercises_are_kept(path):
    full = load(path)
    student = student_notebook(full)
    assert sources(student, "self-check") == sources(full, "self-check"), "the self-check cells must stay exactly as they are"
    assert sources(full, "self-check"), f"{path.name} has no self-check cell"
    text = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    titles = re.findall(r"\{exercise(?:-start)?\}[ \t]*([^\n]*)", "\n".join(c.source for c in full.cells if c.cell_type == "markdown"))
    for number, title in enumerate(titles, 1):
        assert f"### Exercise {number}: {title.strip()}" in text, f"exercise {number} ({title}) is missing"
    # Everything that is not a solution is unchanged.
    others = [c.source for c in full.cells if c.cell_type == "code" and "solution" not in tags(c)]
    assert [c.source for c in student.cells if c.cell_type == "code" and "solution" not in tags(c)] == others
    nbformat.validate(student)


def test_make_student_writes_every_chapter(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools" / "student_edition.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    for path in tmp_path.glob("*.ipynb"):
        nb = load(path)
        assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
        assert "Student edition" in nb.cells[0].source


def test_checks_fail_until_the_exercises_are_done(tmp_path):
    """Chapter 1, run for real: its self-checks pass on the full edition and fail on the student's."""
    chapter = next(p for p in NOTEBOOKS if p.name.startswith("01_"))
    student = tmp_path / chapter.name
    nbformat.write(student_notebook(load(chapter)), student)

    full_checks = run_checks(chapter)
    assert full_checks and all(c.passed for c in full_checks), [c for c in full_checks if not c.passed]
    student_checks = run_checks(student)
    assert len(student_checks) == len(full_checks)
    passing = [c.exercise for c in student_checks if c.passed]
    assert not passing, f"these checks pass with no answer given: {passing}"
