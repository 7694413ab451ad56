"""Grade handed-in chapter notebooks by the released self-checks: one CSV row per exercise.

    python tools/grade.py SUBMISSIONS... --csv grades.csv [--timeout 600] [--release notebooks/]
                          [--jobs 2] [--summary summary.csv] [--feedback feedback/]

Each submission is matched to its released chapter (its `course.chapter` metadata, else a file
name containing the chapter's `NN_`, as in `alice/01_tokens.ipynb`), copied into a fresh
temporary directory and run there, top to bottom, in a fresh kernel, carrying on past errors.
Its own `self-check` cells are never run: the released chapter's checks run in their place
(after the exercise's cells if the student removed them), on the notebook's variables at that
point, in a separate checker process: a check passes when it ran to its end there without an
exception, whatever the notebook printed or hid.

The reports (tools/grade_report.py): the CSV, one row per exercise, columns
`student,chapter,notebook,exercise,status,points,possible,detail,written`; --summary, one row
per student and chapter; --feedback, one Markdown file per student with their written answers.
--jobs N grades N submissions at once (each a kernel and a checker: mind the memory).
Status: pass, fail (the detail gives the error), not attempted (the answer cells still hold the
student edition's stubs),
tampered (the exercise's self-check cells differ from the released ones: edited, removed or
added; or the notebook tried to get round the grader, see below; the detail says how and what
the released check gave), timeout (the notebook ran past --timeout seconds, counted for the
whole notebook, before the check) or error (the kernel died first, or the file could not be
read or matched to a chapter). "Cell N" counts from 1, Markdown included. An exercise with no
self-check is `answered` or `not attempted`: read its answer (column `written`) and give points.

Isolation (tools/grade_sandbox.py, tools/grade_checker.py). Each submission is graded by a
worker process that all its processes are re-parented to (a Linux child subreaper). Its kernel
runs in its own temporary directory with a scrubbed environment (an allowlist: no secret of
the grader's shell), imports a copy of gptcourse with no notebooks beside it, and, where Linux
offers Landlock (5.13+), may read only the system, Python and that copy, write only its own
directory, connect to nothing over TCP and signal nothing outside itself. The checks do not run
in the student's kernel: at each check point a grader cell pickles the notebook's variables
(cloudpickle), and a fresh checker process (same walls) that imported an untouched gptcourse
loads them and runs the released check; if loading changed gptcourse, builtins or torch, the
exercise is tampered. When the notebook ends every process it started is killed, and one that
had left the kernel's process group makes every exercise tampered. A static scan of the cells
the student wrote flags IPython hooks, patched references, /proc, notebooks read, the
environment, process tricks, ctypes and pickle hooks: tampered. The CSV is written (atomically)
only after every process a submission started is dead.

What remains possible, plainly: this is not a container. Without Landlock (macOS, older kernels;
the grader says so) a submission can read and write anything you can, and use the network.
With it, it can still read the system and Python folders, use UDP, use the memory and CPU it
likes (only time is limited), and write to /dev/shm. Unpickling runs code the notebook chose (a
crafted __reduce__) inside the checker, which could forge that check's answer: the scan flags
pickle hooks, nothing stops them. An object whose `==` always says yes passes an equality check.
The grader's ancestors (your shell) are readable by the same user. Grade untrusted work in a
container or a throw-away virtual machine as well.
"""

from __future__ import annotations

import argparse
import ast
import compileall
import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from time import monotonic, sleep

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
import grade_sandbox  # noqa: E402
from course import HEADING, ROOT, exercises, is_check, is_discussion  # noqa: E402
from grade_checker import one_line  # noqa: E402  (the checker's own: it runs alone, without this file)
from grade_report import (  # noqa: E402
    ReportError,
    Row,
    check_targets,
    notebook_row,
    points_of,
    rows_for,
    write_csv,
    write_feedback,
    write_summary,
)

PACKAGE = ROOT / "gptcourse"  # copied for each grader run: the kernels import the copy, with no notebooks beside it

