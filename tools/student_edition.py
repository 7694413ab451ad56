"""Write the student edition: every chapter with the exercises' solutions taken out.

    python tools/student_edition.py [--out student]      (what `make student` runs)

In each chapter notebook, the code between nbgrader's `### BEGIN SOLUTION` and
`### END SOLUTION` markers is replaced by a stub that raises `NotImplementedError`; that is
nbgrader's own `ClearSolutions` preprocessor at work. Around it, the book-only markup becomes
plain Markdown that reads well in Jupyter and Colab:

- an `{exercise}` directive becomes a heading, "Exercise 2: Title", and its text;
- a gated solution (`{solution-start}` ... `{solution-end}`) keeps only its code cells, cleared,
  under a short "Your answer" line; the solution's prose is removed;
- a text-only `{solution}` directive becomes nbgrader's "YOUR ANSWER HERE".

The self-check cells stay as they are, so a student's notebook fails its checks until the
exercises are done (`tools/grade.py` counts them).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearSolutions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course import EXERCISE, EXERCISE_END, ROOT, SOLUTION, SOLUTION_END, SOLUTION_START, notebook_paths, split_options, tags  # noqa: E402

NOTE = (
    "> **Student edition.** The solutions to this chapter's exercises are removed: write your own "
    "where a cell says `# YOUR CODE HERE`. The check after each exercise fails until your answer is right."
)


class ClearExerciseSolutions(ClearSolutions):
    """nbgrader's ClearSolutions, with a stub that names the exercise the cell answers."""

    def preprocess_cell(self, cell, resources, index):
        if exercise := cell.metadata.get("exercise"):
            message = f"{exercise}: write your answer in place of this line".replace('"', "'")
            self.code_stub = {**self.code_stub, resources["language"]: f'# YOUR CODE HERE\nraise NotImplementedError("{message}")'}
        return super().preprocess_cell(cell, resources, index)


def student_notebook(nb):
    """A copy of the chapter notebook `nb` with its solutions removed and its checks kept."""
    nb = copy.deepcopy(nb)
    cells, number, in_solution = [], 0, False
    names = {0: "This exercise"}

    def plain_exercise(match) -> str:
        """An {exercise} directive as plain Markdown: a heading, then the exercise's text."""
        nonlocal number
        number += 1
        title = match["arg"].strip()
        names[number] = f"Exercise {number} ({title})" if title else f"Exercise {number}"
        _, text = split_options(match["body"])
        return f"### Exercise {number}{': ' + title if title else ''}\n\n{text}".strip()

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if SOLUTION_START.search(cell.source):
                in_solution = True
                cells.append(nbformat.v4.new_markdown_cell(f"*Your answer to exercise {number}:*"))
                continue
            if SOLUTION_END.search(cell.source) or EXERCISE_END.search(cell.source):
                in_solution = False
                continue
            if in_solution:  # the solution's explanation
                continue
            cell.source = EXERCISE.sub(plain_exercise, cell.source)
            cell.source = SOLUTION.sub(f"*Your answer:* {ClearSolutions().text_stub}", cell.source)
        elif cell.cell_type == "code" and (in_solution or "solution" in tags(cell)):
            # What nbgrader needs to see a solution cell (removed again below), and the stub's name.
            cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "schema_version": 3, "grade_id": f"cell-{len(cells)}"}
            cell.metadata["exercise"] = names[number]
        cells.append(cell)
    nb.cells = cells

    # enforce_metadata: solution markers in a cell that is not a solution cell are an error, not a leak.
    nb, _ = ClearExerciseSolutions(enforce_metadata=True).preprocess(nb, {})
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
        cell.metadata.pop("exercise", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
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
