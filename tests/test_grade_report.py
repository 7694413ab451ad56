"""tools/grade_report.py: whose notebook it is, what was attempted and written, and the CSV,
summary and feedback files an instructor gets, checked on small hand-made notebooks and rows."""

import copy
import csv
import os
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from course import ANSWER_TAG, WRITTEN_STUB, WRITTEN_TAG, answer_stub, exercises, notebook_paths  # noqa: E402
from grade_report import (  # noqa: E402
    COLUMNS,
    SUMMARY_COLUMNS,
    ReportError,
    Row,
    attempted,
    check_targets,
    notebook_row,
    points_of,
    rows_for,
    safe_name,
    student_of,
    write_csv,
    write_feedback,
    write_summary,
    written_answers,
)
from student_edition import student_notebook  # noqa: E402

SOLUTION = {"cellView": "form", "jupyter": {"source_hidden": True}, "tags": ["solution"]}
CHAPTER = Path("notebooks/04_fixture.ipynb")


def code(source, **metadata):
    return nbformat.v4.new_code_cell(source, metadata=metadata)


def md(source, **metadata):
    return nbformat.v4.new_markdown_cell(source, metadata=metadata)


def release_notebook():
    """A released chapter: 4.1 checked and worth 2 points; 4.2 checked, with code given in its
    statement, and asking why; 4.3 asked in words only, no check."""
    cells = [
        md("# 4. A fixture chapter"),
        code("x = 3"),
        md("### Exercise 4.1 · Double it\n\nStore twice `x` in `double`.", points=2),
        code("# @title Solution\ndouble = 2 * x", **SOLUTION),
        code('assert double == 2 * x, "double is twice x"\nprint("✓ Exercise 4.1")', tags=["self-check"]),
        md("### Exercise 4.2 · Square it\n\nStore `x` squared in `square`, using `sq`. Why not `x ^ 2`?", tags=["asks-in-words"]),
        code("def sq(v):\n    return v * v"),
        code("# @title Solution\nsquare = sq(x)", **SOLUTION),
        md("<details><summary>About the solution</summary>\n\n`x * x` works too.\n</details>"),
        code('assert square == x**2, "square is x squared"\nprint("✓ Exercise 4.2")', tags=["self-check"]),
        md("### Exercise 4.3 · Explain it\n\nWhy is doubling linear?", tags=["asks-in-words"]),
        code("# @title Solution\n# Because 2(a + b) = 2a + 2b.", **SOLUTION),
        md("## Summary\n\nThat was all."),
        code("summary = True"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["course"] = {"chapter": 4, "title": "A fixture chapter"}
    return nb


def student_edition():
    """The release as students get it (as tools/student_edition.py lays it out): each solution an
    answer cell holding its stub, then, for a question asked in words, a written-answer cell."""
    cells, heading = [], None
    for cell in release_notebook().cells:
        if cell.source.startswith("### Exercise"):
            heading = cell
        if "solution" in cell.metadata.get("tags", []):
            cells.append(code(answer_stub(f"Exercise {heading.source.split()[2]}"), tags=[ANSWER_TAG]))
            if "asks-in-words" in heading.metadata.get("tags", []):
                cells.append(md(WRITTEN_STUB, tags=[WRITTEN_TAG]))
        elif not cell.source.startswith("<details>"):
            cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells, metadata=release_notebook().metadata)


def cell_of(nb, text):
    """The index of the one cell of `nb` whose source contains `text`."""
    (index,) = [i for i, c in enumerate(nb.cells) if text in c.source]
    return index


def edit(nb, text, source):
    nb = copy.deepcopy(nb)
    nb.cells[cell_of(nb, text)].source = source
    return nb


def insert_after(nb, text, *cells):
    nb = copy.deepcopy(nb)
    at = cell_of(nb, text) + 1
    nb.cells[at:at] = list(cells)
    return nb


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


# -- whose notebook ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "chapter", "student"),
    [
        ("alice-04_multihead.ipynb", "04_multihead", "alice"),
        ("submissions/alice/04_multihead.ipynb", "04_multihead", "alice"),
        ("in/Alice Smith - 04_multihead (1).ipynb", "04_multihead", "Alice Smith"),
        ("in/bob_04_multihead.ipynb", "04_multihead", "bob"),
        ("in/bob04_multihead.ipynb", "04_multihead", "bob"),
        ("in/Zoë.04_multihead.ipynb", "04_multihead", "Zoë"),
        ("carol/bob2004_multihead.ipynb", "04_multihead", "carol"),  # 2004_ is no chapter 4
        ("dave/__04_multihead.ipynb", "04_multihead", "dave"),  # only separators before it
        ("in/erin-appendix_a_many_gpus.ipynb", "appendix_a_many_gpus", "erin"),
        ("in/frank-07_training.ipynb", None, "frank"),  # the chapter unknown: any NN_ ends the name
        ("/04_multihead.ipynb", "04_multihead", "04_multihead"),  # no folder name: the file's
    ],
)
def test_student_of(path, chapter, student):
    assert student_of(path, chapter) == student


