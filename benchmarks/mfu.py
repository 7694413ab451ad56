"""Tokens/s and MFU of our GPT and of Hugging Face's GPT-2: same config, same device, one run.

    python benchmarks/mfu.py                                   # a small config that suits a CPU
    python benchmarks/mfu.py --preset gpt2-small --batch 8     # on a GPU: bf16 (Ampere+) or fp16 (T4)
    python benchmarks/mfu.py --preset gpt2-small --batch 8 --record
                                                               # and append the results to the file
                                                               # chapter 10 shows (GPU runs only)

Each model runs `--rounds` rounds of `--steps` training steps (forward, loss, backward,
AdamW), after warm-up; rounds alternate between the models so that a change in the machine's
load hits both alike. Step times are CUDA events on a GPU, wall-clock on a CPU; tokens/s comes
from the median step. MFU = the exact FLOPs of a step (gptcourse.flops.count_flops; both
models do the same matmuls) ÷ the median step time ÷ the peak FLOP/s of the device for the
dtype in use (datasheet on a GPU, a measured matmul on a CPU). A benchmark prints figures: it
passes or fails nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import shlex
import sys

import torch

from gptcourse import GPT, GPTConfig
from gptcourse.bench import hf_gpt2
from gptcourse.device import autocast_dtype, get_device
from gptcourse.perf import RESULTS_FILE, TrainingMeasurement, measure_training, record_result

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def build_config(args: argparse.Namespace) -> GPTConfig:
    if args.preset:
        cfg = GPTConfig.from_preset(args.preset)
    else:  # small enough that a CPU gives figures in seconds
        cfg = GPTConfig(vocab_size=50257, context_length=128, emb_dim=256, n_heads=4, n_layers=4)
    overrides = {
        "n_layers": args.layers,
        "n_heads": args.heads,
        "emb_dim": args.emb_dim,
        "context_length": args.context,
        "vocab_size": args.vocab,
    }
    return dataclasses.replace(cfg, drop_rate=0.0, **{k: v for k, v in overrides.items() if v is not None})


def describe(cfg: GPTConfig) -> str:
    return f"L{cfg.n_layers} h{cfg.n_heads} d{cfg.emb_dim} T{cfg.context_length} V{cfg.vocab_size}"


def run(args: argparse.Namespace) -> dict[str, TrainingMeasurement]:
    device = get_device(args.device)
    cfg = build_config(args)
    dtype = autocast_dtype(device) if args.dtype == "auto" else DTYPES[args.dtype]
    torch.manual_seed(0)
    models: dict[str, torch.nn.Module] = {}
    if args.models in ("both", "ours"):
        models["gptcourse GPT"] = GPT(cfg, attention=args.attention).to(device)
    if args.models in ("both", "hf"):
        models["transformers GPT-2"] = hf_gpt2(cfg).to(device)
    if args.compile:
        models = {name: torch.compile(model) for name, model in models.items()}

    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), torch {torch.__version__}"
    )
    print(f"config {describe(cfg)}; batch {args.batch}; dtype {dtype}; attention {args.attention}; compiled {args.compile}")
    print(f"{args.rounds} alternating rounds of {args.steps} training steps after {args.warmup} warm-up steps")

    results: dict[str, list[TrainingMeasurement]] = {name: [] for name in models}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(reversed(models))
        for name in order:
            results[name].append(
                measure_training(
                    models[name],
                    cfg,
                    batch_size=args.batch,
                    steps=args.steps,
                    warmup=args.warmup if r == 0 else 1,
                    dtype=dtype,
                    peak=args.peak,
                    measure_peak=True if args.measure_peak else None,
                )
            )
    # One measurement per model, over the step times of all its rounds.
    merged = {}
    for name, rounds in results.items():
        times = tuple(t for m in rounds for t in m.step_times)
        peak_memory = max((m.peak_memory for m in rounds if m.peak_memory is not None), default=None)
        merged[name] = dataclasses.replace(rounds[0], step_times=times, peak_memory=peak_memory)
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=None, help="gpt2-small, gpt2-medium, ... (default: 4 layers, width 256, context 128)")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--emb-dim", type=int)
    parser.add_argument("--context", type=int)
    parser.add_argument("--vocab", type=int, help="e.g. 50304: GPT-2's 50,257 padded to a multiple of 64")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--dtype", choices=["auto", *DTYPES], default="auto", help="auto: bf16 on Ampere and newer, fp16 on older GPUs, fp32 on a CPU"
    )
    parser.add_argument(
        "--attention", choices=["sdpa", "manual"], default="sdpa", help="our GPT's attention (Hugging Face's always uses SDPA here)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--models", choices=["both", "ours", "hf"], default="both")
    parser.add_argument("--rounds", type=int, default=None, help="default: 5 on a GPU, 3 on a CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per round (default: 10 on a GPU, 3 on a CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 5 on a GPU, 2 on a CPU)")
    parser.add_argument("--peak", type=float, default=None, help="peak FLOP/s to use for MFU (for a GPU not in gptcourse.perf.PEAKS)")
    parser.add_argument("--measure-peak", action="store_true", help="also measure the matmul peak on a GPU")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--record", action="store_true", help=f"append the results to {RESULTS_FILE} (GPU runs only)")
    parser.add_argument("--results", default=None, help="another file to append to")
    args = parser.parse_args(argv)

    on_gpu = get_device(args.device).type == "cuda"
    if args.record and not on_gpu:
        parser.error("--record keeps GPU measurements only (chapter 10 measures the CPU itself); run it on a GPU")
    for name, gpu, cpu in (("rounds", 5, 3), ("steps", 10, 3), ("warmup", 5, 2)):
        if getattr(args, name) is None:
            setattr(args, name, gpu if on_gpu else cpu)

    merged = run(args)
    for name, m in merged.items():
        print(f"\n{name}:\n{m.summary()}")
    if len(merged) == 2:
        ours, theirs = merged["gptcourse GPT"], merged["transformers GPT-2"]
        print(f"\nratio of tokens/s (ours / transformers): {ours.tokens_per_second / theirs.tokens_per_second:.3f}")

    if args.record or args.results:
        cfg = build_config(args)
        command = "python benchmarks/mfu.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        for name, m in merged.items():
            path = record_result(
                {
                    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
                    "device": m.device,
                    "model": name,
                    "dtype": m.dtype,
                    "batch_size": m.batch_size,
                    "seq_len": m.seq_len,
                    "config": (args.preset + " " if args.preset else "") + describe(cfg),
                    "attention": args.attention if name == "gptcourse GPT" else "sdpa",
                    "compiled": args.compile,
                    "tokens_per_second": round(m.tokens_per_second, 1),
                    "mfu": round(m.mfu, 4),
                    "peak_tflops": m.peak_flops / 1e12,
                    "peak_memory_gib": "" if m.peak_memory is None else round(m.peak_memory / 2**30, 3),
                    "torch": torch.__version__,
                    "command": command,
                },
                args.results,
            )
        print(f"\nrecorded in {path}")


if __name__ == "__main__":
    main()
