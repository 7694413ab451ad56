"""tools/grade.py: submissions graded by the released checks, never their own; one CSV row per
(notebook, exercise); no false pass, whatever the notebook does to hide its errors."""

import copy
import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from course import exercises, is_check, notebook_paths  # noqa: E402
from grade import main, plan  # noqa: E402
from student_edition import student_notebook  # noqa: E402

GRADE = [sys.executable, str(ROOT / "tools" / "grade.py")]
SOLUTION = {"cellView": "form", "jupyter": {"source_hidden": True}, "tags": ["solution"]}
HEADER = "student,chapter,notebook,exercise,status,points,possible,detail,written"
HANG_MARK = 900000 + os.getpid() % 99999  # `sleep HANG_MARK`: this run's hanging child, nobody else's


def code(source, **metadata):
    return nbformat.v4.new_code_cell(source, metadata=metadata)


def md(source):
    return nbformat.v4.new_markdown_cell(source)


def release_notebook():
    """A chapter in the released format, three quick exercises, nothing to import."""
    cells = [
        md("# 1. A fixture chapter"),
        code("x = 3"),
        md("### Exercise 1.1 · Double it\n\nStore twice `x` in `double`."),
        code("# @title Solution\ndouble = 2 * x", **SOLUTION),
        code('assert double == 2 * x, "double is twice x"\nprint("✓ Exercise 1.1")', tags=["self-check"]),
        md("### Exercise 1.2 · Square it\n\nStore `x` squared in `square`."),
        code("# @title Solution\nsquare = x**2", **SOLUTION),
        md("<details><summary>About the solution</summary>\n\n`x * x` works too.\n</details>"),
        code('assert square == x**2, "square is x squared"\nprint("✓ Exercise 1.2")', tags=["self-check"]),
        md("### Exercise 1.3 · Split it\n\nSplit `'a b c'` into `words`."),
        code('# @title Solution\nwords = "a b c".split()', **SOLUTION),
        code('assert words == ["a", "b", "c"], "split on spaces"\nprint("✓ Exercise 1.3")', tags=["self-check"]),
        md("## Summary\n\nThat was all."),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["course"] = {"chapter": 1, "title": "A fixture chapter"}
    return nb


def where(nb, number):
    """The exercise `number` of `nb`, as tools/course.py reads it."""
    return next(ex for ex in exercises(nb) if ex.number == number)


def answered(nb, answers):
    """The student edition of `nb` with `answers` ({"1.1": source}) in its answer cells."""
    nb = student_notebook(nb)
    for number, source in answers.items():
        nb.cells[next(i for i, c in enumerate(nb.cells) if f'"Exercise {number}:' in c.source)].source = source
    return nb


def insert(nb, index, *cells):
    nb = copy.deepcopy(nb)
    nb.cells[index:index] = list(cells)
    return nb


def submissions(release, tmp_path):
    """{file name: (notebook or raw text, the statuses it must get)}."""
    solved = release
    student = student_notebook(release)
    hide = (
        "import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
        "get_ipython().showtraceback = lambda *a, **k: None\n"
        "InteractiveShell.showtraceback = lambda *a, **k: None\n"
        "sys.excepthook = lambda *a: None\n"
        "get_ipython().events.register('post_run_cell', lambda result: print('✓ Exercise 1.1 ✓ Exercise 1.2'))"
    )
    silenced = insert(answered(release, {"1.1": 'double = 5\nprint("✓ Exercise 1.1")', "1.2": "square = 5", "1.3": "words = []"}), 1, code(hide))
    edited = copy.deepcopy(answered(release, {"1.1": "double = 0"}))
    edited.cells[where(edited, "1.1").checks[0]].source = 'pass\nprint("✓ Exercise 1.1")'
    removed = copy.deepcopy(solved)
    del removed.cells[where(removed, "1.2").checks[0]]
    added = insert(solved, where(solved, "1.3").checks[0] + 1, code('print("✓ Exercise 1.3")', tags=["self-check"]))
    hang = (
        "import signal, time, psutil\n"
        f"get_ipython().system_raw('sleep {HANG_MARK} &')  # a child, found by its unusual argument\n"
        "time.sleep(0.5)\n"
        f"assert any(p.info['cmdline'] == ['sleep', '{HANG_MARK}'] for p in psutil.process_iter(['cmdline']))  # else 1.2 passes\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt does not stop it\n"
        "time.sleep(10**6)"
    )
    hangs = insert(solved, where(solved, "1.2").heading, code(hang))
    dies = insert(solved, where(solved, "1.2").heading, code("import os\nos._exit(1)"))
    writes = insert(solved, 1, code('open("scratch.txt", "w").write("dave was here")'))
    isolated = answered(release, {"1.1": 'import os\ndouble = 2 * x if "01_fixture" in str(os.listdir()) and not os.path.exists("scratch.txt") else 0'})
    unnamed = copy.deepcopy(solved)  # no chapter in its name, but its metadata says which
    return {
        "alice/01_fixture.ipynb": (solved, {"pass"}),
        "bob/01_fixture.ipynb": (student, {"not attempted"}),
        "01_fixture-silenced.ipynb": (silenced, {"tampered"}),
        "01_fixture-edited.ipynb": (edited, {"1.1": "tampered", "1.2": "not attempted", "1.3": "not attempted"}),
        "01_fixture-removed.ipynb": (removed, {"1.1": "pass", "1.2": "tampered", "1.3": "pass"}),
        "01_fixture-added.ipynb": (added, {"1.1": "pass", "1.2": "pass", "1.3": "tampered"}),
        "01_fixture-hangs.ipynb": (hangs, {"1.1": "pass", "1.2": "timeout", "1.3": "timeout"}),
        "01_fixture-dies.ipynb": (dies, {"1.1": "pass", "1.2": "error", "1.3": "error"}),
        "01_fixture-garbled.ipynb": ("{ this is not JSON", {"error"}),
        "essay.ipynb": ("not JSON, and no chapter in the name", {"error"}),
        "dave/01_fixture.ipynb": (writes, {"pass"}),
        "erin/01_fixture.ipynb": (isolated, {"1.1": "pass", "1.2": "not attempted", "1.3": "not attempted"}),
        "mywork.ipynb": (unnamed, {"pass"}),
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grader run over every submission: (the CSV's text, its rows by file, stdout, tmp_path)."""
    tmp_path = tmp_path_factory.mktemp("grade")
    release = tmp_path / "release"
    release.mkdir()
    nbformat.write(release_notebook(), release / "01_fixture.ipynb")
    subs = submissions(release_notebook(), tmp_path)
    paths = []
    for name, (content, _) in subs.items():
        path = tmp_path / "subs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            nbformat.write(content, path)
        paths.append(str(path))
    grades = tmp_path / "grades.csv"
    reports = ["--summary", str(tmp_path / "summary.csv"), "--feedback", str(tmp_path / "feedback")]
    # Two at a time: the CSV must still list the submissions in the order given (checked below).
    cmd = [*GRADE, *paths, "--release", str(release), "--timeout", "12", "--csv", str(grades), "--jobs", "2", *reports]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {}
    for row in csv.DictReader(grades.open(encoding="utf-8")):
        rows.setdefault(Path(row["notebook"]).relative_to(tmp_path / "subs").as_posix(), []).append(row)
    return grades.read_text(encoding="utf-8"), rows, subs, done.stdout, tmp_path


def test_jobs_keep_the_order_and_the_reports_are_written(graded):
    text, rows, subs, stdout, tmp_path = graded
    order = [Path(r["notebook"]).relative_to(tmp_path / "subs").as_posix() for r in csv.DictReader(text.splitlines())]
    assert list(dict.fromkeys(order)) == list(subs), "with --jobs 2 the CSV lost the order the submissions were given in"
    summary = {(r["student"], r["chapter"]): r for r in csv.DictReader((tmp_path / "summary.csv").open(encoding="utf-8"))}
    assert (summary[("alice", "01_fixture")]["passed"], summary[("alice", "01_fixture")]["checked"]) == ("3", "3")
    assert summary[("bob", "01_fixture")]["passed"] == "0"
    alice = (tmp_path / "feedback" / "alice.md").read_text(encoding="utf-8")
    bob = (tmp_path / "feedback" / "bob.md").read_text(encoding="utf-8")
    assert "Exercise 1.1" in alice and "not attempted" in bob


def test_every_submission_gets_the_status_it_earned(graded):
    text, rows, subs, stdout, _ = graded
    assert text.splitlines()[0] == HEADER
    assert set(rows) == set(subs), "every submission has its rows"
    for name, (_, expected) in subs.items():
        got = {r["exercise"]: r["status"] for r in rows[name]}
        if name == "essay.ipynb":
            assert got == {"": "error"} and "name the file after its chapter" in rows[name][0]["detail"]
            continue
        assert list(got) == ["Exercise 1.1", "Exercise 1.2", "Exercise 1.3"], f"{name}: {got}"
        want = {f"Exercise {n}": s for n, s in expected.items()} if len(expected) == 3 else dict.fromkeys(got, next(iter(expected)))
        assert got == want, f"{name}: {rows[name]}"
    assert "✓ Exercise 1.1" in stdout and "○ Exercise 1.1 not attempted (the answer cell still holds the stub" in stdout
    assert "✗ Exercise 1.2 tampered (it reaches round the grader" in stdout


def test_no_false_pass_and_details_say_why(graded):
    _, rows, _, _, _ = graded
    by = {name: {r["exercise"]: r for r in rs} for name, rs in rows.items()}
    assert not any(r["status"] == "pass" for r in rows["01_fixture-silenced.ipynb"]), "hidden tracebacks made a wrong answer pass"
    silenced = by["01_fixture-silenced.ipynb"]["Exercise 1.1"]["detail"]
    assert "cell 2: IPython's traceback display, an IPython event hook, sys.excepthook" in silenced, silenced
    assert silenced.endswith("the released check failed (AssertionError: double is twice x)"), silenced
    bob = by["bob/01_fixture.ipynb"]["Exercise 1.1"]["detail"]
    assert bob == "the answer cell still holds the stub; its check failed (NameError: name 'double' is not defined)", bob
    edited = by["01_fixture-edited.ipynb"]["Exercise 1.1"]["detail"]
    assert "edited" in edited and "released check failed (AssertionError: double is twice x)" in edited
    assert "removed" in by["01_fixture-removed.ipynb"]["Exercise 1.2"]["detail"]
    assert "released check passed" in by["01_fixture-removed.ipynb"]["Exercise 1.2"]["detail"]
    assert "added" in by["01_fixture-added.ipynb"]["Exercise 1.3"]["detail"]
    assert "12 s limit" in by["01_fixture-hangs.ipynb"]["Exercise 1.2"]["detail"]
    assert "the kernel died (in cell 6)" in by["01_fixture-dies.ipynb"]["Exercise 1.2"]["detail"]
    assert all("not a readable notebook" in r["detail"] for r in rows["01_fixture-garbled.ipynb"])


def test_a_hanging_kernel_and_its_children_are_killed(graded):
    mark = f"sleep {HANG_MARK}".encode()
    left = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "cmdline").read_bytes().replace(b"\0", b" ").strip() == mark:
                left.append(proc.name)
        except OSError:
            continue  # gone meanwhile
    assert not left, f"the hanging notebook's child outlived its grading: {left}"


def test_each_submission_runs_in_its_own_directory(graded):
    _, rows, _, _, tmp_path = graded
    assert rows["erin/01_fixture.ipynb"][0]["status"] == "pass", "erin saw dave's file, or not her own notebook"
    assert not list(tmp_path.rglob("scratch.txt")), "a submission wrote into the grader's directories"


def test_the_plan_runs_the_released_checks_in_place_of_the_submissions():
    release = release_notebook()
    checks = {ex.number: [release.cells[i].source for i in ex.checks] for ex in exercises(release)}
    steps, changed = plan(release, checks)
    assert changed == {}
    assert [s[1][0] if s[1] else s[0] for s in steps] == [1, 3, "1.1", 6, "1.2", 10, "1.3"]
    # The heading of 1.3 gone: its check now follows 1.2's (an added check), and 1.3's runs at the end.
    nb = copy.deepcopy(release)
    del nb.cells[where(nb, "1.3").heading]
    steps, changed = plan(nb, checks)
    assert changed == {"1.2": "a self-check cell was added", "1.3": "its heading was removed"}
    assert [s[1][0] if s[1] else s[0] for s in steps] == [1, 3, "1.1", 6, "1.2", 9, "1.3"]
    assert not any(s[0] is not None and is_check(nb.cells[s[0]]) for s in steps), "a submission's check ran"
    # 1.2's check removed: the released one runs at the end of 1.2's cells, before the next heading.
    nb = copy.deepcopy(release)
    del nb.cells[where(nb, "1.2").checks[0]]
    steps, changed = plan(nb, checks)
    assert changed == {"1.2": "its self-check was removed"}
    assert [s[1][0] if s[1] else s[0] for s in steps] == [1, 3, "1.1", 6, "1.2", 9, "1.3"]
    # A check whose tag was lost on the way (some editors drop cell metadata) is still its check.
    nb = copy.deepcopy(release)
    nb.cells[where(nb, "1.1").checks[0]].metadata = {}
    assert plan(nb, checks) == plan(release, checks)


def test_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["x.ipynb"])  # no --csv
    assert exit.value.code == 2
    with pytest.raises(SystemExit) as exit:
        main(["x.ipynb", "--csv", str(tmp_path / "g.csv"), "--release", str(tmp_path)])
    assert exit.value.code == 2 and "no released chapter" in capsys.readouterr().err


def test_a_real_chapter_passes_and_its_student_edition_does_not(tmp_path):
    """Chapter 1, run for real: every released check passes on the full chapter, none on the student edition."""
    chapter = next(p for p in notebook_paths(ROOT) if p.name.startswith("01_"))
    student = tmp_path / "student" / chapter.name
    student.parent.mkdir()
    nbformat.write(student_notebook(nbformat.read(chapter, as_version=4)), student)
    grades = tmp_path / "grades.csv"
    done = subprocess.run([*GRADE, str(chapter), str(student), "--csv", str(grades)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(grades.open(encoding="utf-8")))
    full = [r for r in rows if r["notebook"] == str(chapter)]
    assert full and all(r["status"] == "pass" for r in full), full
    mine = [r for r in rows if r["notebook"] == str(student)]
    assert [r["exercise"] for r in mine] == [r["exercise"] for r in full]
    assert not [r for r in mine if r["status"] == "pass"], "these checks pass with no answer given"
