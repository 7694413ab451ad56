"""Recording GPU rows for the book: the stamp every row carries, and the rows appended.

``make gpu`` and the benchmarks' ``--record`` append rows to the tables of
`gptcourse.results`, which the book reads back. Every row says where, when and how it was
measured (`stamp`: the UTC date, the device, the torch version, the command), so that a
figure measured elsewhere is shown as data, never as a claim.
"""

from __future__ import annotations

import csv
import datetime
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gptcourse.device import MEMORY_CAP_VARIABLE, device_name
from gptcourse.results import ResultsTable


def command_line(script: str, argv: Sequence[str]) -> str:
    """How a row was made, as a person would type it again: ``python SCRIPT ARGS``, after
    ``GPTCOURSE_GPU_MEMORY_GIB=...`` when this process runs capped."""
    command = " ".join(["python", script, *(shlex.quote(a) for a in argv)])
    cap = os.environ.get(MEMORY_CAP_VARIABLE, "").strip()
    return f"{MEMORY_CAP_VARIABLE}={shlex.quote(cap)} {command}" if cap else command


def stamp(device: torch.device | str, command: str) -> dict[str, str]:
    """The columns every recorded row carries: ``date`` (UTC), ``device``, ``torch``, ``command``.

    ``device`` is a `torch.device`, named here by `gptcourse.device.device_name`, or a
    name already known (a GPU's name, asked in another process).
    """
    name = device_name(device) if isinstance(device, torch.device) else str(device)
    if not name.strip():
        raise ValueError("device: give a torch.device or the device's name, got an empty name.")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    return {"date": date, "device": name, "torch": torch.__version__, "command": command}


def record(table: ResultsTable, rows: Iterable[Mapping[str, Any]], path: str | Path | None = None) -> Path:
    """Append `rows` to `table`'s file (or `path`), with a header if the file is new; the file."""
    path = Path(path) if path is not None else table.path
    fields = list(table.fields)
    rows = list(rows)
    for row in rows:  # every row checked before any is written
        unknown = set(row) - set(fields)
        if unknown:
            raise ValueError(f"row: unknown result field(s) {sorted(unknown)}; the file has: {fields}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        if header != fields:
            raise ValueError(f"path: {path} has the columns {header}, not {fields}; record into a new file.")
    with open(path, "a", newline="", encoding="utf-8") as f:  # GPT-2's text is not ASCII
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerows({k: row.get(k, "") for k in fields} for row in rows)
    return path
