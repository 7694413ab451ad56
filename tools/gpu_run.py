"""`make gpu`: measure on the GPU this machine has what the book shows as GPU evidence.

    python tools/gpu_run.py                         # what `make gpu` runs
    python tools/gpu_run.py --notebooks 07 10       # only chapters 7 and 10 (then the benchmarks)
    python tools/gpu_run.py --no-capped-pass        # skip the second, T4-sized pass

The development machines have no GPU; whenever one is at hand, this runs there, in order:

1. every chapter under nbval on the GPU, one at a time, timed (the wall time of nbval running
   it, the kernel's start included): the time goes into the notebook's metadata,
   ``course.runtime_measured.gpu = "N s on DEVICE, DATE, torch X"`` (``runtime.t4`` stays the
   prose the header prints), and a row into ``gptcourse/results/gpu_notebooks.csv``;
2. the optimisation ladder, ``benchmarks/ladder.py --record`` (``results/ladder.csv``);
3. ``benchmarks/mfu.py --preset gpt2-small --record`` (``results/gpu_mfu.csv``);
4. ``benchmarks/ddp.py --record``: appendix A's data-parallel training, DDP through NCCL on
   every GPU of this machine (``results/ddp.csv``);
5. on a GPU with more memory free than a T4 (14.5 GiB), steps 1 and 2 again with
   ``GPTCOURSE_GPU_MEMORY_GIB=14.5``: the process capped to a T4's memory
   (`gptcourse.device`), so that every notebook is sized for, and every out-of-memory
   path rehearsed on, a T4. Those rows carry ``memory_cap_gib`` 14.5; the notebooks'
   metadata keeps the uncapped times.

Then commit ``gptcourse/results/*.csv`` and the notebooks (metadata only: no outputs are
written), saying which device gave them. Without a CUDA GPU it refuses, and says why.

Not here: ``benchmarks/generations.py --record``, chapter 8's text from GPT-2, needs the
Hugging Face hub rather than a GPU (GPU machines are often offline); run it where the hub is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat
from course import APPENDIX_GLOB, CHAPTER_GLOB  # tools/, beside this file

from gptcourse.device import GIB, MEMORY_CAP_VARIABLE
from gptcourse.gpu_budget import T4_FREE_BYTES
from gptcourse.results import NOTEBOOK_RESULTS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmarks' recording, shared with them
from recording import record, stamp  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
T4_CAP_GIB = T4_FREE_BYTES / GIB  # 14.5
Runner = Callable[..., subprocess.CompletedProcess]

# Asked in a child process, so that this one never holds a CUDA context (~0.5 GiB) while the
# notebooks run: on a T4 they need every byte.
_PROBE = """
import json, torch
from gptcourse.device import device_name
cuda = torch.cuda.is_available()
free, total = torch.cuda.mem_get_info() if cuda else (0, 0)
print(json.dumps({"cuda": cuda, "name": device_name("cuda") if cuda else None, "free": free,
                  "total": total, "torch": torch.__version__, "cuda_version": torch.version.cuda}))
"""


class NoGPU(RuntimeError):
    """There is no CUDA GPU to measure on: the message says why, and what to do."""


def probe_gpu(runner: Runner = subprocess.run) -> dict[str, Any]:
    """The GPU as torch sees it, or `NoGPU` with a message saying what is missing."""
    done = runner([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NoGPU(f"make gpu: could not ask torch about the GPU:\n{done.stderr.strip()}")
    gpu = json.loads(done.stdout.strip().splitlines()[-1])
    if not gpu["cuda"]:
        build = "a CPU-only build" if gpu["cuda_version"] is None else f"built for CUDA {gpu['cuda_version']}"
        raise NoGPU(
            f"make gpu needs a CUDA GPU, and torch.cuda.is_available() is False here (torch {gpu['torch']}, {build}).\n"
            "Run it on a machine with an NVIDIA GPU and a CUDA build of torch in .venv: `make setup` keeps a torch "
            "already installed, so install one first (.venv/bin/pip install torch: PyPI's Linux wheel is the CUDA build)."
        )
    return gpu


def runtime_text(seconds: float, device: str, date: str, torch_version: str) -> str:
    """What ``course.runtime_measured.gpu`` says: "52 s on Tesla T4, 2026-12-01, torch 2.5.1"."""
    return f"{seconds:.0f} s on {device}, {date}, torch {torch_version}"


def set_runtime_measured(notebook: Path, text: str) -> None:
    """Write `text` as the notebook's ``course.runtime_measured.gpu``, leaving everything else as it is."""
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata.setdefault("course", {}).setdefault("runtime_measured", {})["gpu"] = text
    nbformat.write(nb, notebook)


def nbval_command(notebook: Path) -> list[str]:
    """One notebook under nbval, its cells allowed 10 minutes each (a T4 chapter's budget is 5 in all)."""
    return [sys.executable, "-m", "pytest", str(notebook), "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=600", "-q"]


