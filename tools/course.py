"""What the chapters say about themselves: read from the notebooks, never copied by hand.

Each chapter notebook carries its objectives, prerequisites and run times in its `course`
metadata, and its exercises as sphinx-exercise directives (see CONTRIBUTING.md). The
instructor guide, the student edition and the grading script all read them from here, so
none of them can drift from the notebooks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"

# A MyST directive block: an opening fence of 3+ backticks or colons, `{name} argument`,
# then the body (options first) up to the same fence on a line of its own.
_DIRECTIVE = r"^(?P<fence>`{{3,}}|:{{3,}})\{{(?P<name>{names})\}}[ \t]*(?P<arg>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$"
EXERCISE = re.compile(_DIRECTIVE.format(names="exercise|exercise-start"), re.M | re.S)
SOLUTION = re.compile(_DIRECTIVE.format(names="solution"), re.M | re.S)
SOLUTION_START = re.compile(_DIRECTIVE.format(names="solution-start"), re.M | re.S)
SOLUTION_END = re.compile(_DIRECTIVE.format(names="solution-end"), re.M | re.S)
EXERCISE_END = re.compile(_DIRECTIVE.format(names="exercise-end"), re.M | re.S)
OPTION = re.compile(r"^:([\w-]+):[ \t]*(.*)$")


def split_options(body: str) -> tuple[dict[str, str], str]:
    """A directive body's leading `:name: value` lines, and the text after them."""
    options, lines = {}, body.splitlines()
    while lines and (match := OPTION.match(lines[0])):
        options[match[1]] = match[2].strip()
        lines.pop(0)
    return options, "\n".join(lines).strip()


def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


@dataclass
class Exercise:
    number: int  # 1, 2, ... within its chapter
    label: str
    title: str
    statement: str  # the exercise's text, in MyST markdown
    checked: bool = False  # a self-check cell asserts the answer

    @property
    def summary(self) -> str:
        """The statement's first paragraph, on one line: what the exercise asks for."""
        return " ".join(self.statement.split("\n\n")[0].split())


@dataclass
class Chapter:
    path: Path
    number: int
    title: str
    objectives: list[str]
    prerequisites: list[str]
    runtime: dict[str, str]
    exercises: list[Exercise] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem  # 01_tokens

    @property
    def docname(self) -> str:
        return f"notebooks/{self.name}"


def notebook_paths(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob(NOTEBOOK_GLOB))


def exercises(nb) -> list[Exercise]:
    """The exercises of a notebook, in order, each marked `checked` if a self-check follows it."""
    found: list[Exercise] = []
    gated = False  # inside an {exercise-start} ... {exercise-end} pair, whose text is in the cells between
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if gated and EXERCISE_END.search(cell.source):
                gated = False
            elif gated:
                found[-1].statement = f"{found[-1].statement}\n\n{cell.source}".strip()
            for match in EXERCISE.finditer(cell.source):
                options, text = split_options(match["body"])
                label = options.get("label", f"exercise-{len(found) + 1}")
                found.append(Exercise(len(found) + 1, label, match["arg"].strip(), text))
                gated = match["name"] == "exercise-start"
        elif "self-check" in tags(cell) and found:
            found[-1].checked = True
    return found


def read_chapter(path: Path) -> Chapter:
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get("course")
    if not meta:
        raise ValueError(f"{path.name}: notebook metadata 'course' is missing (see CONTRIBUTING.md)")
    return Chapter(
        path=path,
        number=int(meta["chapter"]),
        title=meta["title"],
        objectives=list(meta["objectives"]),
        prerequisites=list(meta["prerequisites"]),
        runtime=dict(meta["runtime"]),
        exercises=exercises(nb),
    )


def read_chapters(root: Path = ROOT) -> list[Chapter]:
    return [read_chapter(path) for path in notebook_paths(root)]
