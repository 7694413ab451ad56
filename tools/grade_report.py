"""The grader's reports for instructors: whose notebook, what each exercise earned, what to read.

tools/grade.py judges each submission's checks; this module turns its verdicts into rows and
writes them out. Its interface, in the order grade.py's main() uses it:

    check_targets(csv, summary=None, feedback=None, inputs=())
        before any grading: raises ReportError (its message names the path and the fix) if a
        report cannot be written there, or would overwrite a submission or another report.
    points_of(release) -> {"4.2": points}
        a released chapter's points; a ValueError names a bad "points" value (check them first).
    rows_for(path, chapter, release, nb, results) -> list[Row]
        one submission's rows, one per exercise of its released chapter, in order. `chapter` is
        the released notebook's path, `release` that notebook read, `nb` the submission read
        (None if unreadable), `results` grade.py's verdict per checked exercise,
        {"4.2": (status, detail)}, status pass | fail | tampered | timeout | error.
    notebook_row(path, status, detail, chapter=None) -> Row
        the one row of a submission that was not graded (unreadable, chapter unknown).
    write_csv(path, rows)            --csv F: one line per (notebook, exercise), COLUMNS
    write_summary(path, rows)        --summary F: one line per student and chapter, SUMMARY_COLUMNS
    write_feedback(folder, rows)     --feedback DIR: one Markdown file per student

and the pieces they are built of: student_of, attempted, written_answers, spreadsheet_safe.

A row's status is pass, fail, tampered, timeout or error as grade.py judged the exercise's
check, except for two the reports add: `not attempted`, in place of `fail`, when the
exercise's answer places hold only the student edition's stubs (the check's NameError says
nothing a student can use), and `answered` for an exercise with no self-check, whose answer
the instructor reads (its points earned are left blank: nobody has judged it yet). Points
possible come from the released chapter (heading metadata "points"), never from the submission.

Answers are found by comparing the submission with the released chapter: what the student wrote
between an exercise's heading and the chapter's next Markdown cell, that the chapter does not
have there itself. So grade with the release the students were given (the checks need it too):
a chapter whose prose changed since would have its new prose taken for a written answer.

Every file is written whole or not at all (a temporary file renamed over the target), after
grading, and every text cell of a CSV is spreadsheet-safe: nothing a student wrote can be read
as a formula.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course import HEADING, WRITTEN_STUB, answer_stub, exercises, is_check, is_discussion, is_solution  # noqa: E402

STATUSES = ("pass", "fail", "not attempted", "tampered", "timeout", "error", "answered")
COLUMNS = ["student", "chapter", "notebook", "exercise", "status", "points", "possible", "detail", "written"]
SUMMARY_COLUMNS = ["student", "chapter", "notebook", "passed", "checked", "points", "possible", "written", "note"]
# A chapter's name as it starts a file name: "04_" of 04_multihead, "appendix_a_" of appendix_a_many_gpus.
CHAPTER_PREFIX = re.compile(r"[0-9]{2}_|appendix_[a-z]_", re.I)
# Any chapter's "NN_" in a file name, not the tail of a longer word (bob2004_ is not chapter 4).
ANY_CHAPTER = re.compile(r"(?<![0-9])[0-9]{2}_|(?<![0-9a-z])appendix_[a-z]_", re.I)
EDGES = re.compile(r"^[\W_]+|[\W_]+$")  # the separators around a student's name: "alice - ", "(bob)"
# The label before the stub's placeholder ("*Your answer:*"): left alone, it is no answer.
WRITTEN_LABEL = WRITTEN_STUB.removesuffix("YOUR ANSWER HERE").strip()


class ReportError(Exception):
    """A report cannot be written where it was asked for; the message says where and what to do."""


@dataclass(frozen=True)
class Row:
    student: str
    chapter: str  # the released notebook's name, "04_multihead"; "" when it could not be told
    notebook: str  # the submission's path, as given to the grader
    exercise: str  # "Exercise 4.2": text, never 4.2, which a spreadsheet reads as a number; "" for the whole notebook
    status: str  # one of STATUSES
    # earned: all of `possible` for a pass, 0 for any other verdict of a check; None for an
    # exercise with no self-check (the instructor marks it) and for a notebook not graded
    points: float | None = None
    possible: float | None = None  # the exercise's points in the released chapter
    detail: str = ""
    written: str = ""  # the student's written answer to this exercise, stubs left out
    checked: bool = True  # the exercise has a self-check (the summary counts only those)


def student_of(path: str | Path, chapter_stem: str | None = None) -> str:
    """Whose submission `path` is: the part of its file name before the chapter's name
    (`alice-04_multihead.ipynb` → alice), else its folder's name (`alice/04_multihead.ipynb`
    → alice), else the file's own name; never empty.

    `chapter_stem` is the released chapter's name ("04_multihead", "appendix_a_many_gpus"); without
    it (the chapter is unknown), any chapter's "NN_" in the file name marks where the name ends.
    """
    path = Path(path)
    stem = path.name[: -len(".ipynb")] if path.name.lower().endswith(".ipynb") else path.stem
    prefix = CHAPTER_PREFIX.match(chapter_stem or "")
    before = "[0-9a-z]" if prefix and prefix[0][0].isalpha() else "[0-9]"  # alice04_ is chapter 4; 2004_ is not
    pattern = re.compile(rf"(?<!{before}){re.escape(prefix[0])}", re.I) if prefix else ANY_CHAPTER
    if (found := pattern.search(stem)) and (name := EDGES.sub("", stem[: found.start()])):
        return name
    folder = path.parent.name or path.absolute().parent.name  # "04_multihead.ipynb" given alone: the folder it is in
    return EDGES.sub("", folder) or folder or stem or path.name


def _normal(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _places(nb, release) -> dict[str, tuple[list[int], list[int]]]:
    """Where the submission `nb` answers each exercise: {number: (code cells, Markdown cells)}.

    An exercise's places run from its heading to the next heading or the next Markdown cell of the
    released chapter (its prose), whatever tags the student's cells lost or gained on the way: a
    cell the student added there, code or Markdown, is part of their answer. Not counted: the
    self-checks, the code and Markdown that the released chapter itself has there (a statement's
    given code, a solution's discussion).
    """
    released_markdown = {_normal(c.source) for c in release.cells if c.cell_type == "markdown"}
    released_code = {_normal(c.source) for c in release.cells if c.cell_type == "code" and not is_solution(c)}
    places, current = {}, None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and (match := HEADING.match(cell.source)):
            current = match["number"]
            places.setdefault(current, ([], []))
        elif current is None:
            continue
        elif cell.cell_type == "markdown":
            text = _normal(cell.source)
            if is_discussion(cell) and text in released_markdown:
                continue
            if text in released_markdown:
                current = None  # the chapter's prose goes on: the exercise has ended
            else:
                places[current][1].append(i)
        elif not is_check(cell) and _normal(cell.source) not in released_code:
            places[current][0].append(i)
    return places


def _beyond_stub(source: str, stub: str) -> str:
    """What `source` holds besides the lines of `stub`, blank lines and spacing ignored."""
    stub_lines = {line.strip() for line in stub.splitlines()}
    return "\n".join(line for line in source.splitlines() if line.strip() and line.strip() not in stub_lines)


def _written_text(source: str) -> str:
    """A written-answer cell's answer: its text without the stub (kept, or typed after)."""
    text = source.replace(WRITTEN_STUB, "").strip()
    return "" if text in ("", WRITTEN_LABEL) else text


def written_answers(nb, release) -> dict[str, str]:
    """{exercise number: the Markdown the student wrote for it}, stubs left out; none if empty."""
    answers = {}
    for number, (_, markdown) in _places(nb, release).items():
        texts = [t for t in (_written_text(nb.cells[i].source) for i in markdown) if t]
        if texts:
            answers[number] = "\n\n".join(texts)
    return answers


def attempted(nb, release, number: str) -> bool:
    """Whether the student wrote anything for Exercise `number`, in code or in words.

    Not attempted: every answer place holds only the student edition's stub (answer_stub, a
    WRITTEN_STUB) or nothing. An exercise whose heading is gone counts as attempted: where its
    answer is cannot be told, so its check's verdict stands.
    """
    return _attempted(nb, _places(nb, release), number)


def _attempted(nb, places, number: str) -> bool:
    if number not in places:
        return True
    code, markdown = places[number]
    stub = answer_stub(f"Exercise {number}")
    return any(_beyond_stub(nb.cells[i].source, stub) for i in code) or any(_written_text(nb.cells[i].source) for i in markdown)


def _stub_kept(nb, places, number: str) -> bool:
    """An answer cell has code, yet still has the stub's `raise NotImplementedError` line."""
    stub = answer_stub(f"Exercise {number}")
    raise_line = stub.splitlines()[-1].strip()
    for i in places.get(number, ([], []))[0]:
        source = nb.cells[i].source
        if raise_line in {line.strip() for line in source.splitlines()} and _beyond_stub(source, stub):
            return True
    return False


def points_of(release) -> dict[str, float]:
    """{exercise number: its points} of a released chapter; a ValueError names a bad value."""
    points = {}
    for ex in exercises(release):
        value = ex.points
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f'Exercise {ex.number}: its heading\'s metadata "points" is {value!r}; make it a number ≥ 0 (or remove it: 1)')
        points[ex.number] = value
    return points


