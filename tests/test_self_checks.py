"""Every exercise's self-check fails on the plausible wrong answer it is about.

`tests/wrong_answers/<notebook>.py` holds, per exercise, one mistake a student is likely to
make and code that makes it. Each notebook is handed to `tools/grade.py` as a submission whose
solution cells hold those wrong answers: every one of them must be graded `fail` (its released
self-check raised), never `pass`, and not `error` or `timeout` (which would prove nothing).
And each chapter as released, solutions in place, is graded `pass` on every exercise.
"""

from __future__ import annotations

import csv
import os
import runpy
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
WRONG_DIR = Path(__file__).resolve().parent / "wrong_answers"
sys.path.insert(0, str(ROOT / "tools"))

from course import exercises, notebook_paths  # noqa: E402

NOTEBOOKS = notebook_paths(ROOT)


def wrong_answers(notebook: Path) -> dict[str, tuple[str, str]]:
    """{exercise: (the mistake, in words; the code that makes it)} for one notebook."""
    path = WRONG_DIR / f"{notebook.stem}.py"
    return runpy.run_path(str(path))["WRONG_ANSWERS"] if path.exists() else {}


def submission(notebook: Path, answers: dict[str, tuple[str, str]]):
    """The notebook with each listed exercise's solution replaced by its wrong answer."""
    nb = nbformat.read(notebook, as_version=4)
    for exercise in exercises(nb):
        if exercise.number in answers:
            first, *rest = exercise.solutions
            nb.cells[first].source = answers[exercise.number][1]
            for index in rest:
                nb.cells[index].source = ""
    return nb


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_checked_exercise_has_a_wrong_answer(notebook):
    nb = nbformat.read(notebook, as_version=4)
    checked = {e.number for e in exercises(nb) if e.checks and e.solutions}
    answers = wrong_answers(notebook)
    assert checked <= set(answers), f"no wrong answer for {sorted(checked - set(answers))}"
    assert set(answers) <= checked, f"wrong answers for no exercise: {sorted(set(answers) - checked)}"
    for number, (mistake, source) in answers.items():
        assert mistake.strip() and source.strip(), f"{number}: say the mistake and write it"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_self_check_fails_on_its_wrong_answer(notebook, tmp_path):
    answers = wrong_answers(notebook)
    if not answers:
        pytest.skip(f"{notebook.name} has no exercise with a self-check")
    handed_in = tmp_path / notebook.name
    nbformat.write(submission(notebook, answers), handed_in)
    grades = tmp_path / "grades.csv"
    command = [sys.executable, str(ROOT / "tools" / "grade.py"), str(handed_in), "--csv", str(grades)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two graders share two cores
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    status = {row["exercise"]: row for row in csv.DictReader(grades.open(encoding="utf-8"))}
    for number, (mistake, _) in answers.items():
        row = status[f"Exercise {number}"]
        assert row["status"] == "fail", f"Exercise {number}, {mistake!r}: graded {row['status']} ({row['detail']})"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_chapter_s_own_solutions_pass(notebook, tmp_path):
    """The other half: the grader's walls (a checker process, the variables pickled over) must not
    fail a right answer. Chapter 8's variables once failed to load, and Exercise A.5's check
    could not read the function's source there: every exercise was graded fail on its solution."""
    if not any(e.checks for e in exercises(nbformat.read(notebook, as_version=4))):
        pytest.skip(f"{notebook.name} has no exercise with a self-check")
    grades = tmp_path / "grades.csv"
    command = [sys.executable, str(ROOT / "tools" / "grade.py"), str(notebook), "--csv", str(grades)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(grades.open(encoding="utf-8")))
    assert rows and all(r["status"] == "pass" for r in rows), [(r["exercise"], r["status"], r["detail"]) for r in rows if r["status"] != "pass"]
