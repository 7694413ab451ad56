"""gptcourse.results: the GPU rows make gpu records (benchmarks/recording.py writes them), read back (chapter 10)."""

from __future__ import annotations

import csv

import pytest

from gptcourse.results import DDP_RESULTS, LADDER_RESULTS, MFU_RESULTS, NOTEBOOK_RESULTS, RESULTS_DIR, ResultsTable

TABLES = [MFU_RESULTS, LADDER_RESULTS, NOTEBOOK_RESULTS, DDP_RESULTS]


def test_a_table_reads_its_rows_and_skips_blank_lines(tmp_path):
    table = ResultsTable(tmp_path / "t.csv", ("date", "device", "mfu"))
    assert table.load() == [], "no file yet: no rows"
    table.path.write_text("date,device,mfu\n2026-01-02,Tesla T4,0.31\n,,\n2026-01-03,NVIDIA A100-SXM4-40GB,\n")
    assert table.load() == [
        {"date": "2026-01-02", "device": "Tesla T4", "mfu": "0.31"},
        {"date": "2026-01-03", "device": "NVIDIA A100-SXM4-40GB", "mfu": ""},
    ]
    other = tmp_path / "other.csv"
    other.write_text("date,device,mfu\n2026-02-01,cpu,\n")
    assert [r["device"] for r in table.load(other)] == ["cpu"], "path reads another file"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.path.name)
def test_every_shipped_table_has_its_header(table):
    assert table.path.parent == RESULTS_DIR and RESULTS_DIR.name == "results", "shipped with the package: gptcourse/results/"
    with open(table.path, newline="") as f:
        assert next(csv.reader(f)) == list(table.fields), "a file make gpu can append to"
    assert {"date", "device", "torch", "command"} <= set(table.fields), "every row can say where, when and how"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.path.name)
def test_every_shipped_row_says_where_when_and_how(table):
    rows = table.load()
    if not rows:  # the development machines have no GPU: only `make gpu` on one records rows
        pytest.skip(f"{table.path.name} has no rows yet: run make gpu on an NVIDIA GPU and commit it")
    for row in rows:
        assert row["device"] and row["date"] and row["torch"] and row["command"], row
