"""The benchmark commands (benchmarks/mfu.py, ladder.py, ddp.py) and the recording they share
(benchmarks/recording.py), on a CPU: quick sizes only."""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gptcourse.device import GIB, MEMORY_CAP_VARIABLE
from gptcourse.ladder import LADDER
from gptcourse.mfu import TrainingMeasurement
from gptcourse.results import DDP_RESULTS, LADDER_RESULTS, MFU_RESULTS, ResultsTable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import their neighbours (recording.py, peers.py)


def load(name: str):
    """benchmarks/NAME.py as a module (benchmarks/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Moves(nn.Linear):
    """A module that remembers where it was sent."""

    def __init__(self, log: list, name: str):
        super().__init__(2, 2)
        self.log, self.name = log, name

    def to(self, *args, **kwargs):
        self.log.append((self.name, str(args[0])))
        return self


def test_each_model_is_measured_with_the_others_parked_on_the_cpu():
    mfu = load("mfu")
    log: list = []
    models = {name: Moves(log, name) for name in ["ours", "hf", "nanogpt"]}
    with mfu.others_parked(models, "hf", torch.device("cuda")):
        assert log == [("ours", "cpu"), ("nanogpt", "cpu")], "only the model measured stays on the GPU"
    assert log[2:] == [("ours", "cuda"), ("nanogpt", "cuda")], "and the others come back"


def test_peak_memory_alone_is_none_on_a_cpu():
    mfu = load("mfu")
    x = torch.zeros(1, 4, dtype=torch.long)
    assert mfu.peak_memory_alone({"a": nn.Linear(2, 2)}, x, x, torch.float32) == {"a": None}


LADDER_ARGS = ["--preset", "gpt-nano", "--batch", "1", "--seq", "8", "--steps", "1", "--warmup", "0"]


def test_the_ladder_command_on_a_cpu(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(MEMORY_CAP_VARIABLE, raising=False)
    ladder = load("ladder")
    results = tmp_path / "ladder.csv"
    ladder.main([*LADDER_ARGS, "--results", str(results)])
    out = capsys.readouterr().out
    assert "optimisation ladder on cpu" in out and "largest batch" in out and f"recorded in {results}" in out
    rows = LADDER_RESULTS.load(results)
    assert [r["rung"] for r in rows] == [rung.name for rung in LADDER], "one row per rung, in order"
    assert rows[0]["command"] == f"python benchmarks/ladder.py {' '.join(LADDER_ARGS)} --results {results}"
    assert all(r["device"] == "cpu" and r["memory_cap_gib"] == "" and r["mfu_datasheet"] == "" for r in rows)
    tf32 = rows[1]
    assert tf32["status"] == "skipped" and tf32["tokens_per_second"] == "" and "CPU has none" in tf32["note"]
    assert float(rows[0]["tokens_per_second"]) > 0 and float(rows[0]["mfu_measured"]) > 0


def test_a_capped_ladder_says_so_in_its_rows(tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_CAP_VARIABLE, "14.5")  # as make gpu's second pass runs it
    results = tmp_path / "ladder.csv"
    load("ladder").main([*LADDER_ARGS, "--skip", "autocast", "sdpa", "fused AdamW", "padded vocab", "--results", str(results)])
    rows = LADDER_RESULTS.load(results)
    assert {r["memory_cap_gib"] for r in rows} == {"14.5"}
    assert rows[0]["command"].startswith("GPTCOURSE_GPU_MEMORY_GIB=14.5 python benchmarks/ladder.py --preset gpt-nano")


# ---- benchmarks/mfu.py's rows


def test_the_mfu_rows_say_what_was_measured(tmp_path, monkeypatch):
    monkeypatch.delenv(MEMORY_CAP_VARIABLE, raising=False)
    mfu, recording = load("mfu"), load("recording")
    m = TrainingMeasurement(
        device="Tesla T4", precision="fp16", batch_size=8, seq_len=1024, step_times=(0.5, 0.5, 0.5), flops_per_step=13 * 10**12,
        peak_flops=65e12, peak_source="datasheet", measured_peak_flops=None, peak_memory=3 * GIB // 2, estimated_memory=2 * GIB,
    )  # fmt: skip
    cfg = mfu.CONFIGS["L4-d256"][0]
    args = argparse.Namespace(attention="manual", compile=False)
    rows = mfu.result_rows({mfu.OURS: m, mfu.HF: m}, "L4-d256", cfg, args, ["--preset", "gpt2-small", "--record"])
    path = recording.record(MFU_RESULTS, rows, tmp_path / "gpu_mfu.csv")
    ours, theirs = MFU_RESULTS.load(path)
    assert (ours["device"], ours["model"], ours["precision"], ours["batch_size"]) == ("Tesla T4", mfu.OURS, "fp16", "8")
    assert (ours["tokens_per_second"], ours["mfu"], ours["peak_tflops"], ours["peak_memory_gib"]) == ("16384.0", "0.4", "65.0", "1.5")
    assert ours["attention"] == "manual" and theirs["attention"] == "sdpa", "the peers always run SDPA"
    assert ours["command"] == "python benchmarks/mfu.py --preset gpt2-small --record" and ours["torch"] == torch.__version__


# ---- benchmarks/recording.py: the stamp and the rows


def test_the_command_line_says_when_memory_was_capped(monkeypatch):
    recording = load("recording")
    monkeypatch.delenv(MEMORY_CAP_VARIABLE, raising=False)
    assert recording.command_line("benchmarks/ladder.py", ["--record"]) == "python benchmarks/ladder.py --record"
    monkeypatch.setenv(MEMORY_CAP_VARIABLE, "14.5")
    assert recording.command_line("benchmarks/mfu.py", ["--preset", "gpt2 small"]) == (
        "GPTCOURSE_GPU_MEMORY_GIB=14.5 python benchmarks/mfu.py --preset 'gpt2 small'"
    )


def test_the_stamp_says_where_when_and_how(monkeypatch):
    recording = load("recording")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    stamp = recording.stamp(torch.device("cuda"), "python benchmarks/ladder.py")
    assert set(stamp) == {"date", "device", "torch", "command"}
    assert stamp["device"] == "Tesla T4", "a device is named by gptcourse.device.device_name"
    assert stamp["torch"] == torch.__version__ and stamp["command"] == "python benchmarks/ladder.py"
    date = datetime.date.fromisoformat(stamp["date"])
    assert abs((date - datetime.date.today()).days) <= 1, "today's date, in UTC"
    assert recording.stamp(torch.device("cpu"), "x")["device"] == "cpu"
    assert recording.stamp("NVIDIA H100 80GB HBM3", "x")["device"] == "NVIDIA H100 80GB HBM3", "a name is kept"
    with pytest.raises(ValueError, match="device: give a torch.device or the device's name"):
        recording.stamp(" ", "x")


def test_rows_append_under_one_header(tmp_path):
    record = load("recording").record
    table = ResultsTable(tmp_path / "t.csv", ("date", "device", "mfu"))
    assert record(table, [{"device": "Tesla T4", "mfu": 0.3}]) == table.path
    record(table, [{"device": "NVIDIA A100-SXM4-40GB"}, {"device": "cpu", "date": "2026-01-01"}])
    assert [(r["device"], r["mfu"]) for r in table.load()] == [("Tesla T4", "0.3"), ("NVIDIA A100-SXM4-40GB", ""), ("cpu", "")]
    assert table.path.read_text().count("date,device,mfu") == 1, "one header"
    other = record(table, [{"device": "mps"}], tmp_path / "sub" / "other.csv")
    assert [r["device"] for r in table.load(other)] == ["mps"], "path: another file, its folder made"


def test_unknown_fields_and_foreign_files_are_refused(tmp_path):
    record = load("recording").record
    path = tmp_path / "ladder.csv"
    with pytest.raises(ValueError, match=r"row: unknown result field\(s\) \['speed'\]"):
        record(LADDER_RESULTS, [{"rung": "fp32"}, {"speed": 1}], path)
    assert not path.exists(), "every row is checked before any is written"
    path.write_text("date,device,dtype\n2024-01-01,Tesla T4,fp16\n")
    with pytest.raises(ValueError, match="ladder.csv has the columns"):
        record(LADDER_RESULTS, [{"device": "Tesla T4"}], path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_ladder_records_gpu_rows_only(capsys):
    with pytest.raises(SystemExit):
        load("ladder").main(["--record"])
    assert "--record keeps GPU measurements only" in capsys.readouterr().err



def test_the_ddp_command_on_a_cpu(tmp_path, capsys):
    """benchmarks/ddp.py launches torchrun, reads the run's metrics and keeps them as a row."""
    ddp = load("ddp")
    results = tmp_path / "ddp.csv"
    row = ddp.main(["--device", "cpu", "--nproc", "1", "--steps", "2", "--micro-batch", "2", "--results", str(results)])
    assert "DDP on 1 × cpu (float32)" in capsys.readouterr().out
    (recorded,) = DDP_RESULTS.load(results)
    assert recorded == {key: str(value) for key, value in row.items()}
    assert (recorded["world_size"], recorded["backend"], recorded["preset"], recorded["micro_batch"]) == ("1", "gloo", "gpt-nano", "2")
    assert float(recorded["tokens_per_second"]) > 0 and recorded["mfu"] == "", "a CPU has no datasheet peak: no MFU is made up"
    assert recorded["command"] == f"python benchmarks/ddp.py --device cpu --nproc 1 --steps 2 --micro-batch 2 --results {results}"