def test_student_of_a_bare_name_is_the_folder_it_is_in(tmp_path, monkeypatch):
    (tmp_path / "grace").mkdir()
    monkeypatch.chdir(tmp_path / "grace")
    assert student_of("04_multihead.ipynb", "04_multihead") == "grace"


# -- attempted or not -------------------------------------------------------------------------


def test_the_untouched_student_edition_attempts_nothing():
    release, nb = release_notebook(), student_edition()
    assert [attempted(nb, release, n) for n in ("4.1", "4.2", "4.3")] == [False, False, False]
    assert written_answers(nb, release) == {}


def test_the_real_student_edition_attempts_nothing():
    """tools/student_edition.py's own output, so the two cannot drift apart."""
    release = release_notebook()
    nb = student_notebook(release)
    assert not any(attempted(nb, release, n) for n in ("4.1", "4.2", "4.3"))
    assert written_answers(nb, release) == {}


def test_the_real_student_edition_answered():
    release = release_notebook()
    nb = edit(student_notebook(release), answer_stub("Exercise 4.2"), "square = sq(x)")
    nb.cells[[i for i, c in enumerate(nb.cells) if c.source == WRITTEN_STUB][0]].source = "*Your answer:* `^` is xor."
    assert [attempted(nb, release, n) for n in ("4.1", "4.2", "4.3")] == [False, True, False]
    assert written_answers(nb, release) == {"4.2": "*Your answer:* `^` is xor."}


def test_the_solutions_attempt_everything():
    release = release_notebook()
    assert all(attempted(release, release, n) for n in ("4.1", "4.2", "4.3"))


@pytest.mark.parametrize(
    "source",
    [
        answer_stub("Exercise 4.1") + "\n\n",  # a blank line after it
        answer_stub("Exercise 4.1").replace("\n", "\n\n"),  # a blank line inside it
        "  " + answer_stub("Exercise 4.1").replace("\n", "   \n"),  # spaces around its lines
        answer_stub("Exercise 4.1").splitlines()[1],  # only its raise line left
        "",  # emptied
        "\n  \n",
    ],
)
def test_a_stub_left_in_place_is_not_an_attempt(source):
    release = release_notebook()
    assert not attempted(edit(student_edition(), answer_stub("Exercise 4.1"), source), release, "4.1")


def test_code_after_the_stub_is_an_attempt():
    release = release_notebook()
    nb = edit(student_edition(), answer_stub("Exercise 4.1"), answer_stub("Exercise 4.1") + "\ndouble = x + x")
    assert attempted(nb, release, "4.1")


def test_an_answer_in_a_new_cell_is_an_attempt():
    """The stub left alone, the answer written in a cell of its own below it (no tag)."""
    release = release_notebook()
    nb = insert_after(student_edition(), answer_stub("Exercise 4.1"), code("double = x + x"))
    assert attempted(nb, release, "4.1")
    assert not attempted(nb, release, "4.2")


def test_the_statements_given_code_and_the_checks_are_not_answers():
    release, nb = release_notebook(), student_edition()
    nb.cells[cell_of(nb, "assert square")].metadata["tags"] = []  # the check's tag lost on the way
    assert not attempted(nb, release, "4.2")


def test_code_after_the_chapters_prose_is_not_an_answer():
    release = release_notebook()
    nb = insert_after(student_edition(), "## Summary", code("double = 6"))
    assert not attempted(nb, release, "4.3")


def test_an_exercise_whose_heading_is_gone_counts_as_attempted():
    release, nb = release_notebook(), student_edition()
    del nb.cells[cell_of(nb, "### Exercise 4.1")]
    assert attempted(nb, release, "4.1")


# -- written answers --------------------------------------------------------------------------