CHAPTER_IN_NAME = re.compile(r"(?<![0-9])([0-9]{2})_")  # 01_tokens.ipynb, alice-01_tokens.ipynb
OUTPUT_LIMIT = 1_000_000  # characters of output kept per cell: a print loop must not fill our memory
QUIET = logging.getLogger("grade.nbclient")  # nbclient's own messages; the rows say what happened
QUIET.setLevel(logging.CRITICAL)
logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # nbclient's tasks left over from a killed kernel


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


class Walls:
    """One grader run's package copy (read-only to submissions) and what a submission may read."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="grade-pkg-"))
        shutil.copytree(PACKAGE, self.root / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(TOOLS / "grade_checker.py", self.root / "grade_checker.py")
        compileall.compile_dir(self.root, quiet=2)  # compiled once here: the copy is read-only to the kernels
        self.read = [*grade_sandbox.SYSTEM_READ, *grade_sandbox.python_dirs(), str(self.root)]
        self.abi = grade_sandbox.landlock_abi()
        self.tcp = False  # set per submission, in its worker: the chapter's `course.local_network`

    def command(self, base: Path, command: list[str], ports=()) -> list[str]:
        """`command` confined: read the system, Python and the copy; write `base` only."""
        write = [str(base), *grade_sandbox.DEVICES_WRITE]
        tcp = ["--tcp"] if self.tcp else []
        return [sys.executable, str(TOOLS / "grade_sandbox.py"), "--read", *self.read, "--write", *write, "--bind", *map(str, ports), *tcp, "--", *command]

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


class SandboxedKernel(AsyncKernelManager):
    """jupyter_client's kernel manager, starting the kernel inside the walls (`walls`, `base` set per submission)."""

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        ports = (self.shell_port, self.iopub_port, self.stdin_port, self.hb_port, self.control_port)
        return self.walls.command(self.base, command, ports)


class Checker:
    """The checker process of one submission (tools/grade_checker.py), started beside its kernel."""

    def __init__(self, walls: Walls, base: Path, workdir: Path, env: dict):
        command = walls.command(base, [sys.executable, str(walls.root / "grade_checker.py")])
        self.process = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buffer, self.ready = b"", False

    def _line(self, deadline: float) -> dict | None:
        while b"\n" not in self.buffer:
            left = deadline - monotonic()
            if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.process.stdout.fileno(), 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return self._line(deadline)  # something the imports printed

    def check(self, namespace: Path, token: str, source: str, deadline: float) -> tuple[str, str]:
        seconds = max(deadline - monotonic(), 5.0)
        if not self.ready:
            self.ready = self._line(monotonic() + max(seconds, 60)) is not None
            if not self.ready:
                return "error", "the grader's checker did not start"
        request = {"namespace": str(namespace), "token": token, "source": source, "seconds": seconds}
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        answer = self._line(monotonic() + seconds + 10)
        if answer is None:
            return "error", "the grader's checker stopped answering"
        return answer["status"], answer["detail"]

    def stop(self):
        self.process.kill()  # it keeps nothing worth a clean exit, and torch's takes half a second
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def escaped(pgid: int | None) -> list[int]:
    """After the kernel and checker stopped: the processes the submission left running (after its group is killed)."""
    if pgid:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    if not os.path.isdir("/proc"):
        return []
    end = monotonic() + 2
    while True:  # the killed group takes a moment to die; what is left after that left the group
        grade_sandbox.reap()
        alive = grade_sandbox.descendants()
        if not any(s[2] == pgid for s in alive.values()) or monotonic() > end:
            return sorted(alive)
        sleep(0.02)