def rows_for(path: str | Path, chapter: str | Path, release, nb, results: Mapping[str, tuple[str, str]]) -> list[Row]:
    """One submission's rows: one per exercise of the released chapter `chapter` (read: `release`).

    `nb` is the submission as read (None if it could not be); `results` holds grade.py's
    (status, detail) for each exercise with a self-check. A check that failed on an exercise the
    student never touched reads `not attempted`; an exercise with no self-check reads `answered`
    or `not attempted`, with no points earned until the instructor gives them.
    """
    chapter_stem, notebook = Path(chapter).stem, str(path)
    student, points = student_of(path, chapter_stem), points_of(release)
    places = _places(nb, release) if nb is not None else {}
    written = written_answers(nb, release) if nb is not None else {}
    rows = []
    for ex in exercises(release):
        possible, answer = points[ex.number], written.get(ex.number, "")
        touched = nb is None or _attempted(nb, places, ex.number)
        if not ex.checks:  # nothing judged it: the instructor reads it
            if nb is None:
                status, detail = "error", "not a readable notebook"
            else:
                status, detail = ("answered", "no self-check: read the answer") if touched else ("not attempted", "no answer written")
            rows.append(Row(student, chapter_stem, notebook, ex.name, status, None, possible, detail, answer, checked=False))
            continue
        status, detail = results.get(ex.number, ("error", "the check was not run"))
        if status not in STATUSES:
            raise ValueError(f"{ex.name}: unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        if status == "fail" and not touched:
            status, detail = "not attempted", "the answer cell still holds the stub" + (f"; its check failed ({detail})" if detail else "")
        elif status == "fail" and _stub_kept(nb, places, ex.number):
            detail += "; the answer cell still has the stub's `raise NotImplementedError` line: delete it, or the code after it never runs"
        rows.append(Row(student, chapter_stem, notebook, ex.name, status, possible if status == "pass" else 0, possible, detail, answer))
    return rows


def notebook_row(path: str | Path, status: str, detail: str, chapter: str | Path | None = None) -> Row:
    """The one row of a submission that was not graded: unreadable, or its chapter unknown."""
    stem = Path(chapter).stem if chapter else ""
    return Row(student_of(path, stem or None), stem, str(path), "", status, None, None, detail, checked=False)


def spreadsheet_safe(value) -> str | float:
    """A CSV cell no spreadsheet reads as a formula: text starting =, +, -, @, tab or CR gets a leading '."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return value
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_text(header: list[str], records: Iterable[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([spreadsheet_safe(v) for v in record] for record in records)
    return out.getvalue()


def _write(path: str | Path, text: str) -> Path:
    """Write `path` whole or not at all: a temporary file beside it, renamed over it.

    Written here rather than with gptcourse.files.write_atomically: importing gptcourse loads
    torch, which grading's reports have no use for.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's owner-only mode was for the temporary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_csv(path: str | Path, rows: list[Row]) -> Path:
    """--csv: one line per (notebook, exercise), in the order given; COLUMNS."""
    seen = set()
    for r in rows:
        if (r.notebook, r.exercise) in seen:
            raise ValueError(f"two rows for {r.exercise or 'the notebook'} of {r.notebook}: each (notebook, exercise) gets one")
        seen.add((r.notebook, r.exercise))
    return _write(path, _csv_text(COLUMNS, ([getattr(r, c) for c in COLUMNS] for r in rows)))


def _by_notebook(rows: list[Row]) -> dict[tuple[str, str, str], list[Row]]:
    groups = defaultdict(list)
    for r in rows:
        groups[(r.student, r.chapter, r.notebook)].append(r)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0].casefold(), kv[0][0], kv[0][1], kv[0][2])))


