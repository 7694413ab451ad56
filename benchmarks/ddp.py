"""Data-parallel training on the GPUs of this machine, as one command (appendix A).

    python benchmarks/ddp.py                  # every GPU here through NCCL (GPT-2 small), or 2 CPU processes (gloo)
    python benchmarks/ddp.py --record         # on a GPU: append the run to gptcourse/results/ddp.csv
    python benchmarks/ddp.py --nproc 1 --preset gpt-micro --micro-batch 16

It launches ``torchrun --standalone --nproc_per_node=N -m gptcourse.distributed ...``, the
command appendix A teaches, reads the run's ``metrics.json`` and prints tokens/s and MFU
(aggregate FLOP/s ÷ (N × one GPU's datasheet peak for the precision the run trained in)).
A row records what this machine measured, on the GPUs it has: never a figure for more.
A benchmark prints figures: it passes or fails nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from recording import command_line, record, stamp  # benchmarks/, beside this file

from gptcourse.distributed import METRICS_FILE, choose_device_and_backend
from gptcourse.results import DDP_RESULTS

# A GPU gets GPT-2 small at its full context; a CPU the smallest GPT, so that it takes seconds.
GPU_RUN = {"preset": "gpt2-small", "micro_batch": 8, "grad_accum": 1, "steps": 20}
CPU_RUN = {"preset": "gpt-nano", "micro_batch": 4, "grad_accum": 1, "steps": 3}


def torchrun_command(nproc: int, device: str, preset: str, micro_batch: int, grad_accum: int, steps: int, out: Path) -> list[str]:
    """The launch, as a person would type it (``torchrun`` is ``python -m torch.distributed.run``)."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", "gptcourse.distributed", "--preset", preset, "--steps", str(steps), "--micro-batch", str(micro_batch),
        "--grad-accum", str(grad_accum), "--seed", "0", "--drop-rate", "0", "--eval-batches", "2", "--device", device, "--out", str(out),
    ]  # fmt: skip


def positive_integer(text: str) -> int:
    """An argparse ``type=``: a count of processes, sequences or steps, where 0 means nothing and a default is left out."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}: give 1 or more, or leave the option out for its default")
    return value


def result_row(metrics: dict, device: str, command: str) -> dict:
    """The row `DDP_RESULTS` keeps of one run's metrics.json, stamped."""
    peak = metrics["peak_flops_per_device"]
    return {
        **stamp(torch.device(device), command),
        "world_size": metrics["world_size"],
        "kind": metrics["kind"],
        "backend": metrics["backend"],
        "precision": metrics["precision"],
        "preset": metrics["preset"],
        "micro_batch": metrics["micro_batch"],
        "grad_accum": metrics["grad_accum"],
        "seq_len": metrics["seq_len"],
        "tokens_per_second": round(metrics["tokens_per_second"]),
        "mfu": "" if metrics["mfu"] is None else round(metrics["mfu"], 4),
        "peak_tflops": "" if peak is None else round(peak / 1e12, 1),
        "torch": metrics["torch"],  # the run's own
    }


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when a GPU is here, else cpu")
    parser.add_argument("--nproc", type=positive_integer, help="processes: default every GPU here, or 2 on a CPU")
    parser.add_argument("--preset", help=f"default: {GPU_RUN['preset']} on a GPU, {CPU_RUN['preset']} on a CPU")
    parser.add_argument("--micro-batch", type=positive_integer, help="sequences per rank per forward pass")
    parser.add_argument("--grad-accum", type=positive_integer, help="micro-steps per optimizer step")
    parser.add_argument("--steps", type=positive_integer, help="optimizer steps (the median step time is reported)")
    parser.add_argument("--record", action="store_true", help=f"append the run to {DDP_RESULTS.path} (GPU runs only)")
    parser.add_argument("--results", help="another file to append to")
    args = parser.parse_args(argv)

    try:
        device, _ = choose_device_and_backend(args.device or "auto")  # what the run itself will choose
    except ValueError as err:
        parser.error(str(err))
    if args.record and device != "cuda":
        parser.error("--record keeps GPU measurements only (appendix A runs the CPU processes itself); run it on a GPU")
    defaults = GPU_RUN if device == "cuda" else CPU_RUN
    nproc = args.nproc if args.nproc is not None else (torch.cuda.device_count() if device == "cuda" else 2)
    if device == "cuda" and nproc > torch.cuda.device_count():
        parser.error(f"--nproc {nproc}: this machine has {torch.cuda.device_count()} GPU(s); DDP runs one process per GPU")
    chosen = {key: getattr(args, key) if getattr(args, key) is not None else value for key, value in defaults.items()}
    with tempfile.TemporaryDirectory(prefix="gptcourse-ddp-") as out:
        command = torchrun_command(nproc, device, out=Path(out), **chosen)
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        finished = subprocess.run(command, env=env, text=True, timeout=900)
        if finished.returncode != 0:
            raise SystemExit(f"the run failed (exit status {finished.returncode}); its output is above")
        metrics = json.loads((Path(out) / METRICS_FILE).read_text())
    row = result_row(metrics, device, command_line("benchmarks/ddp.py", argv))
    mfu = "no datasheet peak" if row["mfu"] == "" else f"MFU {float(row['mfu']):.1%}"
    print(f"\n{row['kind']} on {row['world_size']} × {row['device']} ({row['precision']}): {row['tokens_per_second']:,} tokens/s, {mfu}")
    if args.record or args.results:
        print(f"recorded in {record(DDP_RESULTS, [row], args.results)}")
    return row


if __name__ == "__main__":
    main()