def run(path: Path, nb, steps, timeout: float, walls: Walls) -> tuple[dict, str, str]:
    """Run the steps of `plan` in a fresh kernel, in a temporary directory holding a copy of `path`.

    Returns {exercise: (status, detail)} for the checks judged, and, if the run stopped early,
    the status and detail for the rest (timeout, error, or tampered when a process outlived it).
    """
    base = Path(tempfile.mkdtemp(prefix="grade-"))
    workdir, handover = base / "work", base / "handover"
    workdir.mkdir()
    handover.mkdir()
    shutil.copy(path, workdir / path.name)
    env = grade_sandbox.scrubbed_env(base, walls.root)
    with contextlib.suppress(OSError):  # a warm font cache: matplotlib would rebuild it in every submission
        for cache in (Path.home() / ".cache" / "matplotlib").glob("fontlist-*.json"):
            shutil.copy(cache, base / "mpl")
    tokens = [secrets.token_hex(16) for _ in steps]
    export = '__import__("grade_checker").export(globals(), {!r}, {!r})'
    sources = [nb.cells[i].source if check is None else export.format(str(handover / f"{n}.pkl"), tokens[n]) for n, (i, check) in enumerate(steps)]
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    replies, judged = {}, {}
    deadline = monotonic() + timeout
    km = SandboxedKernel(kernel_name="python3", connection_file=str(base / "jupyter" / "kernel.json"))
    km.walls, km.base = walls, base
    client = Client(
        nbformat.v4.new_notebook(cells=cells), km=km, allow_errors=True, log=QUIET,
        timeout_func=lambda cell: max(deadline - monotonic(), 0.01), shutdown_kernel="immediate",
        startup_timeout=max(1, min(60, int(timeout))), resources={"metadata": {"path": str(workdir)}},
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.__setitem__(cell_index, execute_reply),
    )  # fmt: skip
    where, pgid, checker, outcome = "before the first cell", None, None, (judged, "", "")
    try:
        checker = Checker(walls, base, workdir, env)
        with client.setup_kernel(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):  # its warnings are noise here
            pgid = getattr(client.km.provisioner, "pgid", None)
            for n, ((index, check), cell) in enumerate(zip(steps, cells)):
                where = f"in cell {index + 1}" if check is None else f"in the released check of Exercise {check[0]}"
                if monotonic() > deadline:
                    raise CellTimeoutError(where)
                client.execute_cell(cell, n)
                if check is not None and judged.get(check[0], ("pass",))[0] == "pass":  # its first failure counts
                    judged[check[0]] = judge(cell, replies.get(n), checker, handover / f"{n}.pkl", tokens[n], check[1], deadline)
    except DeadKernelError:
        outcome = judged, "error", f"the kernel died ({where})"
    except Exception as e:  # a cell ran out of time, the kernel did not start in time, or anything else
        if isinstance(e, CellTimeoutError) or monotonic() > deadline:
            outcome = judged, "timeout", f"the notebook ran past its {timeout:g} s limit ({where}) and was stopped"
        else:
            outcome = judged, "error", one_line(f"grading stopped {where}: {type(e).__name__}: {e}")
    finally:
        if checker:
            checker.stop()
        left = escaped(pgid)
        grade_sandbox.kill_descendants()
        shutil.rmtree(base, ignore_errors=True)
    if left:
        why = f"a process it started outlived the notebook, having left the kernel's process group ({len(left)} killed)"
        return {number: ("tampered", why) for number in {c[0] for _, c in steps if c}}, "tampered", why
    return outcome


def judge(cell, reply, checker: Checker, namespace: Path, token: str, source: str, deadline: float) -> tuple[str, str]:
    """The released check's verdict, run by the checker on what the export cell handed over."""
    content = (reply or {}).get("content", {})
    errors = [o for o in cell.outputs if o.output_type == "error"]
    if content.get("status") != "ok" or errors:  # the export itself failed: the check cannot run
        error = errors[0] if errors else content
        name = error.get("ename") or "an error"
        return "fail", one_line(f"the grader could not read the notebook's variables ({name}: {error.get('evalue', '')})")
    return checker.check(namespace, token, source, deadline)