def test_written_answers():
    release, nb = release_notebook(), student_edition()
    nb.cells[[i for i, c in enumerate(nb.cells) if c.source == WRITTEN_STUB][0]].source = "*Your answer:* `^` is xor."
    assert written_answers(nb, release) == {"4.2": "*Your answer:* `^` is xor."}
    assert attempted(nb, release, "4.2")  # in words only: the code stub is still there
    assert not attempted(nb, release, "4.3")


@pytest.mark.parametrize(
    ("source", "answer"),
    [
        (WRITTEN_STUB + " It scales sums.", "It scales sums."),  # typed after the stub, on its line
        (WRITTEN_STUB + "\n\nIt scales sums.\n", "It scales sums."),  # the stub kept, a line below
        ("It scales sums.", "It scales sums."),  # the stub replaced
        ("*Your answer:*", ""),  # the placeholder deleted, nothing written
        (WRITTEN_STUB + "\n\n", ""),
    ],
)
def test_a_written_answer_without_its_stub(source, answer):
    release = release_notebook()
    nb = student_edition()
    nb.cells[len(nb.cells) - 1 - [c.source for c in reversed(nb.cells)].index(WRITTEN_STUB)].source = source  # 4.3's
    assert written_answers(nb, release).get("4.3", "") == answer
    assert attempted(nb, release, "4.3") == bool(answer)


def test_a_written_answer_in_a_new_markdown_cell_is_collected():
    """The stub cell left alone, the answer in a Markdown cell of its own (no tag)."""
    release = release_notebook()
    nb = insert_after(student_edition(), "Why is doubling linear?", md("Because 2(a+b) = 2a+2b."))
    assert written_answers(nb, release) == {"4.3": "Because 2(a+b) = 2a+2b."}


def test_the_chapters_own_prose_is_never_a_written_answer():
    release = release_notebook()
    assert written_answers(release, release) == {}  # its discussion and summary are the chapter's


# -- rows -------------------------------------------------------------------------------------


def row(rows, exercise):
    (found,) = [r for r in rows if r.exercise == exercise]
    return found


def test_rows_for_the_untouched_edition_say_not_attempted():
    release, nb = release_notebook(), student_edition()
    results = {"4.1": ("fail", "NameError: name 'double' is not defined"), "4.2": ("fail", "NameError: name 'square' is not defined")}
    rows = rows_for("in/alice-04_fixture.ipynb", CHAPTER, release, nb, results)
    assert [(r.exercise, r.status, r.points, r.possible) for r in rows] == [
        ("Exercise 4.1", "not attempted", 0, 2),
        ("Exercise 4.2", "not attempted", 0, 1),
        ("Exercise 4.3", "not attempted", None, 1),
    ]
    assert {r.student for r in rows} == {"alice"} and {r.chapter for r in rows} == {"04_fixture"}
    assert "still holds the stub" in rows[0].detail and "NameError" in rows[0].detail


def test_rows_for_keep_the_checks_verdicts_where_the_student_wrote_something():
    release = release_notebook()
    nb = edit(student_edition(), answer_stub("Exercise 4.1"), "double = x + x")
    nb = edit(nb, answer_stub("Exercise 4.2"), answer_stub("Exercise 4.2") + "\nsquare = x ^ 2")
    results = {"4.1": ("pass", ""), "4.2": ("fail", "AssertionError: square is x squared")}
    rows = rows_for("bob/04_fixture.ipynb", CHAPTER, release, nb, results)
    assert (row(rows, "Exercise 4.1").status, row(rows, "Exercise 4.1").points) == ("pass", 2)
    second = row(rows, "Exercise 4.2")
    assert (second.status, second.points) == ("fail", 0)
    assert second.detail.startswith("AssertionError: square is x squared; ") and "raise NotImplementedError" in second.detail
    assert {r.student for r in rows} == {"bob"}


def test_a_passing_check_is_never_called_not_attempted():
    """The answer written before the exercise (outside its places): the check's pass stands."""
    release, nb = release_notebook(), student_edition()
    rows = rows_for(
        "in/alice-04_fixture.ipynb", CHAPTER, release, nb, {"4.1": ("pass", ""), "4.2": ("tampered", "its self-check was edited")}
    )
    assert [r.status for r in rows] == ["pass", "tampered", "not attempted"]


