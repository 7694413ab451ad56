"""tools/gpu_run.py (make gpu): it refuses without CUDA, and records what it measures, given fake runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import gpu_run  # noqa: E402

from gptcourse.device import GIB, MEMORY_CAP_VARIABLE  # noqa: E402
from gptcourse.results import NOTEBOOK_RESULTS  # noqa: E402

H100 = {"cuda": True, "name": "NVIDIA H100 80GB HBM3", "free": 79 * GIB, "total": 80 * GIB, "torch": "2.5.1", "cuda_version": "12.4"}
T4 = {**H100, "name": "Tesla T4", "free": int(14.5 * GIB), "total": 15 * GIB}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_refuses_without_cuda_and_says_what_to_do():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_run.py")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "make gpu needs a CUDA GPU, and torch.cuda.is_available() is False here" in done.stderr
    assert "install one first" in done.stderr


class FakeMachine:
    """Runs nothing: answers the GPU probe with `gpu`, fails the commands that contain `failing`,
    and says each command took 10 s."""

    def __init__(self, gpu: dict, failing: str = "\0"):
        self.gpu, self.failing, self.calls, self.now = gpu, failing, [], 0.0

    def run(self, command, env=None, **kwargs):
        if command[1] == "-c":  # the probe
            return subprocess.CompletedProcess(command, 0, stdout=json.dumps(self.gpu) + "\n", stderr="")
        self.calls.append((command, (env or {}).get(MEMORY_CAP_VARIABLE)))
        self.now += 10.0
        return subprocess.CompletedProcess(command, 1 if any(self.failing in c for c in command) else 0)

    def clock(self) -> float:
        return self.now


@pytest.fixture
def chapters(tmp_path):
    """Two chapters' notebooks, copied: the run writes into their metadata."""
    directory = tmp_path / "notebooks"
    directory.mkdir()
    for name in ["01_tokens.ipynb", "10_mfu.ipynb"]:
        shutil.copy(ROOT / "notebooks" / name, directory / name)
    return directory


def test_a_large_gpu_measures_everything_then_again_capped_to_a_t4(chapters, tmp_path):
    machine = FakeMachine(H100)
    results = tmp_path / "gpu_notebooks.csv"
    assert gpu_run.main([], runner=machine.run, clock=machine.clock, notebooks_dir=chapters, results=results) == 0
    ran = [(" ".join(Path(c).name if c.endswith(".ipynb") else c for c in command[1:]), cap) for command, cap in machine.calls]
    assert ran == [
        ("-m pytest 01_tokens.ipynb --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -q", None),
        ("-m pytest 10_mfu.ipynb --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -q", None),
        ("benchmarks/ladder.py --record", None),
        ("benchmarks/mfu.py --preset gpt2-small --record", None),
        ("benchmarks/ddp.py --record", None),
        ("benchmarks/decode.py --record", None),
        ("-m pytest 01_tokens.ipynb --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -q", "14.5"),
        ("-m pytest 10_mfu.ipynb --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -q", "14.5"),
        ("benchmarks/ladder.py --record", "14.5"),
    ]
    rows = NOTEBOOK_RESULTS.load(results)
    assert [(r["notebook"], r["memory_cap_gib"], r["status"], r["seconds"]) for r in rows] == [
        ("01_tokens.ipynb", "", "passed", "10.0"),
        ("10_mfu.ipynb", "", "passed", "10.0"),
        ("01_tokens.ipynb", "14.5", "passed", "10.0"),
        ("10_mfu.ipynb", "14.5", "passed", "10.0"),
    ]
    assert all(r["device"] == "NVIDIA H100 80GB HBM3" and r["torch"] == torch.__version__ for r in rows), "stamped here"
    assert rows[2]["command"] == "GPTCOURSE_GPU_MEMORY_GIB=14.5 python -m pytest notebooks/01_tokens.ipynb --nbval-lax --nbval-current-env"
    nb = nbformat.read(chapters / "10_mfu.ipynb", as_version=4)
    measured = nb.metadata["course"]["runtime_measured"]["gpu"]
    assert measured == f"10 s on NVIDIA H100 80GB HBM3, {rows[0]['date']}, torch {torch.__version__}", "the row's stamp"
    original = nbformat.read(ROOT / "notebooks" / "10_mfu.ipynb", as_version=4)
    assert nb.metadata["course"]["runtime"] == original.metadata["course"]["runtime"], "the prose run times stay"
    assert [c.source for c in nb.cells] == [c.source for c in original.cells] and not any(c.get("outputs") for c in nb.cells)


def test_a_t4_runs_once_and_a_failure_is_recorded_not_timed_into_the_notebook(chapters, tmp_path):
    machine = FakeMachine(T4, failing="10_mfu")
    results = tmp_path / "gpu_notebooks.csv"
    assert gpu_run.main([], runner=machine.run, clock=machine.clock, notebooks_dir=chapters, results=results) == 1
    assert all(cap is None for _, cap in machine.calls), "no capped pass: this GPU is a T4"
    rows = NOTEBOOK_RESULTS.load(results)
    assert [(r["notebook"], r["status"]) for r in rows] == [("01_tokens.ipynb", "passed"), ("10_mfu.ipynb", "failed")]
    assert "runtime_measured" in nbformat.read(chapters / "01_tokens.ipynb", as_version=4).metadata["course"]
    assert "runtime_measured" not in nbformat.read(chapters / "10_mfu.ipynb", as_version=4).metadata["course"]


def test_chapters_are_chosen_by_prefix(chapters):
    assert [p.name for p in gpu_run.select_notebooks(["10"], chapters)] == ["10_mfu.ipynb"]
    with pytest.raises(SystemExit, match="no chapter starts with '11'"):
        gpu_run.select_notebooks(["11"], chapters)


def test_the_runtime_text():
    assert gpu_run.runtime_text(52.4, "Tesla T4", "2026-12-01", "2.5.1") == "52 s on Tesla T4, 2026-12-01, torch 2.5.1"
