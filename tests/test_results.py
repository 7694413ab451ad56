"""gptcourse.results: the GPU rows make gpu records (benchmarks/recording.py writes them), read back (chapter 10)."""

from __future__ import annotations

import csv

import pytest

from gptcourse.results import (
    DDP_RESULTS,
    DECODE_RESULTS,
    GENERATION_RESULTS,
    LADDER_RESULTS,
    MFU_RESULTS,
    NOTEBOOK_RESULTS,
    RECORD_GENERATIONS,
    RESULTS_DIR,
    ResultsTable,
    latest_generations,
)

TABLES = [MFU_RESULTS, LADDER_RESULTS, NOTEBOOK_RESULTS, DDP_RESULTS, DECODE_RESULTS, GENERATION_RESULTS]


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


def _generation_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=GENERATION_RESULTS.fields)
        writer.writeheader()
        writer.writerows({k: row.get(k, "") for k in GENERATION_RESULTS.fields} for row in rows)


def test_latest_generations_reads_the_last_recording_of_a_model(tmp_path):
    # Chapter 8 shows GPT-2's text from these rows when its weights are not at hand.
    def row(date, device, setting, text, model="gpt2", command="python benchmarks/generations.py --record"):
        return {"date": date, "device": device, "model": model, "setting": setting, "text": text, "torch": "2.5.1", "command": command}

    path = tmp_path / "gpt2_generations.csv"
    _generation_csv(path, [])
    assert latest_generations(path=path) == [], "none recorded yet: the chapter says so"
    text = 'a block of code, "named",\nthat runs — when called'  # commas, quotes, a newline, not ASCII
    _generation_csv(
        path,
        [
            row("2026-01-02", "cpu", "greedy", "old"),
            row("2026-01-02", "cpu", "τ = 0.7", "old, sampled"),
            row("2026-02-03", "Tesla T4", "greedy", text),
            row("2026-02-03", "Tesla T4", "τ = 0.7", "sampled"),
            row("2026-02-03", "Tesla T4", "greedy", "xl", model="gpt2-xl"),
        ],
    )
    latest = latest_generations(path=path)
    assert [(r["device"], r["setting"]) for r in latest] == [("Tesla T4", "greedy"), ("Tesla T4", "τ = 0.7")], "the last recording, in order"
    assert latest[0]["text"] == text, "the text comes back as written"
    assert [r["text"] for r in latest_generations("gpt2-xl", path)] == ["xl"], "one model's rows only"
    assert latest_generations("gpt2-medium", path) == []
    again = [row("2026-02-03", "Tesla T4", "greedy", "again"), row("2026-02-03", "Tesla T4", "τ = 0.7", "again")]
    _generation_csv(path, [*latest, *again])  # the same command run twice in a day
    assert [r["text"] for r in latest_generations(path=path)] == ["again", "again"], "each setting once, the last"


def test_the_command_that_records_generations_exists():
    script = RECORD_GENERATIONS.split()[1]
    assert (RESULTS_DIR.parents[1] / script).is_file(), f"{RECORD_GENERATIONS!r} names a script that is not there"