def test_the_ddp_command_records_gpu_rows_only(capsys):
    ddp = load("ddp")
    with pytest.raises(SystemExit):
        ddp.main(["--device", "cpu", "--record"])
    assert "GPU measurements only" in capsys.readouterr().err


def test_the_generations_recorder_writes_the_chapter_s_text_stamped(tmp_path, monkeypatch, capsys, no_network):
    # benchmarks/generations.py loads GPT-2 with GPT.from_pretrained; here the hub is a
    # tiny random GPT-2 saved in GPT-2's format, and no connection can be made.
    from gptcourse import GPT, GPTConfig
    from gptcourse.results import GENERATION_PROMPT, GENERATION_RESULTS, GENERATION_SETTINGS, latest_generations
    from gptcourse.weights import save_hf_checkpoint

    monkeypatch.delenv(MEMORY_CAP_VARIABLE, raising=False)
    tiny = GPT(GPTConfig(context_length=64, emb_dim=16, n_heads=2, n_layers=1)).eval()  # GPT-2's vocabulary
    snapshot = save_hf_checkpoint(tiny, tmp_path / "snapshot")
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda repo_id, filename, **kw: str(snapshot / filename))
    generations = load("generations")
    results = tmp_path / "gpt2_generations.csv"
    argv = ["--device", "cpu", "--results", str(results)]
    rows = generations.main(argv)
    assert f"recorded in {results}" in capsys.readouterr().out
    recorded = latest_generations("gpt2", results)
    assert [r["setting"] for r in recorded] == list(GENERATION_SETTINGS), "one row per setting of the chapter, in order"
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    for row in recorded:
        assert row["date"] == today and row["device"] == "cpu" and row["torch"] == torch.__version__
        assert row["command"] == f"python benchmarks/generations.py --device cpu --results {results}"
        assert row["prompt"] == GENERATION_PROMPT and row["seed"] == "123" and row["max_new_tokens"] == "30"
    sampled = recorded[-1]
    assert (sampled["temperature"], sampled["top_k"]) == ("1.0", "10") and recorded[0]["top_k"] == ""
    # The text is what the chapter's own call writes with this model, and comes back unchanged.
    generator = torch.Generator("cpu").manual_seed(123)
    live = tiny.generate(GENERATION_PROMPT, max_new_tokens=30, generator=generator, temperature=1.0, top_k=10)
    assert sampled["text"] == live[len(GENERATION_PROMPT) :] == rows[-1]["text"]
    assert GENERATION_RESULTS.load(results) == recorded