def test_rows_for_an_exercise_with_no_check_leave_its_points_to_the_instructor():
    release = release_notebook()
    nb = insert_after(student_edition(), "Why is doubling linear?", md("Because 2(a+b) = 2a+2b."))
    third = row(rows_for("carol/04_fixture.ipynb", CHAPTER, release, nb, {}), "Exercise 4.3")
    assert (third.status, third.points, third.possible, third.written, third.checked) == (
        "answered",
        None,
        1,
        "Because 2(a+b) = 2a+2b.",
        False,
    )


def test_points_come_from_the_release_never_the_submission():
    release, nb = release_notebook(), student_edition()
    nb.cells[cell_of(nb, "### Exercise 4.1")].metadata["points"] = 100
    nb = edit(nb, answer_stub("Exercise 4.1"), "double = 2 * x")
    assert row(rows_for("dave/04_fixture.ipynb", CHAPTER, release, nb, {"4.1": ("pass", "")}), "Exercise 4.1").points == 2


@pytest.mark.parametrize("points", [-1, "2", True, None])
def test_a_bad_points_value_is_named(points):
    release = release_notebook()
    release.cells[cell_of(release, "### Exercise 4.2")].metadata["points"] = points
    with pytest.raises(ValueError, match=r'Exercise 4\.2: its heading\'s metadata "points"'):
        points_of(release)


def test_rows_for_an_unreadable_notebook_and_an_unknown_status():
    release = release_notebook()
    rows = rows_for("erin/04_fixture.ipynb", CHAPTER, release, None, {"4.1": ("error", "not a readable notebook")})
    assert [r.status for r in rows] == ["error", "error", "error"]
    with pytest.raises(ValueError, match="unknown status 'passed'"):
        rows_for("erin/04_fixture.ipynb", CHAPTER, release, student_edition(), {"4.1": ("passed", "")})


# -- the CSV ----------------------------------------------------------------------------------


def some_rows():
    release = release_notebook()
    edition = student_edition()
    solved = edit(edition, answer_stub("Exercise 4.1"), "double = 2 * x")
    solved = edit(solved, answer_stub("Exercise 4.2"), "square = x ^ 2")
    solved = insert_after(solved, "Why is doubling linear?", md('=HYPERLINK("http://evil")\nit is.'))
    return [
        *rows_for("subs/alice/04_fixture.ipynb", CHAPTER, release, solved, {"4.1": ("pass", ""), "4.2": ("fail", "=1+1 is wrong")}),
        *rows_for(
            "-bob-04_fixture.ipynb", CHAPTER, release, edition, {"4.1": ("fail", "NameError: x"), "4.2": ("timeout", "ran past 600 s")}
        ),
        *rows_for(
            "subs/alice/07_fixture.ipynb", Path("notebooks/07_fixture.ipynb"), release, solved, {"4.1": ("pass", ""), "4.2": ("pass", "")}
        ),
        notebook_row("subs/carol/notes.ipynb", "error", "cannot tell which chapter this is"),
    ]


def test_write_csv(tmp_path):
    rows = some_rows()
    target = write_csv(tmp_path / "grades.csv", rows)
    lines = read_csv(target)
    assert lines[0] == COLUMNS
    assert len(lines) == 1 + len(rows)
    first = dict(zip(COLUMNS, lines[1]))
    assert first == {
        "student": "alice", "chapter": "04_fixture", "notebook": "subs/alice/04_fixture.ipynb", "exercise": "Exercise 4.1",
        "status": "pass", "points": "2", "possible": "2", "detail": "", "written": "",
    }  # fmt: skip
    assert lines[-1][:5] == ["carol", "", "subs/carol/notes.ipynb", "", "error"] and lines[-1][5:7] == ["", ""]
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left beside it


def test_no_csv_cell_reads_as_a_formula(tmp_path):
    cells = [cell for line in read_csv(write_csv(tmp_path / "grades.csv", some_rows()))[1:] for cell in line]
    assert (
        "'-bob-04_fixture.ipynb" in cells
        and "bob" in cells
        and "'=1+1 is wrong" in cells
        and '\'=HYPERLINK("http://evil")\nit is.' in cells
    )
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_write_csv_replaces_a_file_whole_or_not_at_all(tmp_path, monkeypatch):
    target = tmp_path / "grades.csv"
    target.write_text("the old grades\n")

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_csv(target, some_rows())
    assert target.read_text() == "the old grades\n" and list(tmp_path.iterdir()) == [target]