# What a student's cell has no business doing: each is a way round the grader, not an answer.
SUSPECT_ATTRIBUTES = {
    "input_transformers_cleanup": "an IPython input hook", "input_transformers_post": "an IPython input hook",
    "input_transformer_manager": "an IPython input hook", "ast_transformers": "an IPython AST hook",
    "set_custom_exc": "an IPython exception hook", "showtraceback": "IPython's traceback display",
    "excepthook": "sys.excepthook", "settrace": "a trace hook", "setprofile": "a profile hook",
    "environ": "the environment", "environb": "the environment", "getenv": "the environment", "putenv": "the environment",
    "setsid": "a new session", "setpgid": "a new process group", "setpgrp": "a new process group", "fork": "fork",
    "forkpty": "fork", "daemon": "a daemon", "system": "os.system", "popen": "os.popen", "posix_spawn": "posix_spawn",
    "__reduce__": "a pickle hook", "__reduce_ex__": "a pickle hook", "__setstate__": "a pickle hook", "modules": "sys.modules",
}  # fmt: skip
SUSPECT_MODULES = {"subprocess": "subprocess", "ctypes": "ctypes", "cffi": "cffi", "builtins": "builtins", "copyreg": "a pickle hook",
                   "pty": "a pseudo-terminal", "nbformat": "notebooks read"}  # fmt: skip
SUSPECT_TEXT = {"/proc": "/proc", ".ipynb": "notebooks read", "__builtins__": "builtins"}


def scan(nb, released_sources: set[str]) -> list[str]:
    """'cell N: what' for each cell the student wrote or changed that reaches round the grader."""
    from IPython.core.inputtransformer2 import TransformerManager

    trees = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            with contextlib.suppress(Exception):  # not Python: read as text below
                trees[index] = ast.parse(TransformerManager().transform_cell(cell.source))
    imported = {  # names bound to gptcourse or its contents, in any cell (the released ones import them)
        (alias.asname or alias.name).split(".")[0]
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
        if ((node.module if isinstance(node, ast.ImportFrom) else None) or alias.name).split(".")[0] == "gptcourse"
    }
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or normal(cell.source) in released_sources:
            continue
        what: set[str] = set()
        tree = trees.get(index)
        if tree is None:
            what |= {v for k, v in {**SUSPECT_ATTRIBUTES, **SUSPECT_MODULES}.items() if re.search(rf"\b{re.escape(k)}\b", cell.source)}
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.Attribute) and node.attr in SUSPECT_ATTRIBUTES:
                if node.attr == "modules" and not (isinstance(node.value, ast.Name) and node.value.id == "sys"):
                    continue  # a module's submodules (model.modules()), not sys.modules
                if node.attr not in ("system", "popen") or isinstance(node.value, ast.Name):  # not `!ls`: get_ipython().system
                    what.add(SUSPECT_ATTRIBUTES[node.attr])
            elif isinstance(node, ast.FunctionDef) and node.name in SUSPECT_ATTRIBUTES and node.name.startswith("__"):
                what.add(SUSPECT_ATTRIBUTES[node.name])
            elif isinstance(node, ast.Attribute) and node.attr == "register" and isinstance(node.value, ast.Attribute) and node.value.attr == "events":
                what.add("an IPython event hook")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                for alias in node.names:
                    top = (module or alias.name).split(".")[0]
                    if top in SUSPECT_MODULES:
                        what.add(SUSPECT_MODULES[top])
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                what |= {v for k, v in SUSPECT_TEXT.items() if k in node.value}
            elif isinstance(node, ast.Name) and node.id == "__builtins__":
                what.add("builtins")
        for node in ast.walk(tree) if tree else ():  # an assignment to an attribute of what gptcourse gave
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else node.targets if isinstance(node, ast.Delete) else []
            for target in targets:
                root = target
                while isinstance(root, (ast.Attribute, ast.Subscript)):
                    root = root.value
                if target is not root and isinstance(root, ast.Name) and root.id in imported:
                    what.add(f"changes gptcourse's {root.id}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr") and node.args:
                root = node.args[0]
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in imported:
                    what.add(f"changes gptcourse's {root.id}")
        if what:
            found.append(f"cell {index + 1}: " + ", ".join(sorted(what)))
    return found


