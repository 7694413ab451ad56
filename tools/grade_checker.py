"""Run a released self-check on a submission's variables, in a process its cells never ran in.

Two halves, both run inside the grader's sandbox (tools/grade_sandbox.py) from a copy of this
file placed beside the package copy:

* `export(namespace, path, token)`, called by a cell the grader adds to the kernel at each
  check point: the notebook's variables, pickled with cloudpickle (names that cannot be pickled
  are skipped and listed), with the random generators' states and the grader's token.
* `serve()` (`python grade_checker.py`): imports gptcourse and torch once, then for each
  request on stdin (one JSON line: namespace file, token, check source, seconds) imports the
  gptcourse modules the file names, and forks a child that loads the namespace, compares
  gptcourse, builtins and torch with their state before loading (a difference is tampering:
  the notebook's objects changed the reference the check relies on), and runs the check. The
  answer is one JSON line on stdout, {"status": pass | fail | tampered | timeout, "detail": ...};
  pass means the check ran to its end without an exception.

What this does not stop: unpickling runs code the notebook chose (a crafted __reduce__), in
the child, which could forge its answer; the static scan in tools/grade.py flags pickle hooks.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import re
import select
import signal
import sys
import time
import types

# IPython's own names in a kernel's namespace: history, output cache, helpers. Not the student's.
IPYTHON_NAMES = re.compile(r"\A(?:In|Out|get_ipython|exit|quit|_+|_[iI]+\d*|_\d+|_oh|_ih|_dh|__\w+__)\Z")


def _rebuildable(value) -> bool:
    """False for a class or function whose module, loaded, does not hold it where it says.

    cloudpickle rebuilds such an object from its contents, which works for Python code (the
    notebook's own, or a function defined inside another) but not for a compiled class that
    gives a wrong module (safetensors' `safe_open` says `builtins`).
    """
    if not isinstance(value, type | types.FunctionType):  # builtins pickle through their owner
        return True
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
    if module in (None, "__main__") or module not in sys.modules or "<locals>" in qualname:
        return True  # rebuilt from its code, as cloudpickle means to
    found = sys.modules[module]
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is value


def export(namespace: dict, path: str, token: str) -> None:
    """Write the notebook's variables to `path` for the checker (called in the kernel)."""
    import random

    import cloudpickle

    names = {k: v for k, v in namespace.items() if not IPYTHON_NAMES.match(k)}
    skipped: list[str] = []
    # A class or function that its module does not name (safetensors' `safe_open`, chapter 8)
    # would be pickled by value, and cannot be rebuilt in the checker: one such name must not
    # cost every check the notebook's variables. Skipped, as what cannot be pickled is.
    skipped += [name for name, value in names.items() if not _rebuildable(value)]
    names = {name: value for name, value in names.items() if name not in skipped}
    try:  # all at once: objects shared between names (a model and its optimizer) stay shared
        blob = cloudpickle.dumps(names)
    except Exception:
        kept = {}
        for name, value in names.items():
            try:
                cloudpickle.dumps(value)
                kept[name] = value
            except Exception:
                skipped.append(name)
        blob = cloudpickle.dumps(kept)
    rng = {"random": random.getstate()}
    if "torch" in sys.modules:
        rng["torch"] = sys.modules["torch"].get_rng_state()
    if "numpy" in sys.modules:
        rng["numpy"] = sys.modules["numpy"].random.get_state()
    # The source of the notebook's cells, as IPython keeps it for its tracebacks (in linecache,
    # with no file on disk): a check that reads a function's source (inspect.getsource,
    # Exercise A.5) finds it in the checker too.
    import linecache

    # cloudpickle writes every function's file as "<dynamic-code>" (deterministic pickles), so the
    # file each of the notebook's functions came from goes along, to be put back.
    lines = {name: entry for name, entry in linecache.cache.items() if isinstance(entry, tuple) and len(entry) == 4 and entry[1] is None}
    files = {name: v.__code__.co_filename for name, v in names.items() if isinstance(v, types.FunctionType) and v.__module__ == "__main__"}
    with open(path, "wb") as f:
        saved = {"token": token, "names": blob, "skipped": sorted(skipped), "rng": cloudpickle.dumps(rng), "lines": lines, "files": files}
        pickle.dump(saved, f)


# Outside gptcourse and builtins, only what checks compare with: torch and its friends change
# their own module attributes on import (torch._dynamo wraps torch.manual_seed), so whole
# modules there would flag honest notebooks.
PINNED = {"torch": ["allclose", "equal", "isclose"], "torch.testing": ["assert_close"], "math": ["isclose"],
          "numpy": ["allclose", "isclose", "array_equal"], "numpy.testing": ["assert_allclose", "assert_array_equal"]}  # fmt: skip
CACHES = ("__warningregistry__", "__dict__", "__weakref__", "__slotnames__")  # filled in as Python goes (warnings, copyreg)


def _watched() -> list[tuple[str, object, list[str] | None]]:
    """(name, module or class, the attributes to watch or None for all) a loaded namespace must leave alone."""
    gptcourse = [m for n, m in sys.modules.items() if m is not None and (n == "gptcourse" or n.startswith("gptcourse."))]
    watched = [(m.__name__, m, None) for m in [*gptcourse, builtins]]
    classes = {v for m in gptcourse for v in vars(m).values() if isinstance(v, type) and v.__module__.startswith("gptcourse")}
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        classes |= {torch.Tensor, torch.nn.Module}
    watched += [(f"{c.__module__}.{c.__qualname__}", c, None) for c in sorted(classes, key=lambda c: (c.__module__, c.__qualname__))]
    watched += [(n, sys.modules[n], keys) for n, keys in PINNED.items() if n in sys.modules]
    return watched


def _attributes(entry) -> dict:
    _, o, keys = entry
    return dict(vars(o)) if keys is None else {k: getattr(o, k, None) for k in keys}


def snapshot(watched: list) -> dict:
    return {entry[0]: _attributes(entry) for entry in watched}


def changes(watched: list, before: dict) -> list[str]:
    """What differs from `before`: attributes replaced, added or deleted."""
    found = []
    for entry in watched:
        name, o, _ = entry
        now, then = _attributes(entry), before[name]
        for key in set(now) | set(then):
            if key in CACHES:
                continue
            if key not in then and not isinstance(o, type) and not key.startswith("__"):
                continue  # a module gaining a submodule or a lazy attribute on import
            if now.get(key, then) is not then.get(key, now):
                found.append(f"{name}.{key}")
    return sorted(found)


def one_line(text: str, limit: int = 200) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def check(path: str, token: str, source: str, watched: list, before: dict) -> dict:
    """Load the namespace at `path`, make sure it changed nothing it should not, run `source` on it."""
    try:
        with open(path, "rb") as f:
            saved = pickle.load(f)
    except FileNotFoundError:
        return {"status": "tampered", "detail": "the grader's cell that hands the variables over did not run as written"}
    if not isinstance(saved, dict) or saved.get("token") != token:
        return {"status": "tampered", "detail": "the variables handed over are not the ones the grader's cell wrote"}
    try:
        namespace = pickle.loads(saved["names"])
        rng = pickle.loads(saved["rng"])
    except Exception as e:
        return {"status": "fail", "detail": one_line(f"the notebook's variables could not be loaded ({type(e).__name__}: {e})")}
    loaded = {n for n in sys.modules if n.startswith("gptcourse.")} - {name for name, *_ in watched}
    if loaded:  # imported while loading, by a name the file does not spell out: its state before is unknown
        return {"status": "tampered", "detail": f"loading the notebook's variables imported {', '.join(sorted(loaded))} by a hidden name"}
    if changed := changes(watched, before):
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        return {"status": "tampered", "detail": f"loading the notebook's variables changed {shown}"}
    import random

    random.setstate(rng["random"])
    if "torch" in rng:
        sys.modules["torch"].set_rng_state(rng["torch"])
    if "numpy" in rng and "numpy" in sys.modules:
        sys.modules["numpy"].random.set_state(rng["numpy"])
    import linecache

    lines = saved.get("lines")
    if isinstance(lines, dict):
        linecache.cache.update({k: v for k, v in lines.items() if isinstance(k, str) and isinstance(v, tuple) and len(v) == 4})
    for name, filename in (saved.get("files") or {}).items():
        function = namespace.get(name)
        if isinstance(function, types.FunctionType) and isinstance(filename, str):
            function.__code__ = function.__code__.replace(co_filename=filename)
    namespace.update(__name__="__main__", __builtins__=builtins)
    try:
        exec(compile(source, "<self-check>", "exec"), namespace)
    except BaseException as e:  # SystemExit and KeyboardInterrupt fail a check too
        detail = one_line(f"{type(e).__name__}: {e}".rstrip(": ")) or "the check raised an error"
        if isinstance(e, NameError) and getattr(e, "name", None) in saved["skipped"]:
            detail += f" (the grader could not hand `{e.name}` over from the notebook: it cannot be pickled, or rebuilt elsewhere)"
        return {"status": "fail", "detail": detail}
    return {"status": "pass", "detail": ""}


def run_one(request: dict, watched: list, before: dict, answers_fd: int) -> dict:
    """Fork, check in the child, wait at most request["seconds"]."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing it does reaches the checker's own state
        os.close(read)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(answers_fd)
        try:
            answer = check(request["namespace"], request["token"], request["source"], watched, before)
        except BaseException as e:
            answer = {"status": "fail", "detail": one_line(f"{type(e).__name__}: {e}")}
        os.write(write, json.dumps(answer).encode())
        os._exit(0)
    os.close(write)
    chunks, deadline = [], time.monotonic() + float(request["seconds"])
    while (left := deadline - time.monotonic()) > 0 and select.select([read], [], [], left)[0]:
        chunk = os.read(read, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    timed_out = time.monotonic() >= deadline
    os.close(read)
    try:
        os.kill(pid, signal.SIGKILL)  # finished or not: it and nothing else answers for this check
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    if timed_out:
        return {"status": "timeout", "detail": "the check ran past the notebook's time limit"}
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return {"status": "fail", "detail": "the check stopped before it could answer (it crashed or exited)"}


def serve() -> None:
    import gptcourse  # and torch: what every check needs, imported once, before any namespace

    answers = os.fdopen(os.dup(1), "w")  # stdout is the grader's line; what imports print goes to stderr
    os.dup2(2, 1)
    answers.write('{"ready": true}\n')
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        modules = named_modules(request["namespace"], gptcourse.__path__)
        for name in modules:  # imported here, untouched, so that the child can tell if loading changed them
            try:
                __import__(name)
            except Exception:
                pass  # a module needing what this machine lacks: loading will say so
        watched = _watched()
        answer = run_one(request, watched, snapshot(watched), answers.fileno())
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def named_modules(path: str, package_path) -> list[str]:
    """The gptcourse modules a namespace file names (cloudpickle names what it pickles by reference).

    Read as bytes, never unpickled here: the file is the notebook's."""
    import pkgutil

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return []
    known = {m.name for m in pkgutil.iter_modules(package_path)}
    return sorted({f"gptcourse.{m.decode()}" for m in re.findall(rb"gptcourse\.([A-Za-z_]\w*)", raw)} & {f"gptcourse.{k}" for k in known})


if __name__ == "__main__":
    serve()
