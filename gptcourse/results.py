"""Measurements recorded on GPUs, kept as data, read back (chapter 10).

The development machines have no GPU: ``make gpu`` appends rows, where one is, to the CSV
files of ``gptcourse/results/`` (written by ``benchmarks/recording.py``), which ship with
the package; chapter 10 and appendix A show them with device, date, torch and command.
One `ResultsTable` per file and the command that writes it: `MFU_RESULTS` (our GPT beside
the peers, ``benchmarks/mfu.py --record``), `LADDER_RESULTS` (``benchmarks/ladder.py
--record``), `NOTEBOOK_RESULTS` (each chapter's GPU run time, ``tools/gpu_run.py``),
`DDP_RESULTS` (data-parallel training, appendix A, ``benchmarks/ddp.py --record``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

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