def test_the_generations_recorder_offline_says_what_to_do(tmp_path, monkeypatch, no_network):
    from gptcourse.weights import WeightsUnavailableError

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    generations = load("generations")
    table = ResultsTable(tmp_path / "gpt2_generations.csv", generations.GENERATION_RESULTS.fields)
    monkeypatch.setattr(generations, "GENERATION_RESULTS", table)  # never the shipped file, whatever happens
    with pytest.raises(WeightsUnavailableError, match="cannot be reached.*\n.*hf_hub_download"):
        generations.main(["--device", "cpu", "--record"])
    assert not table.path.exists(), "nothing recorded"


def test_the_decode_command_on_a_cpu(tmp_path, capsys):
    """benchmarks/decode.py: predicted beside measured decode speed, a row per (batch, context)."""
    from gptcourse.results import DECODE_RESULTS

    results = tmp_path / "decode.csv"
    argv = ["--preset", "gpt-nano", "--batches", "1", "2", "--contexts", "8", "--repeats", "1", "--device", "cpu"]
    rows = load("decode").main([*argv, "--bandwidth", "1e10", "--peak", "1e11", "--results", str(results)])
    assert "predicted" in capsys.readouterr().out
    recorded = DECODE_RESULTS.load(results)
    assert [(r["batch_size"], r["context"], r["model"], r["dtype"]) for r in recorded] == [("1", "8", "gpt-nano", "float32"), ("2", "8", "gpt-nano", "float32")]
    assert all(float(r["tokens_per_second"]) > 0 and float(r["mbu"]) > 0 and r["bound"] == "memory" for r in recorded)
    assert float(rows[1]["predicted_tokens_per_second"]) > float(rows[0]["predicted_tokens_per_second"])
    with pytest.raises(SystemExit):
        load("decode").main(["--device", "cpu", "--record"])
    assert "GPU measurements only" in capsys.readouterr().err


def test_the_decode_command_s_gpu_sweep_is_valid_for_gpt2():
    # make gpu runs benchmarks/decode.py --record with its defaults: each context must leave
    # room for the decoded token (GPT-2's context is 1024), or the whole run stops there.
    from gptcourse.config import GPTConfig

    decode = load("decode")
    for kind, contexts in decode.CONTEXTS.items():
        assert max(contexts) < GPTConfig.from_preset("gpt2-small").context_length, kind
