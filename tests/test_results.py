"""The GPU rows recorded by benchmarks/mfu.py --record, kept as data (chapter 10)."""

from __future__ import annotations

import csv

import pytest

from gptcourse.results import RESULT_FIELDS, RESULTS_FILE, load_results, record_result


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
