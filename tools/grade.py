"""Grade notebooks with their own self-checks: run each one, count the checks that pass.

    python tools/grade.py submissions/*.ipynb [--timeout 300] [--csv grades.csv]

Every notebook is run top to bottom in a fresh kernel (nbclient), carrying on past errors,
as "Run all" would if it did not stop; then each cell tagged `self-check` counts as passed
when it raised no error. A check is matched to the exercise before it. The notebooks run
with the grader's rights: run students' work inside a container or a throw-away machine.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course import EXERCISE, tags  # noqa: E402


@dataclass
class Check:
    exercise: str  # "Exercise 2 (How many windows?)"
    passed: bool
    error: str  # "NameError: name 'n_windows' is not defined", or ""


# The student edition turns each {exercise} directive into a heading "### Exercise N: Title".
HEADING = re.compile(r"^### Exercise \d+(?:: (?P<title>.*))?$", re.M)


def exercise_titles(source: str) -> list[str]:
    """The titles of the exercises a markdown cell opens, as directives or as headings."""
    return [m["arg"].strip() for m in EXERCISE.finditer(source)] + [(m["title"] or "").strip() for m in HEADING.finditer(source)]


def run_checks(path: Path, timeout: int = 300) -> list[Check]:
    """Run the notebook at `path` and return one Check per self-check cell, in order."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    checks, number, name = [], 0, "before the exercises"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for title in exercise_titles(cell.source):
                number += 1
                name = f"Exercise {number} ({title})" if title else f"Exercise {number}"
        elif "self-check" in tags(cell):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            error = f"{errors[0].ename}: {errors[0].evalue}".splitlines()[0] if errors else ""
            checks.append(Check(name, not errors, error))
    return checks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=300, help="seconds allowed per cell (default 300)")
    parser.add_argument("--csv", type=Path, help="also write one row per notebook: notebook, passed, checks")
    args = parser.parse_args(argv)

    rows = []
    for path in args.notebooks:
        checks = run_checks(path, args.timeout)
        passed = sum(c.passed for c in checks)
        print(f"{path}: {passed}/{len(checks)} self-checks pass")
        for c in checks:
            print(f"  {'✓' if c.passed else '✗'} {c.exercise}" + (f"  ({c.error})" if c.error else ""))
        rows.append([str(path), passed, len(checks)])
    if args.csv:
        with args.csv.open("w", newline="") as f:
            csv.writer(f).writerows([["notebook", "passed", "checks"], *rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