def grade(path: Path, released: dict[str, Path], timeout: float, walls: Walls) -> list[Row]:
    """The rows of one submission (run it through `grade_all`, which kills what it leaves behind)."""
    problem = ""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:
        nb, problem = None, one_line(f"not a readable notebook ({type(e).__name__}: {e})")
    chapter = which_chapter(path, nb, released)
    if chapter is None:
        example = min(p.name for p in released.values())
        hint = f"cannot tell which chapter this is: name the file after its chapter, as in {example}"
        return [notebook_row(path, "error", f"{problem}; {hint}" if problem else hint)]
    chapter_nb = nbformat.read(chapter, as_version=4)
    # A chapter whose processes talk over TCP on this machine (appendix A: torchrun, gloo) says
    # so in its metadata; its submissions may then use TCP (files and signals stay walled in).
    walls.tcp = bool(chapter_nb.metadata.get("course", {}).get("local_network", False))
    checks = {ex.number: [chapter_nb.cells[i].source for i in ex.checks] for ex in exercises(chapter_nb) if ex.checks}
    if nb is None:
        return rows_for(path, chapter, chapter_nb, None, {n: ("error", problem) for n in checks})
    released_code = {normal(c.source) for c in chapter_nb.cells if c.cell_type == "code"}
    try:
        found = scan(nb, released_code)
        steps, changed = plan(nb, checks)
        judged, status, detail = run(path, nb, steps, timeout, walls)
    except Exception as e:
        found, changed, judged, status, detail = [], {}, {}, "error", one_line(f"{type(e).__name__}: {e}")
    results = {}
    for number in checks:
        result, why = judged.get(number, (status or "error", detail or "the check was not run"))
        outcome = {"pass": "the released check passed", "fail": f"the released check failed ({why})"}.get(result, why)
        if number in changed:
            result, why = "tampered", f"{changed[number]}; {outcome}"
        elif found:
            result, why = "tampered", f"it reaches round the grader ({'; '.join(found)}); {outcome}"
        results[number] = (result, why)
    return rows_for(path, chapter, chapter_nb, nb, results)


def _worker(path: Path, released: dict[str, Path], timeout: float, walls: Walls, answer) -> None:
    grade_sandbox.become_subreaper()  # every process the submission starts ends up ours, to kill
    try:
        rows = grade(path, released, timeout, walls)
    except Exception as e:  # one notebook's trouble, not the batch's
        rows = [notebook_row(path, "error", one_line(f"could not grade it: {type(e).__name__}: {e}"))]
    grade_sandbox.kill_descendants()  # before the rows leave: nothing of the submission outlives its grading
    answer.send(rows)


def start_worker(path: Path, released: dict[str, Path], timeout: float, walls: Walls):
    """`grade` in a forked worker process that all the submission's processes are re-parented to."""
    receive, send = multiprocessing.Pipe(duplex=False)
    worker = multiprocessing.get_context("fork").Process(target=_worker, args=(path, released, timeout, walls, send), daemon=True)
    worker.start()
    send.close()
    return receive, worker