def _note(rows: list[Row]) -> str:
    """What the numbers do not say: the statuses other than pass, counted; or why it was not graded."""
    if len(rows) == 1 and not rows[0].exercise:
        return f"not graded: {rows[0].detail}"
    counts = defaultdict(int)
    for r in rows:
        if r.status != "pass":
            counts[r.status] += 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: STATUSES.index(kv[0])))


def write_summary(path: str | Path, rows: list[Row]) -> Path:
    """--summary: one line per student and chapter (per notebook, if a chapter came twice), sorted.

    passed/checked count the self-checks, points/possible their points; written counts the
    exercises with a written answer. A chapter a student did not hand in has no line: no zero
    is made up for it. A notebook that was not graded has blank numbers and says why in `note`.
    """
    records = []
    for (student, chapter, notebook), group in _by_notebook(rows).items():
        checked = [r for r in group if r.checked]
        graded = bool(group[0].exercise)
        numbers = [
            sum(r.status == "pass" for r in checked),
            len(checked),
            sum(r.points or 0 for r in checked),
            sum(r.possible or 0 for r in checked),
            sum(bool(r.written) for r in group),
        ] if graded else [None] * 5  # fmt: skip
        records.append([student, chapter, notebook, *numbers, _note(group)])
    return _write(path, _csv_text(SUMMARY_COLUMNS, records))


