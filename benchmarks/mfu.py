"""Training speed and MFU of our GPT beside the models a reader would pick instead.

    python benchmarks/mfu.py                        # the two CPU configurations below: ours vs transformers
    python benchmarks/mfu.py --nanogpt ../nanoGPT   # and nanoGPT's model.py, from a checkout outside this repo
    python benchmarks/mfu.py --configs L4-d256      # one configuration
    python benchmarks/mfu.py --preset gpt2-small --batch 8 --record
                                                    # on a GPU: bf16 (Ampere+) or fp16 (T4), and append
                                                    # the rows to the file chapter 10 shows

Every model trains with the same step on the same batch: forward, the same loss
(gptcourse.train.cross_entropy_loss), backward, AdamW (gptcourse.timing.make_train_step).
The models run in rounds whose order rotates every round (gptcourse.timing.compare): the
model timed right after another can read a few percent slower, so the ratio of speeds is
taken per round and the median over rounds reported. On a GPU each model's peak memory is
then measured alone (`peak_memory_alone`: the others wait on the CPU), so that it never
counts another model's weights. Step times are CUDA events on a GPU,
wall-clock on a CPU. MFU = the exact FLOPs of a step (gptcourse.flops.count_flops; the
models do the same matmuls) / the median step time / the peak FLOP/s for the precision in
use (datasheet on a GPU, a measured matmul on a CPU). A benchmark prints figures: it passes
or fails nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import sys
from collections.abc import Iterator, Mapping

import torch
from peers import hf_gpt2, nanogpt_gpt  # benchmarks/, beside this file
from recording import command_line, record, stamp

from gptcourse import GPT, GPTConfig
from gptcourse.device import GIB, autocast_dtype, device_name, get_device
from gptcourse.mfu import TrainingMeasurement
from gptcourse.results import MFU_RESULTS
from gptcourse.timing import Comparison, compare, make_train_step, time_calls

OURS, HF, NANOGPT = "gptcourse GPT", "transformers GPT-2", "nanoGPT"
# (config, batch size): sized so that a CPU gives figures in seconds. The second pads the
# vocabulary to a multiple of 64, as nanoGPT does.
CONFIGS = {
    "L4-d256": (GPTConfig(vocab_size=50257, context_length=128, emb_dim=256, n_heads=4, n_layers=4), 8),
    "L6-d384": (GPTConfig(vocab_size=50304, context_length=256, emb_dim=384, n_heads=6, n_layers=6), 4),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def configurations(args: argparse.Namespace) -> dict[str, tuple[GPTConfig, int]]:
    """The (config, batch size) pairs to run, by name, with the command line's overrides."""
    if args.preset:
        chosen = {args.preset: (GPTConfig.from_preset(args.preset), 8)}
    else:
        chosen = {name: CONFIGS[name] for name in args.configs}
    overrides = {"n_layers": args.layers, "n_heads": args.heads, "emb_dim": args.emb_dim, "context_length": args.context, "vocab_size": args.vocab}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return {
        name: (dataclasses.replace(cfg, drop_rate=0.0, **overrides), args.batch or batch) for name, (cfg, batch) in chosen.items()
    }


def describe(cfg: GPTConfig) -> str:
    return f"L{cfg.n_layers} h{cfg.n_heads} d{cfg.emb_dim} T{cfg.context_length} V{cfg.vocab_size}"


def build_models(cfg: GPTConfig, args: argparse.Namespace, device: torch.device) -> dict[str, torch.nn.Module]:
    """Ours first (the reference of the ratios), then the peers; each from the same seed."""
    builders = {OURS: lambda: GPT(cfg, attention=args.attention)}
    if not args.no_transformers:
        builders[HF] = lambda: hf_gpt2(cfg)
    if args.nanogpt:
        builders[f"{NANOGPT} ({args.nanogpt_gelu} GELU)"] = lambda: nanogpt_gpt(cfg, args.nanogpt, gelu=args.nanogpt_gelu)
    models = {}
    for name, build in builders.items():
        torch.manual_seed(0)
        models[name] = build().to(device)
    return {name: torch.compile(m) for name, m in models.items()} if args.compile else models


@contextlib.contextmanager
def others_parked(models: Mapping[str, torch.nn.Module], keep: str, device: torch.device) -> Iterator[None]:
    """Every model but `keep` on the CPU inside the block, back on `device` after it."""
    others = [model for name, model in models.items() if name != keep]
    for model in others:
        model.to("cpu")
    try:
        yield
    finally:
        for model in others:
            model.to(device)


def peak_memory_alone(
    models: Mapping[str, torch.nn.Module], inputs: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype, steps: int = 3
) -> dict[str, int | None]:
    """Each model's torch.cuda.max_memory_allocated() over `steps` training steps, alone on the GPU.

    compare() keeps every model on the device, so its peak counts the other models' weights
    too. Here the others wait on the CPU while one trains with a fresh optimizer: 3 steps
    reach the steady state (AdamW's state exists from the first step, and the gradients are
    still alive in the second step's forward). None for each model on a CPU.
    """
    device = inputs.device
    if device.type != "cuda":
        return dict.fromkeys(models)
    peaks: dict[str, int | None] = {}
    for name, model in models.items():
        with others_parked(models, name, device):
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            step = make_train_step(model, inputs, targets, dtype)
            time_calls(step, device, repeats=0, warmup=steps)
            peaks[name] = torch.cuda.max_memory_allocated(device)
            del step  # and with it the optimizer's state
            model.zero_grad(set_to_none=True)
    return peaks


