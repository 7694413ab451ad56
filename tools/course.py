"""What the chapters say about themselves: read from the notebooks, never copied by hand.

Each chapter notebook carries its objectives, prerequisites and run times in its `course`
metadata, and its exercises in plain Markdown, written for the place students open them
(Colab, Jupyter; see CONTRIBUTING.md):

    [markdown]   ### Exercise 4.2 · Prove that the future stays hidden
                 The statement ...
    [code]       # @title Solution                      tags: solution; collapsed in Colab
                 ...                                     ("cellView": "form") and Jupyter
                                                         ("jupyter": {"source_hidden": true})
    [markdown]   <details><summary>About the solution</summary>  (optional) its discussion
                 ...
                 </details>
    [code]       ... assert ...                          tags: self-check
                 print("✓ Exercise 4.2")

The book build (tools/book_extension.py), the instructor guide, the student edition and the
grader all read exercises through `exercises()`, so none of them can drift from the notebooks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
# Chapters 1-10 are notebooks/NN_name.ipynb; the appendices come after them, named so that they
# sort after the chapters and are never taken for one: notebooks/appendix_a_many_gpus.ipynb.
CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"
APPENDIX_GLOB = "appendix_[a-z]_*.ipynb"

# "### Exercise 4.2 · Title": the chapter (a number, or a letter for an appendix), the
# exercise's number within it, and its title.
HEADING = re.compile(r"\A###[ \t]+Exercise[ \t]+(?P<number>(?:\d+|[A-Z])\.\d+)[ \t]+·[ \t]+(?P<title>[^\n]+?)[ \t]*(?:\n|\Z)")
SOLUTION_TITLE = "# @title Solution"
# What Colab and JupyterLab / Notebook 7 need to show a solution cell collapsed.
SOLUTION_METADATA = {"cellView": "form", "jupyter": {"source_hidden": True}}
# A solution's discussion: Markdown that Colab and Jupyter show folded until clicked.
DETAILS = re.compile(r"\A\s*<details>\s*<summary>(?P<summary>.*?)</summary>\s*\n(?P<body>.*?)\s*</details>\s*\Z", re.S)
# The student edition's cells for a student's answers (tools/student_edition.py writes them,
# tools/grade.py reads them): a code cell in place of each solution, and a Markdown cell after
# an exercise that asks a question in words (its heading cell is tagged ASKS_IN_WORDS).
ANSWER_TAG = "answer"
WRITTEN_TAG = "written-answer"
ASKS_IN_WORDS = "asks-in-words"
WRITTEN_STUB = "*Your answer:* YOUR ANSWER HERE"
# Any MyST directive fence (```{name} or :::{name}): none belongs in a notebook's Markdown.
MYST_FENCE = re.compile(r"^[ \t]*(?:`{3,}|:{3,})\{[\w-]+\}", re.M)


def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def is_solution(cell) -> bool:
    return cell.cell_type == "code" and "solution" in tags(cell)


def is_check(cell) -> bool:
    return cell.cell_type == "code" and "self-check" in tags(cell)


def is_discussion(cell) -> bool:
    return cell.cell_type == "markdown" and DETAILS.match(cell.source) is not None


def discussion_text(cell) -> str:
    """The Markdown inside a `<details>` discussion cell."""
    return DETAILS.match(cell.source)["body"].strip()


def solution_code(source: str) -> str:
    """A solution cell's code without its `# @title Solution` line."""
    first, _, rest = source.partition("\n")
    return rest.lstrip("\n") if first.strip() == SOLUTION_TITLE else source


def answer_stub(name: str) -> str:
    """The student edition's code answer cell for the exercise called `name` ("Exercise 4.2")."""
    return f'# YOUR CODE HERE\nraise NotImplementedError("{name}: write your answer in place of this line")'


def is_written_answer(cell) -> bool:
    return cell.cell_type == "markdown" and WRITTEN_TAG in tags(cell)


def check_message(number: str) -> str:
    """What a passing self-check prints last."""
    return f"✓ Exercise {number}"


