"""Measurements recorded on GPUs, kept as data (chapter 10).

The development machines have no GPU. Where one is available, ``benchmarks/mfu.py
--record`` appends a row per model to ``gptcourse/results/gpu_mfu.csv``, which ships with
the package; chapter 10 shows the rows with their device, date, torch version and command.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS_FILE = Path(__file__).parent / "results" / "gpu_mfu.csv"
RESULT_FIELDS = [
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
]


def load_results(path: str | Path | None = None) -> list[dict[str, str]]:
    """The rows recorded by ``benchmarks/mfu.py --record`` (an empty list if none yet); chapter 10."""
    path = Path(path) if path is not None else RESULTS_FILE
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if any(row.values())]


def record_result(row: Mapping[str, Any], path: str | Path | None = None) -> Path:
    """Append one measurement to the results file (with a header if the file is new); chapter 10."""
    path = Path(path) if path is not None else RESULTS_FILE
    unknown = set(row) - set(RESULT_FIELDS)
    if unknown:
        raise ValueError(f"row: unknown result field(s) {sorted(unknown)}; the file has: {RESULT_FIELDS}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if header != RESULT_FIELDS:
            raise ValueError(f"path: {path} has the columns {header}, not {RESULT_FIELDS}; record into a new file.")
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in RESULT_FIELDS})
    return path