def run(cfg: GPTConfig, batch: int, args: argparse.Namespace, device: torch.device) -> tuple[Comparison, dict[str, TrainingMeasurement]]:
    """Time the models on one configuration; each one's measurement over all its rounds."""
    dtype = autocast_dtype(device) if args.dtype == "auto" else DTYPES[args.dtype]
    models = build_models(cfg, args, device)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, cfg.vocab_size, (batch, cfg.context_length), generator=generator).to(device)
    targets = torch.randint(0, cfg.vocab_size, (batch, cfg.context_length), generator=generator).to(device)
    rounds = args.rounds or (2 if device.type == "cuda" else 3) * len(models)  # every model in every place
    print(
        f"\n{describe(cfg)}; batch {batch}; {dtype}; attention {args.attention}; compiled {args.compile}\n"
        f"{rounds} rounds of {args.steps} training steps, the order rotating every round, after {args.warmup} warm-up steps"
    )
    result = compare(models, inputs, targets, rounds=rounds, steps_per_round=args.steps, warmup=args.warmup, dtype=dtype)
    alone = peak_memory_alone(models, inputs, targets, dtype)
    measurements = {
        name: TrainingMeasurement.from_step_times(
            model, cfg, batch, cfg.context_length, result.all_step_times(name), dtype=dtype, peak=args.peak,
            measure_peak=args.measure_peak, peak_memory=alone[name],
        )
        for name, model in models.items()
    }
    for name, m in measurements.items():
        memory = "" if m.peak_memory is None else f", peak memory {m.peak_memory / GIB:.2f} GiB (alone)"
        print(
            f"  {name:26} {result.tokens_per_second(name):>10,.0f} tokens/s (spread {m.spread:.0%}), "
            f"MFU {m.mfu:.1%} of {m.peak_flops / 1e12:.3g} TFLOP/s ({m.peak_source}, {m.precision}){memory}"
        )
    for name in list(models)[1:]:
        rounds_text = " ".join(f"{r:.3f}" for r in result.ratios(name))
        print(f"  ratio of tokens/s, ours / {name}: {result.ratio(name):.3f} (median of the rounds: {rounds_text})")
    return result, measurements


def result_rows(measurements: dict[str, TrainingMeasurement], name: str, cfg: GPTConfig, args: argparse.Namespace, argv: list[str]) -> list[dict]:
    """The rows of `MFU_RESULTS` for one configuration, one per model, each stamped."""
    command = command_line("benchmarks/mfu.py", argv)
    return [
        {
            **stamp(m.device, command),
            "model": model,
            "precision": m.precision,
            "batch_size": m.batch_size,
            "seq_len": m.seq_len,
            "config": f"{name}: {describe(cfg)}",
            "attention": args.attention if model == OURS else "sdpa",
            "compiled": args.compile,
            "tokens_per_second": round(m.tokens_per_second, 1),
            "mfu": round(m.mfu, 4),
            "peak_tflops": m.peak_flops / 1e12,
            "peak_memory_gib": "" if m.peak_memory is None else round(m.peak_memory / GIB, 3),
        }
        for model, m in measurements.items()
    ]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), help="default: all of them")
    parser.add_argument("--preset", default=None, help="gpt2-small, gpt2-medium, ... instead of --configs (batch 8)")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--emb-dim", type=int)
    parser.add_argument("--context", type=int)
    parser.add_argument("--vocab", type=int, help="e.g. 50304: GPT-2's 50,257 padded to a multiple of 64")
    parser.add_argument("--batch", type=int, help="default: each configuration's own")
    parser.add_argument("--dtype", choices=["auto", *DTYPES], default="auto", help="auto: bf16 on Ampere and newer, fp16 on older GPUs, fp32 on a CPU")
    parser.add_argument("--attention", choices=["sdpa", "manual"], default="sdpa", help="our GPT's attention (the peers use SDPA)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model")
    parser.add_argument("--no-transformers", action="store_true", help="leave out Hugging Face's GPT-2")
    parser.add_argument("--nanogpt", metavar="PATH", help="a nanoGPT checkout (outside this repository): time its model.py too")
    parser.add_argument(
        "--nanogpt-gelu", choices=["tanh", "exact"], default="tanh", help="tanh: GPT-2's GELU, as ours (default); exact: nanoGPT as shipped"
    )
    parser.add_argument("--rounds", type=int, help="default: 3 per model on a CPU, 2 per model on a GPU")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each model first")
    parser.add_argument("--peak", type=float, help="peak FLOP/s for MFU (a GPU not in gptcourse.peaks.PEAKS)")
    parser.add_argument("--measure-peak", action="store_true", help="also measure the matmul peak on a GPU")
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--record", action="store_true", help=f"append the results to {MFU_RESULTS.path} (GPU runs only)")
    parser.add_argument("--results", help="another file to append to")
    args = parser.parse_args(argv)

    device = get_device(args.device)
    if args.record and device.type != "cuda":
        parser.error("--record keeps GPU measurements only (chapter 10 measures the CPU itself); run it on a GPU")
    where = device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({where}), torch {torch.__version__}")
    for name, (cfg, batch) in configurations(args).items():
        _, measurements = run(cfg, batch, args, device)
        if args.record or args.results:
            print(f"  recorded in {record(MFU_RESULTS, result_rows(measurements, name, cfg, args, argv), args.results)}")


if __name__ == "__main__":
    main()
