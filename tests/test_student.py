"""The student edition (`make student`): no solution left, every answer cell open, a cell to
write in under every question asked in words, every self-check kept; `--chapters` picks
chapters. (That its checks then fail, and pass on the full chapter, is tests/test_grade.py's,
which grades both.)"""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from course import ASKS_IN_WORDS, WRITTEN_STUB, WRITTEN_TAG, exercises, notebook_paths, solution_code, tags  # noqa: E402
from student_edition import student_notebook, write_student_edition  # noqa: E402

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
    kept = [c.source for c in student.cells if "answer" not in tags(c) and WRITTEN_TAG not in tags(c)]
    kept[0] = kept[0].split("\n\n> **Student edition.**")[0]
    assert kept == others
    nbformat.validate(student)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_question_asked_in_words_gets_one_cell_to_answer_in(path):
    full = load(path)
    student = student_notebook(full)
    asked = [ex for ex in exercises(student) if ex.asks_in_words]
    assert [ex.number for ex in asked] == [ex.number for ex in exercises(full) if ex.asks_in_words]
    assert len([c for c in student.cells if WRITTEN_TAG in tags(c)]) == len(asked), "no written-answer cell outside an exercise"
    answers = [i for i, c in enumerate(student.cells) if "answer" in tags(c)]
    for ex in exercises(student):
        if not ex.asks_in_words:
            assert ex.written == [], f"{ex.name} asks nothing in words: no written-answer cell"
            continue
        assert len(ex.written) == 1, f"{ex.name} asks in words: exactly one written-answer cell, which the grader reads"
        (i,) = ex.written
        cell = student.cells[i]
        assert cell.cell_type == "markdown" and cell.source == WRITTEN_STUB and tags(cell) == [WRITTEN_TAG]
        own = [a for a in answers if ex.heading < a < ex.checks[0]]
        assert own and max(own) < i < ex.checks[0], f"{ex.name}: the written answer goes under the code answer, before the check"


def test_an_exercise_asked_in_words_only_gets_its_cell_under_the_heading():
    heading = nbformat.v4.new_markdown_cell("### Exercise 1.1 · Why\n\nExplain why.", metadata={"tags": [ASKS_IN_WORDS]})
    check = nbformat.v4.new_code_cell('print("✓ Exercise 1.1")', metadata={"tags": ["self-check"]})
    untagged = nbformat.v4.new_markdown_cell("### Exercise 1.2 · Say\n\nSay it.")  # no code, no tag: it still gets one
    student = student_notebook(nbformat.v4.new_notebook(cells=[heading, check, untagged]))
    assert [tags(c) for c in student.cells] == [[ASKS_IN_WORDS], [WRITTEN_TAG], ["self-check"], [], [WRITTEN_TAG]]
    assert [ex.written for ex in exercises(student)] == [[1], [4]]


def test_the_questions_asked_in_words_are_tagged():
    """The exercises known to ask for an answer in words, and any whose statement asks why, carry the tag."""
    found = {ex.number: ex for path in NOTEBOOKS for ex in exercises(load(path))}
    for number in ["1.3", "2.2", "4.1", "6.1", "7.3", "9.1", "B.4"]:
        assert found[number].asks_in_words, f"Exercise {number} asks a question in words: tag its heading {ASKS_IN_WORDS!r}"
    for ex in found.values():
        if re.search(r"\b[Ww]hy\b[^.?]*\?", ex.statement):
            assert ex.asks_in_words, f"{ex.name} asks why: tag its heading cell {ASKS_IN_WORDS!r} so the student edition has a cell for the answer"


def test_the_edition_is_the_same_each_time():
    """Cell ids come from the notebook, so writing the edition again changes no file."""
    for path in NOTEBOOKS:
        assert student_notebook(load(path)) == student_notebook(load(path))


def run_tool(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "student_edition.py"), *args], capture_output=True, text=True)


def test_chapters_picks_only_those(tmp_path):
    done = run_tool("--out", str(tmp_path), "--chapters", "04,a")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == ["04_multihead.ipynb", "appendix_a_many_gpus.ipynb"]
    by_number = [p.name for p in write_student_edition(tmp_path / "again", chapters=["7", "B"])]
    assert by_number == ["07_training.ipynb", "appendix_b_modern_llm.ipynb"], "4 means 04, b means B; in reading order"


@pytest.mark.parametrize("chapters", ["11", "04,appendix", "Z", ""])
def test_a_chapter_that_does_not_exist_is_a_clear_error(tmp_path, chapters):
    done = run_tool("--out", str(tmp_path / "out"), "--chapters", chapters)
    assert done.returncode == 2, done.stdout
    assert "--chapters" in done.stderr and "01, 02" in done.stderr and "A, B" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists(), "nothing is written when a name is wrong"
    with pytest.raises(ValueError, match="the chapters are 01, 02"):
        write_student_edition(tmp_path / "out", chapters=chapters.split(","))


def test_the_tool_needs_only_nbformat(tmp_path):
    """`make student` can run in a small venv: writing the edition imports neither torch nor gptcourse."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tools')!r}); import student_edition; "
        f"student_edition.main(['--out', {str(tmp_path)!r}, '--chapters', '01']); "
        "heavy = sorted({'torch', 'gptcourse', 'numpy'} & set(sys.modules)); assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.glob("*.ipynb")] == ["01_tokens.ipynb"]


def test_make_student_writes_every_chapter(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools" / "student_edition.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    for path in tmp_path.glob("*.ipynb"):
        nb = load(path)
        assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
        assert "Student edition" in nb.cells[0].source