def test_write_csv_refuses_two_rows_for_one_exercise(tmp_path):
    rows = some_rows()
    with pytest.raises(ValueError, match="two rows for Exercise 4.1 of subs/alice/04_fixture.ipynb"):
        write_csv(tmp_path / "grades.csv", [*rows, rows[0]])


# -- the summary ------------------------------------------------------------------------------


def test_write_summary(tmp_path):
    lines = read_csv(write_summary(tmp_path / "summary.csv", some_rows()))
    assert lines[0] == SUMMARY_COLUMNS
    summary = [dict(zip(SUMMARY_COLUMNS, line)) for line in lines[1:]]
    assert [(s["student"], s["chapter"]) for s in summary] == [
        ("alice", "04_fixture"),
        ("alice", "07_fixture"),
        ("bob", "04_fixture"),
        ("carol", ""),
    ]
    alice4, alice7, bob, carol = summary
    assert [alice4[k] for k in ("passed", "checked", "points", "possible", "written")] == ["1", "2", "2", "3", "1"]
    assert alice4["note"] == "1 fail, 1 answered"
    assert [alice7[k] for k in ("passed", "checked", "points", "possible")] == ["2", "2", "3", "3"]
    assert [bob[k] for k in ("passed", "checked", "points", "possible", "written")] == ["0", "2", "0", "3", "0"]
    assert bob["note"] == "2 not attempted, 1 timeout"
    assert [carol[k] for k in ("passed", "checked", "points", "possible", "written")] == [""] * 5  # not graded: no made-up zero
    assert carol["note"] == "not graded: cannot tell which chapter this is"
    assert not [s for s in summary if s["student"] in ("bob", "carol") and s["chapter"] == "07_fixture"]  # never handed in: no line


def test_summary_sorts_students_whatever_their_case(tmp_path):
    rows = [notebook_row(f"in/{name}-04_x.ipynb", "error", "unreadable", CHAPTER) for name in ("bob", "Alice", "alice", "Carl")]
    lines = read_csv(write_summary(tmp_path / "s.csv", rows))
    assert [line[0] for line in lines[1:]] == ["Alice", "alice", "bob", "Carl"]


# -- feedback ---------------------------------------------------------------------------------


def test_write_feedback(tmp_path):
    files = write_feedback(tmp_path / "feedback", some_rows())
    assert sorted(files) == ["alice", "bob", "carol"]
    assert {p.parent for p in files.values()} == {tmp_path / "feedback"}
    alice = files["alice"].read_text(encoding="utf-8")
    assert alice.startswith("# Feedback for alice\n")
    assert alice.index("## 04_fixture") < alice.index("## 07_fixture")
    assert "Notebook `04_fixture.ipynb`: 1 of 2 checks pass, 2 of 3 points." in alice
    assert "- ✓ **Exercise 4.1** (2 of 2 points): its check passed" in alice
    assert "- ✗ **Exercise 4.2** (0 of 1 point): its check failed: `=1+1 is wrong`" in alice
    assert "- • **Exercise 4.3** (1 point, marked by hand): answered; your instructor reads it\n" in alice
    assert '### Your written answers\n\n**Exercise 4.3**\n\n> =HYPERLINK("http://evil")\n> it is.' in alice
    bob = files["bob"].read_text(encoding="utf-8")
    assert "- ○ **Exercise 4.1** (0 of 2 points): not attempted: nothing was written in place of the stub\n" in bob
    assert "- ○ **Exercise 4.3** (1 point, marked by hand): not attempted: nothing was written in place of the stub\n" in bob
    assert "the notebook ran out of time before this check: `ran past 600 s`" in bob
    assert "Your written answers" not in bob
    assert "was not graded: cannot tell which chapter this is" in files["carol"].read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "student",
    ["../../etc/passwd", "a/b", "Ada Lovelace", "..", ".hidden", "C:\\x", "con", "日本", "x" * 300, "a\nb"],
)
def test_feedback_file_names_are_safe(tmp_path, student):
    name = safe_name(student)
    assert name and len(name) <= 100 and "/" not in name and "\\" not in name and not name.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
    (path,) = write_feedback(tmp_path, [Row(student, "", "x.ipynb", "", "error", detail="unreadable")]).values()
    assert path.parent == tmp_path and path.read_text(encoding="utf-8").startswith(f"# Feedback for {student}")


