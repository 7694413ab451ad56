"""Decode speed of GPT-2 small beside the roofline's prediction, and its MBU (appendix C).

    python benchmarks/decode.py            # this machine: a GPU if there is one, else the CPU
    python benchmarks/decode.py --record   # on a GPU: append the rows to the file appendix C shows

GPT-2 small with random weights (a decode step costs the same whatever the weights), in
the device's 16-bit dtype on a GPU (gptcourse.device.autocast_dtype), fp32 on a CPU. For
each batch size × context: one decode step after `context` cached tokens, timed
(gptcourse.roofline.measure_decode), beside the roofline's bound for it
(gptcourse.roofline.predict_decode) at the bandwidth and matmul peak measured here first.
MBU = the bytes the step must move / its time / the measured bandwidth. A benchmark prints
figures: it passes or fails nothing.
"""

from __future__ import annotations

import argparse
import sys

import torch
from recording import command_line, record, stamp  # benchmarks/, beside this file

from gptcourse import GPT, GPTConfig
from gptcourse.device import GIB, autocast_dtype, device_name, get_device
from gptcourse.gpu_budget import fits
from gptcourse.results import DECODE_RESULTS
from gptcourse.roofline import decode_step_bytes, measure_decode, predict_decode
from gptcourse.timing import measure_bandwidth, measure_peak_flops

BATCHES = {"cuda": (1, 4, 16, 64, 256), "cpu": (1, 4, 16)}
CONTEXTS = {"cuda": (128, 1023), "cpu": (128, 512)}  # 1023: GPT-2's 1024 less the decoded token


def sweep(
    model: GPT, batches: tuple[int, ...], contexts: tuple[int, ...], bandwidth: float, peak: float, repeats: int = 5
) -> list[dict]:
    """One row per (batch, context): predicted and measured tokens/s, MBU, the bound."""
    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    rows = []
    for context in contexts:
        for batch in batches:
            kv_cache = decode_step_bytes(model.config, batch, context, dtype)["kv_cache"]
            if device.type == "cuda" and not fits(3 * kv_cache, device):  # the cache, its copy, its source
                print(f"  batch {batch:4d}  context {context:5d}  skipped: its KV cache ({kv_cache / GIB:.1f} GiB) does not fit here")
                continue
            predicted = predict_decode(model.config, batch, context, bandwidth, peak, dtype)
            measured = measure_decode(model, batch, context, repeats=repeats)
            rows.append(
                {
                    "batch_size": batch,
                    "context": context,
                    "predicted_tokens_per_second": round(predicted.tokens_per_second, 1),
                    "tokens_per_second": round(measured.tokens_per_second, 1),
                    "bandwidth_gbs": round(bandwidth / 1e9, 1),
                    "mbu": round(measured.mbu(bandwidth), 3),
                    "bound": predicted.bound,
                }
            )
            row = rows[-1]
            print(
                f"  batch {batch:4d}  context {context:5d}  predicted {row['predicted_tokens_per_second']:10.1f} tok/s"
                f"  measured {row['tokens_per_second']:10.1f} tok/s  MBU {row['mbu']:.2f}  {row['bound']}-bound"
            )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2-small", help="the model's size (default: gpt2-small)")
    parser.add_argument("--batches", type=int, nargs="+", help="default: 1 4 16 64 256 on a GPU, 1 4 16 on a CPU")
    parser.add_argument("--contexts", type=int, nargs="+", help="default: 128 1023 on a GPU, 128 512 on a CPU")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per row (the median is reported)")
    parser.add_argument("--bandwidth", type=float, help="bytes/s (default: measured here, a large copy)")
    parser.add_argument("--peak", type=float, help="FLOP/s (default: measured here, the fastest matmul)")
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--record", action="store_true", help=f"append the results to {DECODE_RESULTS.path} (GPU runs only)")
    parser.add_argument("--results", help="another file to append to")
    args = parser.parse_args(argv)

    device = get_device(args.device)
    if args.record and device.type != "cuda":
        parser.error("--record keeps GPU measurements only (appendix C measures the CPU itself); run it on a GPU")
    kind = "cuda" if device.type == "cuda" else "cpu"
    dtype = autocast_dtype(device)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset(args.preset)).to(device=device, dtype=dtype).eval()
    bandwidth = args.bandwidth or measure_bandwidth(device)
    peak = args.peak or measure_peak_flops(device, dtype)
    where = device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({where}), torch {torch.__version__}, {args.preset} in {dtype}")
    print(f"  bandwidth {bandwidth / 1e9:.1f} GB/s, matmul peak {peak / 1e12:.2f} TFLOP/s ")
    rows = sweep(model, tuple(args.batches or BATCHES[kind]), tuple(args.contexts or CONTEXTS[kind]), bandwidth, peak, args.repeats)
    if args.record or args.results:
        stamped = [{**stamp(device, command_line("benchmarks/decode.py", argv)), "model": args.preset, "dtype": str(dtype).removeprefix("torch."), **row} for row in rows]
        print(f"  recorded in {record(DECODE_RESULTS, stamped, args.results)}")
    return rows


if __name__ == "__main__":
    main()
