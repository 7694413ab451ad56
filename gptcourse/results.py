"""Measurements recorded on GPUs (chapter 10), and GPT-2's text (chapter 8), read back.

``make gpu`` appends rows, where a GPU is, to the CSV files of ``gptcourse/results/``
(written by ``benchmarks/recording.py``), which ship with the package; the book shows them
with device, date, torch and command. One `ResultsTable` per file and the command that
writes it: `MFU_RESULTS` (``benchmarks/mfu.py --record``), `LADDER_RESULTS`
(``benchmarks/ladder.py --record``), `NOTEBOOK_RESULTS` (``tools/gpu_run.py``),
`DDP_RESULTS` (appendix A, ``benchmarks/ddp.py --record``), `DECODE_RESULTS` (appendix C,
``benchmarks/decode.py --record``), and `GENERATION_RESULTS`:
chapter 8's GPT-2 text, which the offline book cannot make (`RECORD_GENERATIONS`)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass(frozen=True)
class ResultsTable:
    """One CSV file of recorded rows and its columns (chapter 10)."""

    path: Path
    fields: tuple[str, ...]

    def load(self, path: str | Path | None = None) -> list[dict[str, str]]:
        """The rows recorded so far (an empty list if none yet); ``path`` reads another file."""
        path = Path(path) if path is not None else self.path
        if not path.exists():
            return []
        with open(path, newline="", encoding="utf-8") as f:
            return [row for row in csv.DictReader(f) if any(row.values())]


MFU_RESULTS = ResultsTable(
    RESULTS_DIR / "gpu_mfu.csv",
    (
        "date",
        "device",
        "model",
        "precision",
        "batch_size",
        "seq_len",
        "config",
        "attention",
        "compiled",
        "tokens_per_second",
        "mfu",
        "peak_tflops",
        "peak_memory_gib",
        "torch",
        "command",
    ),
)
# One row per rung of `gptcourse.ladder.run_ladder`. Empty cells: a figure that does not
# exist there (no datasheet peak on a CPU, no memory counter, a rung skipped).
LADDER_RESULTS = ResultsTable(
    RESULTS_DIR / "ladder.csv",
    (
        "date",
        "device",
        "memory_cap_gib",  # the process was capped to this much GPU memory (a T4 rehearsed), or empty
        "config",
        "rung",
        "status",  # ran, skipped, out of memory
        "precision",
        "batch_size",
        "seq_len",
        "tokens_per_second",
        "mfu_datasheet",
        "mfu_measured",
        "peak_memory_gib",
        "estimated_memory_gib",
        "note",  # why a rung was skipped, or what ran out of memory
        "torch",
        "command",
    ),
)
NOTEBOOK_RESULTS = ResultsTable(
    RESULTS_DIR / "gpu_notebooks.csv",
    ("date", "device", "memory_cap_gib", "notebook", "status", "seconds", "torch", "command"),
)
# One row per `torchrun -m gptcourse.distributed` run on GPUs (appendix A): only what was measured,
# on as many GPUs as the machine had; never a figure for GPUs it did not have.
DDP_RESULTS = ResultsTable(
    RESULTS_DIR / "ddp.csv",
    (
        "date",
        "device",
        "world_size",
        "kind",  # DDP or FSDP2
        "backend",
        "precision",
        "preset",
        "micro_batch",
        "grad_accum",
        "seq_len",
        "tokens_per_second",
        "mfu",
        "peak_tflops",
        "torch",
        "command",
    ),
)
# Appendix C's decode steps on a GPU: one row per (batch, context), the roofline's
# prediction beside the measurement; MBU against the bandwidth measured in the same run.
DECODE_RESULTS = ResultsTable(
    RESULTS_DIR / "decode.csv",
    (
        "date",
        "device",
        "model",
        "dtype",
        "batch_size",
        "context",
        "predicted_tokens_per_second",
        "tokens_per_second",
        "bandwidth_gbs",  # the measured copy bandwidth, GB/s
        "mbu",
        "bound",  # the prediction's: memory or compute
        "torch",
        "command",
    ),
)
# Chapter 8's text from OpenAI's GPT-2: one row per setting of one recording. The book is
# built offline, with a stand-in for GPT-2, and shows GPT-2's text from here.
GENERATION_RESULTS = ResultsTable(
    RESULTS_DIR / "gpt2_generations.csv",
    (
        "date",
        "device",  # sampling draws from this device's random numbers
        "model",
        "setting",
        "prompt",
        "max_new_tokens",
        "temperature",
        "top_k",
        "seed",
        "text",  # the continuation, after the prompt
        "torch",
        "command",
    ),
)
RECORD_GENERATIONS = "python benchmarks/generations.py --record"  # needs the hub, not a GPU

# What chapter 8 generates, live or recorded: GENERATION_TOKENS tokens after the prompt with
# each setting (``model.generate``'s options), the sampled ones drawn from GENERATION_SEED.
GENERATION_PROMPT = "In Python, a function is"
GENERATION_TOKENS = 30
GENERATION_SEED = 123
GENERATION_SETTINGS: dict[str, dict[str, Any]] = {
    "greedy": {"temperature": 0.0},
    "τ = 0.7": {"temperature": 0.7},
    "τ = 1.0": {"temperature": 1.0},
    "τ = 1.5": {"temperature": 1.5},
    "τ = 1.0, top-k = 10": {"temperature": 1.0, "top_k": 10},
}


def latest_generations(model: str = "gpt2", path: str | Path | None = None) -> list[dict[str, str]]:
    """`model`'s rows from its latest recording in `GENERATION_RESULTS` (chapter 8).

    A recording is the rows one command wrote: those sharing the last row's date, device,
    torch and command, the last of each setting. An empty list if `model` has none;
    ``path`` reads another file.
    """
    rows = [row for row in GENERATION_RESULTS.load(path) if row["model"] == model]
    if not rows:
        return []
    stamp = ("date", "device", "torch", "command")
    latest = [row for row in rows if all(row[k] == rows[-1][k] for k in stamp)]
    return list({row["setting"]: row for row in latest}.values())  # the same run twice: once