def test_feedback_keeps_apart_names_that_would_share_a_file(tmp_path):
    students = ["a b", "a_b", "a/b", "Alice", "alice"]
    files = write_feedback(tmp_path, [Row(s, "", f"{i}.ipynb", "", "error", detail="unreadable") for i, s in enumerate(students)])
    names = [p.name.casefold() for p in files.values()]
    assert len(set(names)) == len(students)
    assert files["a_b"].name == "a_b.md" and files["Alice"].name == "Alice.md"
    assert files["alice"].name.startswith("alice-") and files["a b"].name.startswith("a_b-")


def test_a_detail_with_backticks_stays_one_code_span(tmp_path):
    rows = [Row("ann", "04_x", "ann/04_x.ipynb", "Exercise 4.1", "fail", 0, 1, "AssertionError: use ``sq`` not `^`")]
    text = write_feedback(tmp_path, rows)["ann"].read_text(encoding="utf-8")
    assert "its check failed: ``` AssertionError: use ``sq`` not `^` ```" in text


# -- where the reports go ---------------------------------------------------------------------


def test_check_targets_makes_missing_folders(tmp_path):
    check_targets(tmp_path / "out" / "grades.csv", tmp_path / "out" / "summary.csv", tmp_path / "out" / "feedback")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["feedback"]
    assert list((tmp_path / "out" / "feedback").iterdir()) == []  # the probe left nothing


def test_check_targets_names_each_problem_and_its_fix(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    notebook = tmp_path / "alice-04_x.ipynb"
    notebook.write_text("{}")
    cases = [
        ((tmp_path / "folder",), r"--csv .*folder is a folder: name a file in it, as in --csv .*folder/grades\.csv"),
        ((tmp_path / "file" / "grades.csv",), r"cannot write --csv's file in .*file: .*; choose a folder you can write to for --csv"),
        ((tmp_path / "g.csv", tmp_path / "file" / "s.csv"), r"cannot write --summary's file in .*file"),
        ((tmp_path / "g.csv", None, tmp_path / "file"), r"--feedback .*file is a file: name a folder"),
        ((tmp_path / "g.csv", None, tmp_path / "file" / "fb"), r"cannot write the feedback files in .*file/fb"),
        ((tmp_path / "g.csv", tmp_path / "g.csv"), r"--summary .*g\.csv is also --csv's: give each report its own path"),
        ((notebook,), r"--csv .*alice-04_x\.ipynb is one of the notebooks to grade"),
    ]
    for args, message in cases:
        with pytest.raises(ReportError, match=message):
            check_targets(*args, inputs=[notebook])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_check_targets_in_a_read_only_folder(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(ReportError, match=r"cannot write --csv's file in .*ro: Permission denied"):
        check_targets(tmp_path / "ro" / "grades.csv")


def test_every_chapter_student_edition_attempts_nothing_and_its_solutions_everything():
    """On the course's own chapters: no answer place is missed or made up, whatever their layout."""
    for path in notebook_paths():
        release = nbformat.read(path, as_version=4)
        edition, numbers = student_notebook(release), [ex.number for ex in exercises(release)]
        assert not [n for n in numbers if attempted(edition, release, n)], path.name
        assert [n for n in numbers if attempted(release, release, n)] == numbers, path.name
        assert written_answers(edition, release) == written_answers(release, release) == {}, path.name


def test_every_plausible_wrong_answer_counts_as_attempted():
    """tests/test_self_checks.py's wrong answers must stay `fail`: none may pass for an untouched stub."""
    from test_self_checks import submission, wrong_answers

    for path in notebook_paths():
        if answers := wrong_answers(path):
            release, handed_in = nbformat.read(path, as_version=4), submission(path, answers)
            assert [n for n in answers if not attempted(handed_in, release, n)] == [], path.name


def test_a_chapter_handed_in_twice_gets_a_line_for_each_notebook(tmp_path):
    release, edition = release_notebook(), student_edition()
    rows = [
        *rows_for("in/ann/04_fixture.ipynb", CHAPTER, release, edition, {"4.1": ("fail", "NameError"), "4.2": ("fail", "NameError")}),
        *rows_for("in/ann-04_fixture (1).ipynb", CHAPTER, release, release, {"4.1": ("pass", ""), "4.2": ("pass", "")}),
    ]
    lines = read_csv(write_summary(tmp_path / "s.csv", rows))[1:]
    assert [line[:5] for line in lines] == [
        ["ann", "04_fixture", "in/ann-04_fixture (1).ipynb", "2", "2"],
        ["ann", "04_fixture", "in/ann/04_fixture.ipynb", "0", "2"],
    ]