def run_timed(command: Sequence[str], env: dict[str, str], runner: Runner, clock: Callable[[], float]) -> tuple[bool, float]:
    """Run `command` in the repository, its output shown as it comes; (passed, seconds)."""
    start = clock()
    done = runner(list(command), cwd=ROOT, env=env, check=False)
    return done.returncode == 0, clock() - start


def record_notebook(
    notebook: Path,
    passed: bool,
    seconds: float,
    gpu: dict[str, Any],
    cap_gib: float | None = None,
    results: Path | None = None,
) -> dict[str, Any]:
    """The row of one notebook's run, appended to ``gpu_notebooks.csv`` (or `results`); an
    uncapped run that passed also writes its time into the notebook's metadata."""
    command = f"python -m pytest notebooks/{notebook.name} --nbval-lax --nbval-current-env"
    row = {
        **stamp(gpu["name"], command if cap_gib is None else f"{MEMORY_CAP_VARIABLE}={cap_gib:g} {command}"),
        "memory_cap_gib": "" if cap_gib is None else f"{cap_gib:g}",
        "notebook": notebook.name,
        "status": "passed" if passed else "failed",
        "seconds": round(seconds, 1),
    }
    record(NOTEBOOK_RESULTS, [row], results)
    if passed and cap_gib is None:
        set_runtime_measured(notebook, runtime_text(seconds, row["device"], row["date"], row["torch"]))
    return row


def passes(gpu: dict[str, Any], capped_pass: bool = True) -> list[float | None]:
    """The memory caps to run under, in GiB: none, then a T4's where this GPU has more free."""
    return [None, T4_CAP_GIB] if capped_pass and gpu["free"] > T4_FREE_BYTES else [None]


def benchmarks(cap_gib: float | None) -> list[list[str]]:
    """The benchmark commands of one pass: the ladder always; the MFU comparison, DDP and decode uncapped only."""
    commands = [[sys.executable, "benchmarks/ladder.py", "--record"]]
    if cap_gib is None:
        commands.append([sys.executable, "benchmarks/mfu.py", "--preset", "gpt2-small", "--record"])
        commands.append([sys.executable, "benchmarks/ddp.py", "--record"])
        commands.append([sys.executable, "benchmarks/decode.py", "--record"])
    return commands


def select_notebooks(names: Sequence[str] | None, directory: Path = NOTEBOOKS) -> list[Path]:
    """The chapters, then the appendices, in order; `names` picks some by prefix ("07", "10_mfu", "appendix_a")."""
    chapters = sorted(directory.glob(CHAPTER_GLOB)) + sorted(directory.glob(APPENDIX_GLOB))
    if not names:
        return chapters
    chosen = [nb for nb in chapters if any(nb.name.startswith(n) for n in names)]
    unknown = [n for n in names if not any(nb.name.startswith(n) for nb in chapters)]
    if unknown:
        raise SystemExit(f"--notebooks: no chapter starts with {', '.join(map(repr, unknown))}; they are {[nb.name for nb in chapters]}.")
    return chosen


def main(
    argv: Sequence[str] | None = None,
    runner: Runner = subprocess.run,
    clock: Callable[[], float] = time.perf_counter,
    notebooks_dir: Path = NOTEBOOKS,
    results: Path | None = None,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", nargs="+", metavar="PREFIX", help="only these chapters, e.g. 07 10 (default: all)")
    parser.add_argument("--no-capped-pass", action="store_true", help="skip the second pass capped to a T4's memory")
    args = parser.parse_args(argv)
    chosen = select_notebooks(args.notebooks, notebooks_dir)
    gpu = probe_gpu(runner)
    print(f"make gpu: {gpu['name']}, {gpu['free'] / GIB:.1f} of {gpu['total'] / GIB:.1f} GiB free, torch {gpu['torch']}", flush=True)
    outcomes: list[tuple[str, bool, float]] = []
    for cap in passes(gpu, capped_pass=not args.no_capped_pass):
        env = dict(os.environ)
        env.pop(MEMORY_CAP_VARIABLE, None)
        label = ""
        if cap is not None:
            env[MEMORY_CAP_VARIABLE] = f"{cap:g}"
            label = f" [capped to {cap:g} GiB]"
        for notebook in chosen:
            print(f"\n== {notebook.name}{label}", flush=True)
            passed, seconds = run_timed(nbval_command(notebook), env, runner, clock)
            record_notebook(notebook, passed, seconds, gpu, cap, results)
            outcomes.append((notebook.name + label, passed, seconds))
        for command in benchmarks(cap):
            print(f"\n== {' '.join(command[1:])}{label}", flush=True)
            passed, seconds = run_timed(command, env, runner, clock)
            outcomes.append((" ".join(command[1:]) + label, passed, seconds))
    print("\nmake gpu, done:")
    for what, passed, seconds in outcomes:
        print(f"  {'ok    ' if passed else 'FAILED'} {seconds:7.1f} s  {what}")
    print("Commit gptcourse/results/*.csv and the notebooks' metadata, saying which GPU measured them.")
    return 0 if all(passed for _, passed, _ in outcomes) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except NoGPU as refusal:
        print(refusal, file=sys.stderr)
        sys.exit(2)