@dataclass
class Exercise:
    number: str  # "4.2": the chapter, then the exercise within it
    title: str
    statement: str  # the text under the heading, in Markdown
    heading: int  # the index of its heading cell in the notebook
    solutions: list[int] = field(default_factory=list)  # indices of its solution code cells
    discussions: list[int] = field(default_factory=list)  # indices of its <details> cells
    checks: list[int] = field(default_factory=list)  # indices of its self-check cells
    written: list[int] = field(default_factory=list)  # indices of its written-answer cells (student edition)
    asks_in_words: bool = False  # its heading is tagged ASKS_IN_WORDS: a question answered in words
    points: int = 1  # what it is worth: the heading cell's metadata "points" (default 1)

    @property
    def name(self) -> str:
        return f"Exercise {self.number}"

    @property
    def label(self) -> str:
        """The book's cross-reference target: ex-4-2."""
        return "ex-" + self.number.replace(".", "-").lower()

    @property
    def checked(self) -> bool:
        return bool(self.checks)

    @property
    def summary(self) -> str:
        """The statement's first paragraph, on one line: what the exercise asks for."""
        return " ".join(self.statement.split("\n\n")[0].split())


@dataclass
class Chapter:
    path: Path
    number: int | str
    title: str
    objectives: list[str]
    prerequisites: list[str]
    runtime: dict[str, str]
    gpu: bool  # the notebook asks Colab for a GPU (metadata "accelerator")
    exercises: list[Exercise] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem  # 01_tokens

    @property
    def docname(self) -> str:
        return f"notebooks/{self.name}"

    @property
    def is_appendix(self) -> bool:
        return isinstance(self.number, str)

    @property
    def heading(self) -> str:
        """How the chapter names itself: "9. Counting FLOPs", "Appendix A. Training on many GPUs"."""
        return chapter_heading(self.number, self.title)


def chapter_heading(number: int | str, title: str) -> str:
    """A chapter's heading (its notebook's first line, after "# "): numbered, or lettered for an appendix."""
    return f"Appendix {number}. {title}" if isinstance(number, str) else f"{number}. {title}"


def chapter_paths(root: Path = ROOT) -> list[Path]:
    """The chapters proper, 1-10, in reading order."""
    return sorted((root / "notebooks").glob(CHAPTER_GLOB))


def appendix_paths(root: Path = ROOT) -> list[Path]:
    """The appendices, A, B, ..., which come after the chapters."""
    return sorted((root / "notebooks").glob(APPENDIX_GLOB))


def notebook_paths(root: Path = ROOT) -> list[Path]:
    """Every notebook of the course in reading order: the chapters, then the appendices."""
    return chapter_paths(root) + appendix_paths(root)


def exercises(nb) -> list[Exercise]:
    """The exercises of a notebook, in order, with the cells that belong to each.

    An exercise runs from its heading to the next Markdown cell that is neither a heading, a
    discussion nor a written answer: solution, discussion, written-answer and self-check cells
    in between are its own. Code a
    student adds between them is not part of the exercise, and is left alone.
    """
    found: list[Exercise] = []
    current: Exercise | None = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            if match := HEADING.match(cell.source):
                current = Exercise(match["number"], match["title"], cell.source[match.end():].strip(), index)
                current.asks_in_words = ASKS_IN_WORDS in tags(cell)
                current.points = cell.get("metadata", {}).get("points", 1)
                found.append(current)
                continue
            if current and is_discussion(cell):
                current.discussions.append(index)
                continue
            if current and is_written_answer(cell):
                current.written.append(index)
                continue
            current = None
        elif current and is_solution(cell):
            current.solutions.append(index)
        elif current and is_check(cell):
            current.checks.append(index)
    return found


def read_chapter(path: Path) -> Chapter:
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get("course")
    if not meta:
        raise ValueError(f"{path.name}: notebook metadata 'course' is missing (see CONTRIBUTING.md)")
    return Chapter(
        path=path,
        number=meta["chapter"],
        title=meta["title"],
        objectives=list(meta["objectives"]),
        prerequisites=list(meta["prerequisites"]),
        runtime=dict(meta["runtime"]),
        gpu=nb.metadata.get("accelerator") == "GPU",
        exercises=exercises(nb),
    )


def read_chapters(root: Path = ROOT) -> list[Chapter]:
    return [read_chapter(path) for path in notebook_paths(root)]
