"""Write the student edition: every chapter with the exercises' solutions taken out.

    python tools/student_edition.py [--out student] [--chapters 04,07,A]   (what `make student` runs)

In each chapter, every exercise's solution cell becomes an open answer cell (no Colab form
view, not hidden, no "Solution" title) that raises `NotImplementedError` naming its exercise
until the student replaces it, and the solution's discussion is removed. An exercise that asks
a question in words (its heading tagged `asks-in-words`) gets a Markdown cell to answer in,
tagged `written-answer`, after its answer code and before its self-check, where
`tools/grade.py` collects it. The exercise headings and the self-check cells stay as they are,
so a student's notebook fails its checks until the exercises are done (the grader grades by
them).

A solution cell is wholly the solution (tools/course.py), so taking it out needs no markers;
that is why this is a few lines here rather than nbgrader's marker-based `ClearSolutions`.
It needs nbformat and nothing else (no torch, no gptcourse), so `make student` can run in a
small virtual environment.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course import ANSWER_TAG, ROOT, WRITTEN_STUB, WRITTEN_TAG, answer_stub, exercises, notebook_paths  # noqa: E402

NOTE = (
    "> **Student edition.** The solutions to this chapter's exercises are removed: write your own "
    "where a cell says `# YOUR CODE HERE`, and answer the questions asked in words where a cell says "
    "*Your answer:*. The check after each exercise fails until your answer is right."
)


def answer_cell(solution, exercise):
    """The solution cell `solution`, emptied into an open cell for the student's answer."""
    cell = nbformat.v4.new_code_cell(answer_stub(exercise.name))
    cell.id = solution.id  # the same place in the notebook, for anyone comparing the two
    cell.metadata["tags"] = [ANSWER_TAG]
    return cell


def written_cell(heading):
    """The Markdown cell a student answers an exercise's question in words in."""
    cell = nbformat.v4.new_markdown_cell(WRITTEN_STUB)
    # Derived from the heading's id, not random: writing the edition twice gives the same files.
    cell.id = f"{heading.id[:50]}-written"
    cell.metadata["tags"] = [WRITTEN_TAG]
    return cell


def student_notebook(nb):
    """A copy of the chapter notebook `nb` with its solutions removed and its checks kept."""
    nb = copy.deepcopy(nb)
    replaced, removed = {}, set()
    for ex in exercises(nb):
        for i in ex.solutions:
            replaced[i] = [answer_cell(nb.cells[i], ex)]
        removed.update(ex.discussions)
        if ex.asks_in_words or not ex.solutions:
            # Under the last answer cell, where a student writes; an exercise with no code
            # (answered in words only) has it under its heading.
            after = max(ex.solutions, default=ex.heading)
            replaced[after] = replaced.get(after, [nb.cells[after]]) + [written_cell(nb.cells[ex.heading])]
    cells = []
    for i, cell in enumerate(nb.cells):
        if i not in removed:
            cells += replaced.get(i, [cell])
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells = cells
    if nb.cells and nb.cells[0].cell_type == "markdown":
        nb.cells[0].source = f"{nb.cells[0].source.rstrip()}\n\n{NOTE}"
    nbformat.validate(nb)
    return nb


def chapter_key(path: Path) -> str:
    """How `--chapters` names a notebook: its number (04) or its appendix's letter (A)."""
    prefix = path.name.split("_")[0]
    return path.name.split("_")[1].upper() if prefix == "appendix" else prefix


def select(paths: list[Path], names: list[str]) -> list[Path]:
    """The notebooks among `paths` that `names` (04, 4, 07, A, b, ...) pick, in reading order."""
    keys = {chapter_key(p): p for p in paths}
    wanted = {n.strip().upper().zfill(2) if n.strip().isdigit() else n.strip().upper() for n in names if n.strip()}
    unknown = sorted(wanted - keys.keys())
    if unknown:
        raise ValueError(f"no chapter {', '.join(unknown)}: the chapters are {', '.join(keys)} (e.g. --chapters 04,07,A)")
    if not wanted:
        raise ValueError(f"no chapter named: the chapters are {', '.join(keys)} (e.g. --chapters 04,07,A)")
    return [p for k, p in keys.items() if k in wanted]


class OutError(ValueError):
    """The student edition cannot be written where --out says (a file in the way, no permission)."""


def check_out(out: Path, names: tuple[str, ...] | list[str] = ()) -> None:
    """Make the folder `out` if need be and prove that it takes files, or raise `OutError` saying why not.

    Run before any notebook is written, so that a bad --out leaves no half-written edition.
    """
    out = Path(out)
    fix = "choose a folder you can write to (e.g. --out student)"
    try:
        for folder in (out, *out.parents):
            if folder.exists() or folder.is_symlink():
                if not folder.is_dir():
                    raise OutError(f"--out {out}: {folder} is a file, not a folder; {fix}")
                break
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".student-probe.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutError(f"--out {out}: cannot write there ({e.strerror or e}); {fix}") from None
    for name in [*names, "README.md"]:
        if (out / name).is_dir():
            raise OutError(f"--out {out}: {out / name} is a folder, where the file {name} goes; move it away, or {fix}")


def write_student_edition(out: Path, root: Path = ROOT, chapters: list[str] | None = None) -> list[Path]:
    """Write every chapter's student notebook (or those `chapters` names) into `out`; return their paths.

    An `out` that cannot be written is an `OutError` before anything is written.
    """
    paths = notebook_paths(root) if chapters is None else select(notebook_paths(root), chapters)
    out = Path(out)
    check_out(out, [p.name for p in paths])
    written = []
    for path in paths:
        target = out / path.name
        nbformat.write(student_notebook(nbformat.read(path, as_version=4)), target)
        written.append(target)
    (out / "README.md").write_text(
        "# Build a GPT: the student edition\n\n"
        "The course's chapters with the exercises' solutions removed. Open a chapter in Jupyter or\n"
        "upload it to Google Colab (File → Upload notebook); its first cell installs the course\n"
        "package, `gptcourse`, when it is missing. Write your answers where a cell says\n"
        "`# YOUR CODE HERE`, and answer the questions asked in words where a cell says\n"
        "*Your answer:*. The check after each exercise passes once your answer is right.\n"
    )
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="where to write the notebooks (default: student/)")
    parser.add_argument(
        "--chapters",
        type=lambda text: text.split(","),
        help="only these chapters, by number or appendix letter, comma-separated: 04,07,A (default: all)",
    )
    args = parser.parse_args(argv)
    try:
        written = write_student_edition(args.out, chapters=args.chapters)
    except OutError as error:
        parser.error(str(error))
    except OSError as error:  # a notebook that cannot be replaced (read-only), found while writing
        parser.error(f"--out {args.out}: cannot write {error.filename}: {error.strerror}; make it writable, or choose another --out")
    except ValueError as error:
        parser.error(f"--chapters: {error}")
    for path in written:
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


if __name__ == "__main__":
    main()
