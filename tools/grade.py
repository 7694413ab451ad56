"""Grade handed-in chapter notebooks by the released self-checks: one CSV row per exercise.

    python tools/grade.py SUBMISSIONS... --csv grades.csv [--timeout 600] [--release notebooks/]

Each submission is matched to its released chapter (its `course.chapter` metadata, else a file
name containing the chapter's `NN_`, as in `alice/01_tokens.ipynb`), copied into a fresh
temporary directory and run there, top to bottom, in a fresh kernel, carrying on past errors.
Its own `self-check` cells are never run: the released chapter's checks run in their place
(after the exercise's cells if the student removed them). A check passes when the kernel's
reply says it raised nothing, it showed no error, and it printed a random token the grader
appends to it: hiding tracebacks does not make a wrong answer pass.

CSV columns `notebook,exercise,status,detail`. Status: pass, fail (the detail gives the error),
tampered (the exercise's self-check cells differ from the released ones: edited, removed or
added; the detail says how and what the released check gave), timeout (the notebook ran past
--timeout seconds, counted for the whole notebook, before the check) or error (the kernel died
first, or the file could not be read or matched to a chapter). "Cell N" counts from 1, Markdown
included. Exercises with no self-check get no row: read those answers.

Isolation, plainly: each submission gets its own temporary working directory and its own kernel,
whose process group is killed when the notebook ends or runs out of time. Nothing more. The code
runs with your rights: it can read and write any absolute path (your files, other submissions),
use the network, start processes that leave the group, and use as much memory as it likes (the
grader keeps only OUTPUT_LIMIT characters of a cell's output). Since the checks run in the
student's kernel, a determined student can subvert them (IPython's hooks are theirs to change).
Grade untrusted work in a container or a throw-away virtual machine.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from time import monotonic

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course import HEADING, ROOT, exercises, is_check, is_discussion  # noqa: E402

COLUMNS = ["notebook", "exercise", "status", "detail"]
CHAPTER_IN_NAME = re.compile(r"(?<![0-9])([0-9]{2})_")  # 01_tokens.ipynb, alice-01_tokens.ipynb
OUTPUT_LIMIT = 1_000_000  # characters of output kept per cell: a print loop must not fill our memory
QUIET = logging.getLogger("grade.nbclient")  # nbclient's own messages; the rows say what happened
QUIET.setLevel(logging.CRITICAL)
logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # nbclient's tasks left over from a killed kernel


@dataclass
class Row:
    notebook: str
    exercise: str  # "Exercise 1.2": text, never 1.2, which a spreadsheet reads as a number
    status: str  # pass | fail | tampered | timeout | error
    detail: str = ""


class Client(NotebookClient):
    """nbclient's, keeping only the first OUTPUT_LIMIT characters of each cell's output (and its errors)."""

    def output(self, outs, msg, display_id, cell_index):
        self.kept = getattr(self, "kept", {})
        if msg["msg_type"] == "error" or self.kept.get(cell_index, 0) < OUTPUT_LIMIT:
            self.kept[cell_index] = self.kept.get(cell_index, 0) + len(str(msg["content"]))
            return super().output(outs, msg, display_id, cell_index)
        return None


def released_chapters(release: Path) -> dict[str, Path]:
    """The released notebooks, by their `course.chapter` ("1", "A") and by their "NN_" prefix."""
    found = {}
    for path in sorted(release.glob("*.ipynb")):
        meta = nbformat.read(path, as_version=4).metadata.get("course", {})
        if "chapter" in meta:
            found[str(meta["chapter"])] = path
        if match := CHAPTER_IN_NAME.match(path.name):
            found[match[0]] = path
    return found


def which_chapter(path: Path, nb, released: dict[str, Path]) -> Path | None:
    meta = nb.metadata.get("course") if nb is not None else None
    if isinstance(meta, dict) and str(meta.get("chapter")) in released:
        return released[str(meta["chapter"])]
    return next((released[m[0]] for m in CHAPTER_IN_NAME.finditer(path.name) if m[0] in released), None)


def normal(source: str) -> str:
    """A cell's source as compared: trailing spaces and blank lines at either end don't count."""
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def plan(nb, checks: dict[str, list[str]]):
    """The steps to run, in order, and how each exercise's self-check cells were changed.

    Steps are (submission cell index, None) or (None, (exercise, released check source)). A
    submission's check is a cell tagged self-check, or a code cell identical to a released check
    (its tag lost on the way); it belongs to the exercise whose heading comes last before it.
    """
    released = {normal(source) for sources in checks.values() for source in sources}
    is_theirs = [is_check(c) or (c.cell_type == "code" and normal(c.source) in released) for c in nb.cells]
    headings, owned, current = {}, {}, None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and (match := HEADING.match(cell.source)):
            current = match["number"]
            headings.setdefault(current, i)
        elif is_theirs[i] and current:
            owned.setdefault(current, []).append(i)
    at, changed = {}, {}  # at[i]: released checks to run just before submission cell i
    for number, sources in checks.items():
        mine = owned.get(number, [])
        if number not in headings:
            after, changed[number] = len(nb.cells), "its heading was removed"
        elif not mine:  # run it where the exercise's cells end: at the next Markdown that is not its discussion
            cells = nb.cells[headings[number] + 1 :]
            end = next((k for k, c in enumerate(cells) if c.cell_type == "markdown" and not is_discussion(c)), len(cells))
            after, changed[number] = headings[number] + 1 + end, "its self-check was removed"
        else:
            after = mine[-1] + 1
            if len(mine) > len(sources):
                changed[number] = "a self-check cell was added"
            elif [normal(nb.cells[i].source) for i in mine] != [normal(s) for s in sources]:
                changed[number] = "its self-check was edited" if len(mine) == len(sources) else "a self-check cell was removed"
        for j, source in enumerate(sources):
            at.setdefault(mine[j] if j < len(mine) else after, []).append((number, source))
    steps = []
    for i in range(len(nb.cells) + 1):
        steps += [(None, check) for check in at.get(i, [])]
        if i < len(nb.cells) and nb.cells[i].cell_type == "code" and not is_theirs[i]:
            steps.append((i, None))
    return steps, changed


def one_line(text: str, limit: int = 200) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def verdict(cell, reply, token: str) -> tuple[str, str]:
    """pass or fail, by the kernel's reply and the cell's outputs, never by what it printed alone."""
    content = (reply or {}).get("content", {})
    errors = [o for o in cell.outputs if o.output_type == "error"]
    if content.get("status") != "ok" or errors:
        error = errors[0] if errors else content
        name = error.get("ename") or "an error"
        return "fail", one_line(f"{name}: {error.get('evalue', '')}".rstrip(": ")) or "the check raised an error"
    printed = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
    if token not in printed:
        return "fail", "the check did not run to its end (its last line printed nothing)"
    return "pass", ""


def run(path: Path, nb, steps, timeout: float) -> tuple[dict, str, str]:
    """Run the steps of `plan` in a fresh kernel, in a temporary directory holding a copy of `path`.

    Returns {exercise: (status, detail)} for the checks judged, and, if the run stopped early,
    the status and detail for the rest (timeout or error).
    """
    token = secrets.token_hex(16)
    sources = [nb.cells[i].source if check is None else f'{check[1].rstrip()}\n__import__("builtins").print("{token}")' for i, check in steps]
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    replies, judged = {}, {}
    workdir = Path(tempfile.mkdtemp(prefix="grade-"))
    shutil.copy(path, workdir / path.name)
    deadline = monotonic() + timeout
    client = Client(
        nbformat.v4.new_notebook(cells=cells), kernel_name="python3", allow_errors=True, log=QUIET,
        timeout_func=lambda cell: max(deadline - monotonic(), 0.01), shutdown_kernel="immediate",
        startup_timeout=max(1, min(60, int(timeout))), resources={"metadata": {"path": str(workdir)}},
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.__setitem__(cell_index, execute_reply),
    )  # fmt: skip
    where, pgid = "before the first cell", None
    try:
        with client.setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):  # its warnings are noise here
            pgid = getattr(client.km.provisioner, "pgid", None)
            for n, ((index, check), cell) in enumerate(zip(steps, cells)):
                where = f"in cell {index + 1}" if check is None else f"in the released check of Exercise {check[0]}"
                if monotonic() > deadline:
                    raise CellTimeoutError(where)
                client.execute_cell(cell, n)
                if check is not None and judged.get(check[0], ("pass",))[0] == "pass":  # its first failure counts
                    judged[check[0]] = verdict(cell, replies.get(n), token)
        return judged, "", ""
    except DeadKernelError:
        return judged, "error", f"the kernel died ({where})"
    except Exception as e:  # a cell ran out of time, the kernel did not start in time, or anything else
        if isinstance(e, CellTimeoutError) or monotonic() > deadline:
            return judged, "timeout", f"the notebook ran past its {timeout:g} s limit ({where}) and was stopped"
        return judged, "error", one_line(f"grading stopped {where}: {type(e).__name__}: {e}")
    finally:
        if pgid:  # whatever the kernel started and left in its group
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


def grade(path: Path, released: dict[str, Path], timeout: float) -> list[Row]:
    """The rows of one submission."""
    name, problem = str(path), ""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:
        nb, problem = None, one_line(f"not a readable notebook ({type(e).__name__}: {e})")
    chapter = which_chapter(path, nb, released)
    if chapter is None:
        example = min(p.name for p in released.values())
        hint = f"cannot tell which chapter this is: name the file after its chapter, as in {example}"
        return [Row(name, "", "error", f"{problem}; {hint}" if problem else hint)]
    chapter_nb = nbformat.read(chapter, as_version=4)
    checks = {ex.number: [chapter_nb.cells[i].source for i in ex.checks] for ex in exercises(chapter_nb) if ex.checks}
    if nb is None:
        return [Row(name, f"Exercise {n}", "error", problem) for n in checks]
    try:
        steps, changed = plan(nb, checks)
        judged, status, detail = run(path, nb, steps, timeout)
    except Exception as e:
        changed, judged, status, detail = {}, {}, "error", one_line(f"{type(e).__name__}: {e}")
    rows = []
    for number in checks:
        result, why = judged.get(number, (status or "error", detail or "the check was not run"))
        if number in changed:
            outcome = {"pass": "the released check passed", "fail": f"the released check failed ({why})"}.get(result, why)
            result, why = "tampered", f"{changed[number]}; {outcome}"
        rows.append(Row(name, f"Exercise {number}", result, why))
    return rows


def show(path: Path, rows: list[Row]) -> None:
    passed = sum(r.status == "pass" for r in rows)
    print(f"{path}: {passed}/{len(rows)} pass" if rows[0].exercise else f"{path}: not graded")
    for r in rows:
        label = {"pass": "", "fail": ""}.get(r.status, f" {r.status}")
        print(f"  {'✓' if r.status == 'pass' else '✗'} {r.exercise or 'notebook'}{label}" + (f" ({r.detail})" if r.detail else ""))


def spreadsheet_safe(text: str) -> str:
    return "'" + text if text[:1] in "=+-@" and text else text  # never read as a formula


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", type=Path)
    parser.add_argument("--csv", type=Path, required=True, help="where to write the grades (one row per notebook and exercise)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per notebook (default 600)")
    parser.add_argument("--release", type=Path, default=ROOT / "notebooks", help="the released chapters (default: notebooks/)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds")
    released = released_chapters(args.release) if args.release.is_dir() else {}
    if not released:
        parser.error(f"no released chapter notebooks in {args.release}")

    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for path in args.submissions:
            try:
                rows = grade(path, released, args.timeout)
            except Exception as e:  # one notebook's trouble, not the batch's
                rows = [Row(str(path), "", "error", one_line(f"could not grade it: {type(e).__name__}: {e}"))]
            out.writerows([r.notebook, r.exercise, r.status, spreadsheet_safe(r.detail)] for r in rows)
            f.flush()
            show(path, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
