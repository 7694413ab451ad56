"""Write the student edition: every chapter with the exercises' solutions taken out.

    python tools/student_edition.py [--out student]      (what `make student` runs)

In each chapter, every exercise's solution cell becomes an open answer cell (no Colab form
view, not hidden, no "Solution" title) that raises `NotImplementedError` naming its exercise
until the student replaces it, and the solution's discussion is removed. The exercise
headings and the self-check cells stay as they are, so a student's notebook fails its checks
until the exercises are done (`tools/grade.py` grades by them).

A solution cell is wholly the solution (tools/course.py), so taking it out needs no markers;
that is why this is a few lines here rather than nbgrader's marker-based `ClearSolutions`.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course import ANSWER_TAG, ROOT, answer_stub, exercises, notebook_paths  # noqa: E402

NOTE = (
    "> **Student edition.** The solutions to this chapter's exercises are removed: write your own "
    "where a cell says `# YOUR CODE HERE`. The check after each exercise fails until your answer is right."
)


def answer_cell(solution, exercise):
    """The solution cell `solution`, emptied into an open cell for the student's answer."""
    cell = nbformat.v4.new_code_cell(answer_stub(exercise.name))
    cell.id = solution.id  # the same place in the notebook, for anyone comparing the two
    cell.metadata["tags"] = [ANSWER_TAG]
    return cell


def student_notebook(nb):
    """A copy of the chapter notebook `nb` with its solutions removed and its checks kept."""
    nb = copy.deepcopy(nb)
    replaced, removed = {}, set()
    for ex in exercises(nb):
        for i in ex.solutions:
            replaced[i] = answer_cell(nb.cells[i], ex)
        removed.update(ex.discussions)
        if not ex.solutions:  # an exercise answered in words: a cell to write them in
            replaced[ex.heading] = [nb.cells[ex.heading], nbformat.v4.new_markdown_cell("*Your answer:* YOUR ANSWER HERE")]
    cells = []
    for i, cell in enumerate(nb.cells):
        if i in removed:
            continue
        new = replaced.get(i, cell)
        cells += new if isinstance(new, list) else [new]
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells = cells
    if nb.cells and nb.cells[0].cell_type == "markdown":
        nb.cells[0].source = f"{nb.cells[0].source.rstrip()}\n\n{NOTE}"
    nbformat.validate(nb)
    return nb


def write_student_edition(out: Path, root: Path = ROOT) -> list[Path]:
    """Write every chapter's student notebook into `out`; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebook_paths(root):
        target = out / path.name
        nbformat.write(student_notebook(nbformat.read(path, as_version=4)), target)
        written.append(target)
    (out / "README.md").write_text(
        "# Build a GPT: the student edition\n\n"
        "The course's chapters with the exercises' solutions removed. Open a chapter in Jupyter or\n"
        "upload it to Google Colab (File → Upload notebook); its first cell installs the course\n"
        "package, `gptcourse`, when it is missing. Write your answers where a cell says\n"
        "`# YOUR CODE HERE`: the check after each exercise passes once your answer is right.\n"
    )
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="where to write the notebooks (default: student/)")
    args = parser.parse_args(argv)
    for path in write_student_edition(args.out):
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


if __name__ == "__main__":
    main()