def stop_worker(worker) -> None:
    """Kill a worker and everything below it (what it left behind when it was stopped early)."""
    for pid in grade_sandbox.descendants(worker.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.kill()
    worker.join()


def grade_all(paths: list[Path], released: dict[str, Path], timeout: float, walls: Walls, jobs: int = 1):
    """Each submission's rows, in the order given, graded `jobs` at a time (one worker each).

    No threads: the workers are forked from this one thread, and their answers awaited together.
    A worker that has not answered by its notebook's time plus a margin (its kernel's start, the
    checks) is killed with all it started, and its submission gets an error row.
    """
    results: list[list[Row] | None] = [None] * len(paths)
    pending, running = list(enumerate(paths)), {}
    while pending or running:
        while pending and len(running) < jobs:
            index, path = pending.pop(0)
            receive, worker = start_worker(path, released, timeout, walls)
            running[receive] = (index, path, worker, monotonic() + timeout + 120)
        ready = multiprocessing.connection.wait(list(running), timeout=1.0)
        for receive in list(running):
            index, path, worker, deadline = running[receive]
            if receive not in ready and monotonic() < deadline:
                continue
            rows = None
            if receive in ready:
                with contextlib.suppress(EOFError, OSError):
                    rows = receive.recv()
            stop_worker(worker)
            receive.close()
            del running[receive]
            rows = rows or [notebook_row(path, "error", "the grading process died before it answered")]
            results[index] = rows
            show(path, rows)
    grade_sandbox.kill_descendants()  # orphans of killed workers came to us: none outlives the grading
    return [rows for rows in results if rows]


def show(path: Path, rows: list[Row]) -> None:
    passed = sum(r.status == "pass" for r in rows)
    print(f"{path}: {passed}/{len(rows)} pass" if rows[0].exercise else f"{path}: not graded")
    for r in rows:
        label = {"pass": "", "fail": ""}.get(r.status, f" {r.status}")
        mark = {"pass": "✓", "answered": "•", "not attempted": "○"}.get(r.status, "✗")
        print(f"  {mark} {r.exercise or 'notebook'}{label}" + (f" ({r.detail})" if r.detail else ""))


def target_problem(option: str, target: Path, is_folder: bool = False) -> str | None:
    """What makes `target` no place for a report, said so that the fix is plain, or None.

    Before `check_targets`' probe: a file where a folder must be makes mkdir say only "File
    exists", and a device or pipe (--csv /dev/null) would be replaced by the report, which
    is renamed over its path (as root, /dev/null itself would become the CSV).
    """
    for folder in [target, *target.parents] if is_folder else target.parents:
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                return f"{option} {target}: {folder} is a file, not a folder; choose a path in a folder you can write to"
            break
    if not is_folder and target.exists() and not target.is_file() and not target.is_dir():
        return (
            f"{option} {target} is not a regular file (a device, a pipe or a socket), and the report is written by "
            f"replacing the file at that path: name a regular file, e.g. {option} grades.csv"
        )
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", type=Path)
    parser.add_argument("--csv", type=Path, required=True, help="where to write the grades (one row per notebook and exercise)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per notebook (default 600)")
    parser.add_argument("--release", type=Path, default=ROOT / "notebooks", help="the released chapters (default: notebooks/)")
    parser.add_argument("--summary", type=Path, metavar="FILE", help="also write one row per student and chapter: checks passed, points")
    parser.add_argument("--feedback", type=Path, metavar="DIR", help="also write one Markdown file per student into DIR")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1; each takes a kernel and a checker)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds")
    if args.jobs < 1:
        parser.error(f"--jobs must be 1 or more, got {args.jobs}")
    released = released_chapters(args.release) if args.release.is_dir() else {}
    if not released:
        parser.error(f"no released chapter notebooks in {args.release}")
    try:  # before any grading: a report that cannot be written must not cost an hour of grading
        for option, target, is_folder in (("--csv", args.csv, False), ("--summary", args.summary, False), ("--feedback", args.feedback, True)):
            if target is not None and (problem := target_problem(option, target, is_folder)):
                raise ReportError(problem)
        check_targets(args.csv, args.summary, args.feedback, inputs=args.submissions)
        for chapter in set(released.values()):
            points_of(nbformat.read(chapter, as_version=4))
    except (ReportError, ValueError) as e:
        parser.error(str(e))
    except OSError as e:  # a folder on the way that cannot even be looked at
        parser.error(f"cannot look at {e.filename}: {e.strerror}; choose paths you can write to for the reports")

    grade_sandbox.become_subreaper()
    walls = Walls()
    if not walls.abi:
        print("Landlock is not available here: submissions are NOT sandboxed (they can read and write what you can).", file=sys.stderr)
    rows: list[Row] = []
    try:
        rows = [row for graded in grade_all(args.submissions, released, args.timeout, walls, args.jobs) for row in graded]
    finally:
        walls.close()
        grade_sandbox.kill_descendants()
        report(rows, args)
    return 0


def report(rows: list[Row], args) -> None:
    """Write the reports, once every submission's processes are dead: each whole or not at all."""
    write_csv(args.csv, rows)
    if args.summary:
        write_summary(args.summary, rows)
    if args.feedback:
        write_feedback(args.feedback, rows)


if __name__ == "__main__":
    sys.exit(main())
