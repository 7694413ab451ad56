"""Bad inputs to a distributed run (issue 23): a half-set launch environment, a rank nobody
started, a bad option under torchrun, a process count of 0. Each fails at once, or within
its timeout, with a message that names the fix; none trains something else instead."""

from __future__ import annotations

import importlib.util
import socket
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist

import gptcourse.distributed as distributed
from gptcourse.data_parallel import LAUNCH_VARIABLES, init_distributed, launch_environment

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ["--preset", "gpt-nano", "--steps", "1", "--eval-batches", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def launch_env(monkeypatch):
    """``launch_env(RANK=..., ...)``: exactly these launch variables in the environment, no others."""

    def set_env(**values: str) -> None:
        for name in (*LAUNCH_VARIABLES, "MASTER_ADDR", "MASTER_PORT"):
            monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


# ------------------------------------------------------------------ 1. an inconsistent environment


MASTER = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


@pytest.mark.parametrize(
    "env, words",
    [
        ({"WORLD_SIZE": "2"}, ["WORLD_SIZE='2' is set but RANK and LOCAL_RANK not", "unset WORLD_SIZE", "torchrun --nproc_per_node"]),
        ({"RANK": "0", "WORLD_SIZE": "2", **MASTER}, ["LOCAL_RANK not", "torchrun --nproc_per_node"]),
        ({"RANK": "abc", "WORLD_SIZE": "2", "LOCAL_RANK": "0", **MASTER}, ["RANK='abc' is not an integer", "torchrun --nproc_per_node"]),
        ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0", **MASTER}, ["RANK and LOCAL_RANK in 0 .. WORLD_SIZE - 1", "torchrun"]),
        ({"RANK": "0", "WORLD_SIZE": "0", "LOCAL_RANK": "0", **MASTER}, ["WORLD_SIZE must be >= 1"]),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, ["MASTER_ADDR is not set", "MASTER_PORT=29500"]),
        (
            {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "http"},
            ["MASTER_PORT='http' is not a port"],
        ),
    ],
)
def test_an_inconsistent_launch_environment_is_refused_before_training(env, words, launch_env, tmp_path, capsys):
    """Before: WORLD_SIZE=2 alone trained one process on half the global batch and exited 0."""
    launch_env(**env)
    with pytest.raises(ValueError) as error:
        launch_environment()
    for word in words:
        assert word in str(error.value)
    with pytest.raises(ValueError, match="RANK|WORLD_SIZE|MASTER"):
        init_distributed("cpu", timeout_s=1)
    assert distributed.main(["--out", str(tmp_path / "run"), *OPTIONS]) == 2  # said by every process, training nothing
    assert words[0] in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not dist.is_initialized()


# ------------------------------------------------------------------ 2. a rank nobody started


def test_a_rank_waiting_for_missing_ranks_says_so_and_then_fails_clearly(launch_env, tmp_path, capsys):
    """Before: RANK=0 WORLD_SIZE=2 alone waited in silence, then ended in a DistStoreError traceback."""
    port = free_port()
    launch_env(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    start = time.monotonic()
    status = distributed.main(["--out", str(tmp_path / "run"), *OPTIONS, "--timeout-s", "1"])
    err = capsys.readouterr().err
    assert status == 1
    assert time.monotonic() - start < 30
    assert err.count(f"rank 0 of 2: waiting for the other ranks to join at 127.0.0.1:{port} (timeout 1 s)") == 1
    assert "start them, or unset RANK, WORLD_SIZE and LOCAL_RANK to run one process" in err
    assert f"rank 0 of 2: the other ranks did not join at 127.0.0.1:{port} within 1 s" in err
    assert "torchrun --nproc_per_node 2" in err
    assert "Traceback" not in err and not dist.is_initialized()


# ------------------------------------------------------------------ 3. a bad option under torchrun


def test_a_bad_option_is_printed_by_rank_0_alone_and_every_rank_exits_2(launch_env, tmp_path, capsys):
    """Before: every rank printed the usage and the error (then torchrun its traceback)."""
    bad = ["--out", str(tmp_path), "--steps", "0"]
    for rank, says in (("1", False), ("0", True)):
        launch_env(RANK=rank, WORLD_SIZE="2", LOCAL_RANK=rank, MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
        with pytest.raises(SystemExit) as exit_info:
            distributed.parse_args(bad)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        if says:
            assert err.count("usage: python -m gptcourse.distributed") == 1
            assert err.count("error: steps must be a positive int, got 0") == 1
        else:
            assert err == "", f"rank {rank} should leave the message to rank 0, printed {err!r}"
    launch_env(RANK="1", WORLD_SIZE="2")  # a broken launch: nobody else would say it, so it does
    with pytest.raises(SystemExit):
        distributed.parse_args(bad)
    assert "steps must be a positive int" in capsys.readouterr().err


# ------------------------------------------------------------------ 4. benchmarks/ddp.py --nproc


@pytest.mark.parametrize("nproc", ["0", "-1", "two"])
def test_the_ddp_benchmark_refuses_a_process_count_below_one(nproc, capsys):
    """Before: --nproc 0 silently ran 2 processes, --nproc -1 failed in torchrun with an AssertionError."""
    sys.path.insert(0, str(ROOT / "benchmarks"))  # ddp.py imports recording.py, its neighbour
    spec = importlib.util.spec_from_file_location("benchmark_ddp", ROOT / "benchmarks" / "ddp.py")
    ddp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ddp)
    with pytest.raises(SystemExit) as exit_info:
        ddp.main(["--device", "cpu", "--nproc", nproc])
    assert exit_info.value.code == 2
    assert f"argument --nproc: must be a positive integer, got '{nproc}'" in capsys.readouterr().err


# ------------------------------------------------------------------ a micro-batch the validation text cannot fill


def test_a_micro_batch_larger_than_the_validation_text_still_evaluates(tmp_path):
    """Before: the validation loader had no batch (200 windows < 300), and the run died in its first evaluation."""
    config = distributed.DistributedConfig(out=tmp_path / "run", preset="gpt-nano", steps=1, micro_batch=300)
    _, _, train_set, val_loader = distributed._prepare(config, world_size=1)
    assert len(train_set) >= 300 and val_loader.batch_size == 200
    assert len(val_loader) == 1, "every validation window, in one batch"
