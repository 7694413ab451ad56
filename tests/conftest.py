"""Fixtures shared by the tests of every module."""

import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from gptcourse.config import GPTConfig


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_config() -> GPTConfig:
    """A GPT that builds and trains in milliseconds. Its vocabulary, 97, is nobody's default."""
    return GPTConfig(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2)


@pytest.fixture
def no_network(monkeypatch):
    """This process cannot open a connection, as on a machine offline: any attempt raises OSError."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


NO_NETWORK = "import socket\ndef _refuse(*a, **k): raise OSError('network disabled in this test')\nsocket.socket.connect = _refuse\nsocket.getaddrinfo = _refuse\n"


@pytest.fixture
def run_python():
    """Run Python code in a fresh interpreter: for what one process cannot show (a kill, import-time work).

    ``run_python(code, env=None, network=True, check=True)`` returns the `CompletedProcess`
    (text output); ``network=False`` disables connections before `code` runs.
    """

    def run(code: str, env: dict | None = None, network: bool = True, check: bool = True) -> subprocess.CompletedProcess:
        source = code if network else NO_NETWORK + code
        result = subprocess.run([sys.executable, "-c", source], env=env, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"the subprocess exited with {result.returncode}:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def forward_calls(monkeypatch):
    """``forward_calls(model)``: a list that records (tokens run, tokens cached before, or
    None without a cache) for every call of ``model``, GPT or Llama (chapter 8's cache)."""

    def spy_on(model) -> list[tuple[int, int | None]]:
        calls: list[tuple[int, int | None]] = []
        forward = model.forward

        def spy(idx, cache=None, **options):
            calls.append((idx.shape[1], None if cache is None else len(cache)))
            return forward(idx, cache=cache, **options)

        monkeypatch.setattr(model, "forward", spy)
        return calls

    return spy_on


@pytest.fixture
def exercise_check():
    """``exercise_check("7.3")``: that exercise's released self-check, as source, read from
    its chapter's notebook, for tests that prove a check fails on a plausible wrong answer."""
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tools"))
    from course import exercises

    def source(number: str) -> str:
        chapter = number.split(".")[0]
        pattern = f"{int(chapter):02d}_*.ipynb" if chapter.isdigit() else f"appendix_{chapter.lower()}_*.ipynb"
        (path,) = (root / "notebooks").glob(pattern)
        nb = nbformat.read(path, as_version=4)
        (exercise,) = [e for e in exercises(nb) if e.number == number]
        return "\n".join(nb.cells[i].source for i in exercise.checks)

    return source