# What each status means, said to the student; the row's detail follows, as code, where it adds something.
SAID = {
    "pass": "its check passed",
    "fail": "its check failed",
    "not attempted": "not attempted: nothing was written in place of the stub",
    "tampered": "its self-check cell was changed, so it was not counted; ask your instructor",
    "timeout": "the notebook ran out of time before this check",
    "error": "it could not be graded",
    "answered": "answered; your instructor reads it",
}
MARK = {"pass": "✓", "answered": "•", "not attempted": "○"}
SAY_DETAIL = {"fail", "tampered", "timeout", "error"}


def safe_name(student: str) -> str:
    """A file name for `student`'s feedback: letters, digits, - _ . only; a short hash keeps apart names that differ elsewhere."""
    slug = re.sub(r"[^\w.-]+", "_", student, flags=re.ASCII).strip("._")[:80] or "student"
    return slug if slug == student else f"{slug}-{hashlib.sha256(student.encode()).hexdigest()[:8]}"


def _code(text: str) -> str:
    """`text` as inline code, whatever backticks it holds."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _points(x: float) -> str:
    return f"{x:g} point" if x == 1 else f"{x:g} points"


def _feedback(student: str, rows: list[Row]) -> str:
    lines = [f"# Feedback for {student}"]
    for (_, chapter, notebook), group in _by_notebook(rows).items():
        name = Path(notebook).name
        if not group[0].exercise:
            lines += ["", f"## {chapter or name}", "", f"Your notebook {_code(name)} was not graded: {group[0].detail}."]
            continue
        checked = [r for r in group if r.checked]
        passed = sum(r.status == "pass" for r in checked)
        earned, possible = sum(r.points or 0 for r in checked), sum(r.possible or 0 for r in checked)
        lines += [
            "",
            f"## {chapter}",
            "",
            f"Notebook {_code(name)}: {passed} of {len(checked)} checks pass, {earned:g} of {_points(possible)}.",
            "",
        ]
        for r in group:
            said = SAID.get(r.status, r.status) + (f": {_code(r.detail)}" if r.detail and r.status in SAY_DETAIL else "")
            score = f"{r.points:g} of {_points(r.possible)}" if r.points is not None else f"{_points(r.possible)}, marked by hand"
            lines.append(f"- {MARK.get(r.status, '✗')} **{r.exercise}** ({score}): {said}")
        if answers := [r for r in group if r.written]:
            lines += ["", "### Your written answers"]
            for r in answers:
                lines += ["", f"**{r.exercise}**", "", *(f"> {line}".rstrip() for line in r.written.splitlines())]
    return "\n".join(lines) + "\n"


def write_feedback(folder: str | Path, rows: list[Row]) -> dict[str, Path]:
    """--feedback: one Markdown file per student in `folder`; returns {student: file}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_student = defaultdict(list)
    for r in rows:
        by_student[r.student].append(r)
    written, taken = {}, set()
    for student in sorted(by_student):
        name = safe_name(student)
        if name.casefold() in taken:  # Alice and alice on a case-blind disk
            name = f"{name}-{hashlib.sha256(student.encode()).hexdigest()[:8]}"
        taken.add(name.casefold())
        written[student] = _write(folder / f"{name}.md", _feedback(student, by_student[student]))
    return written


def _probe(folder: Path, what: str, fix: str) -> None:
    """Make `folder` if need be and write a file in it, or raise ReportError saying why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".grade-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise ReportError(f"cannot write {what} in {folder}: {e.strerror or e}; {fix}") from None


def check_targets(csv: Path, summary: Path | None = None, feedback: Path | None = None, inputs: Iterable[Path] = ()) -> None:
    """Before grading: every report can be written where it was asked for, or a ReportError says why not."""
    files = {"--csv": csv, "--summary": summary}
    seen, inputs = {}, {Path(p).resolve() for p in inputs}
    for option, target in [*files.items(), ("--feedback", feedback)]:
        if target is None:
            continue
        where = Path(target).resolve()
        if where in inputs:
            raise ReportError(f"{option} {target} is one of the notebooks to grade: name another file for the report")
        if where in seen:
            raise ReportError(f"{option} {target} is also {seen[where]}'s: give each report its own path")
        seen[where] = option
    for option, target in files.items():
        if target is None:
            continue
        target = Path(target)
        if target.is_dir():
            raise ReportError(f"{option} {target} is a folder: name a file in it, as in {option} {target / 'grades.csv'}")
        _probe(target.parent, f"{option}'s file", f"choose a folder you can write to for {option}")
    if feedback is not None:
        feedback = Path(feedback)
        if feedback.exists() and not feedback.is_dir():
            raise ReportError(f"--feedback {feedback} is a file: name a folder (it is made if missing)")
        _probe(feedback, "the feedback files", "choose a folder you can write to for --feedback")
