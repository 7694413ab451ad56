"""The benchmark commands (benchmarks/mfu.py, ladder.py, ddp.py), on a CPU: quick sizes only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from gptcourse.results import DDP_RESULTS, LADDER_RESULTS

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    """benchmarks/NAME.py as a module (benchmarks/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Moves(nn.Linear):
    """A module that remembers where it was sent."""

    def __init__(self, log: list, name: str):
        super().__init__(2, 2)
        self.log, self.name = log, name

    def to(self, *args, **kwargs):
        self.log.append((self.name, str(args[0])))
        return self


def test_each_model_is_measured_with_the_others_parked_on_the_cpu():
    mfu = load("mfu")
    log: list = []
    models = {name: Moves(log, name) for name in ["ours", "hf", "nanogpt"]}
    with mfu.others_parked(models, "hf", torch.device("cuda")):
        assert log == [("ours", "cpu"), ("nanogpt", "cpu")], "only the model measured stays on the GPU"
    assert log[2:] == [("ours", "cuda"), ("nanogpt", "cuda")], "and the others come back"


def test_peak_memory_alone_is_none_on_a_cpu():
    mfu = load("mfu")
    x = torch.zeros(1, 4, dtype=torch.long)
    assert mfu.peak_memory_alone({"a": nn.Linear(2, 2)}, x, x, torch.float32) == {"a": None}


def test_the_ladder_command_on_a_cpu(tmp_path, capsys):
    ladder = load("ladder")
    results = tmp_path / "ladder.csv"
    argv = ["--preset", "gpt-nano", "--batch", "1", "--seq", "8", "--steps", "1", "--warmup", "0", "--results", str(results)]
    ladder.main(argv)
    out = capsys.readouterr().out
    assert "optimisation ladder on cpu" in out and "largest batch" in out and f"recorded in {results}" in out
    rows = LADDER_RESULTS.load(results)
    assert len(rows) == 8 and rows[0]["command"].startswith("python benchmarks/ladder.py --preset gpt-nano")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_ladder_records_gpu_rows_only(capsys):
    with pytest.raises(SystemExit):
        load("ladder").main(["--record"])
    assert "--record keeps GPU measurements only" in capsys.readouterr().err



def test_the_ddp_command_on_a_cpu(tmp_path, capsys):
    """benchmarks/ddp.py launches torchrun, reads the run's metrics and keeps them as a row."""
    ddp = load("ddp")
    results = tmp_path / "ddp.csv"
    row = ddp.main(["--device", "cpu", "--nproc", "1", "--steps", "2", "--micro-batch", "2", "--results", str(results)])
    assert "DDP on 1 × cpu (float32)" in capsys.readouterr().out
    (recorded,) = DDP_RESULTS.load(results)
    assert recorded == {key: str(value) for key, value in row.items()}
    assert (recorded["world_size"], recorded["backend"], recorded["preset"], recorded["micro_batch"]) == ("1", "gloo", "gpt-nano", "2")
    assert float(recorded["tokens_per_second"]) > 0 and recorded["mfu"] == "", "a CPU has no datasheet peak: no MFU is made up"
    assert recorded["command"] == f"python benchmarks/ddp.py --device cpu --nproc 1 --steps 2 --micro-batch 2 --results {results}"


def test_the_ddp_command_records_gpu_runs_only(capsys):
    ddp = load("ddp")
    with pytest.raises(SystemExit):
        ddp.main(["--device", "cpu", "--record"])
    assert "GPU measurements only" in capsys.readouterr().err
