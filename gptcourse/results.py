"""Measurements recorded on GPUs, kept as data (chapter 10).

The development machines have no GPU. Where one is available, ``make gpu`` runs the
benchmarks there with ``--record``, and they append rows to the CSV files of
``gptcourse/results/``, which ship with the package; chapter 10 shows the rows with their
device, date, torch version and command. One `ResultsTable` per file:

- `MFU_RESULTS`, ``gpu_mfu.csv``: ``benchmarks/mfu.py --record``, our GPT beside the peers;
- `LADDER_RESULTS`, ``ladder.csv``: ``benchmarks/ladder.py --record``, the optimisation ladder;
- `NOTEBOOK_RESULTS`, ``gpu_notebooks.csv``: ``tools/gpu_run.py``, each chapter's GPU run time;
- `DDP_RESULTS`, ``ddp.csv``: ``benchmarks/ddp.py --record``, data-parallel training on the
  GPUs of one machine, as appendix A shows it.
"""

from __future__ import annotations

import csv
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .gpu_budget import MEMORY_CAP_VARIABLE

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
        with open(path, newline="") as f:
            return [row for row in csv.DictReader(f) if any(row.values())]

    def record(self, row: Mapping[str, Any], path: str | Path | None = None) -> Path:
        """Append one row (with a header if the file is new); ``path`` appends to another file."""
        path = Path(path) if path is not None else self.path
        fields = list(self.fields)
        unknown = set(row) - set(fields)
        if unknown:
            raise ValueError(f"row: unknown result field(s) {sorted(unknown)}; the file has: {fields}.")
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
            if header != fields:
                raise ValueError(f"path: {path} has the columns {header}, not {fields}; record into a new file.")
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in fields})
        return path


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

# The names chapter 10 and benchmarks/mfu.py have always used, for the MFU table.
RESULTS_FILE = MFU_RESULTS.path
RESULT_FIELDS = list(MFU_RESULTS.fields)


def load_results(path: str | Path | None = None) -> list[dict[str, str]]:
    """The rows recorded by ``benchmarks/mfu.py --record`` (an empty list if none yet); chapter 10."""
    return MFU_RESULTS.load(path)


def record_result(row: Mapping[str, Any], path: str | Path | None = None) -> Path:
    """Append one measurement to the MFU results file (with a header if the file is new); chapter 10."""
    return MFU_RESULTS.record(row, path)


def load_ladder(path: str | Path | None = None) -> list[dict[str, str]]:
    """The rungs recorded by ``benchmarks/ladder.py --record`` (an empty list if none yet); chapter 10."""
    return LADDER_RESULTS.load(path)


def command_line(script: str, argv: Sequence[str]) -> str:
    """How a recorded row was made, as a person would type it again: ``python SCRIPT ARGS``,
    after ``GPTCOURSE_GPU_MEMORY_GIB=...`` when the process ran capped (chapter 10)."""
    command = " ".join(["python", script, *(shlex.quote(a) for a in argv)])
    cap = os.environ.get(MEMORY_CAP_VARIABLE, "").strip()
    return f"{MEMORY_CAP_VARIABLE}={shlex.quote(cap)} {command}" if cap else command
