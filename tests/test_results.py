"""The GPU rows recorded by make gpu (the benchmarks with --record, tools/gpu_run.py), kept as data (chapter 10)."""

from __future__ import annotations

import csv

import pytest

from gptcourse.results import (
    DDP_RESULTS,
    LADDER_RESULTS,
    MFU_RESULTS,
    NOTEBOOK_RESULTS,
    RESULT_FIELDS,
    RESULTS_FILE,
    command_line,
    load_ladder,
    load_results,
    record_result,
)


def test_results_file_round_trip(tmp_path):
    path = tmp_path / "results.csv"
    assert load_results(path) == []
    record_result({"device": "Tesla T4", "precision": "fp16", "tokens_per_second": 123.0, "mfu": 0.3}, path)
    record_result({"device": "NVIDIA A100-SXM4-40GB", "precision": "bf16"}, path)
    rows = load_results(path)
    assert [r["device"] for r in rows] == ["Tesla T4", "NVIDIA A100-SXM4-40GB"]
    assert rows[0]["mfu"] == "0.3" and rows[1]["mfu"] == ""
    with open(path) as f:
        assert sum(1 for line in f if line.startswith("date,")) == 1, "one header"


def test_unknown_fields_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"row: unknown result field\(s\) \['speed'\]"):
        record_result({"speed": 1}, tmp_path / "a.csv")
    other = tmp_path / "other.csv"
    other.write_text("date,device,dtype\n2024-01-01,Tesla T4,fp16\n")
    with pytest.raises(ValueError, match="other.csv has the columns"):
        record_result({"device": "Tesla T4"}, other)


def test_the_shipped_file_can_be_appended_to():
    with open(RESULTS_FILE, newline="") as f:
        assert next(csv.reader(f)) == RESULT_FIELDS
    assert all(row["device"] and row["command"] for row in load_results())  # each row says where and how


@pytest.mark.parametrize("table", [MFU_RESULTS, LADDER_RESULTS, NOTEBOOK_RESULTS, DDP_RESULTS])
def test_every_shipped_table_has_its_header_and_says_where_and_how(table):
    assert table.path.parent == RESULTS_FILE.parent, "shipped with the package: gptcourse/results/"
    with open(table.path, newline="") as f:
        assert next(csv.reader(f)) == list(table.fields)
    assert {"date", "device", "torch", "command"} <= set(table.fields)
    assert all(row["device"] and row["command"] and row["date"] for row in table.load())


def test_a_table_records_into_any_file_with_its_own_columns(tmp_path):
    path = tmp_path / "ladder.csv"
    LADDER_RESULTS.record({"device": "Tesla T4", "rung": "fp32", "status": "ran", "memory_cap_gib": 14.5}, path)
    assert load_ladder(path)[0]["memory_cap_gib"] == "14.5"
    with pytest.raises(ValueError, match=r"unknown result field\(s\) \['model'\]"):
        LADDER_RESULTS.record({"model": "gptcourse GPT"}, path)
    with pytest.raises(ValueError, match="ladder.csv has the columns"):
        MFU_RESULTS.record({"device": "Tesla T4"}, path)  # another table's file


def test_the_command_line_says_when_memory_was_capped(monkeypatch):
    monkeypatch.delenv("GPTCOURSE_GPU_MEMORY_GIB", raising=False)
    assert command_line("benchmarks/ladder.py", ["--record"]) == "python benchmarks/ladder.py --record"
    monkeypatch.setenv("GPTCOURSE_GPU_MEMORY_GIB", "14.5")
    assert command_line("benchmarks/mfu.py", ["--preset", "gpt2 small"]) == (
        "GPTCOURSE_GPU_MEMORY_GIB=14.5 python benchmarks/mfu.py --preset 'gpt2 small'"
    )
