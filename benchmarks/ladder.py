"""The optimisation ladder as one command: each rung keeps the ones below it (chapter 10).

    python benchmarks/ladder.py              # a CPU: a small GPT with GPT-2's vocabulary, about 10 s
                                             # a GPU: GPT-2 small at T = 1024, every rung
    python benchmarks/ladder.py --record     # on a GPU: append the rungs to gptcourse/results/ladder.csv
    python benchmarks/ladder.py --preset gpt2-medium --batch 4
    GPTCOURSE_GPU_MEMORY_GIB=14.5 python benchmarks/ladder.py --record
                                             # a larger GPU capped to a T4's free memory

fp32 → TF32 → autocast → SDPA → torch.compile → fused AdamW → vocabulary 50,304 → the LM head
and loss in chunks of rows (appendix C) → the largest batch that fits (gptcourse.ladder.LADDER). The rungs are timed in rounds, in an order that
rotates; each prints tokens/s, its speed-up over the first (the median of the rounds', with
their lowest and highest), MFU against the datasheet peak (a GPU in gptcourse.peaks.PEAKS) and against the matmul
peak measured for its precision, and peak memory measured (GPU) beside the estimate. A rung
that does not apply here is skipped, with the reason; one that runs out of memory says so.
A benchmark prints figures: it passes or fails nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from recording import command_line, record, stamp  # benchmarks/, beside this file

from gptcourse import GPTConfig
from gptcourse.device import GIB, get_device, memory_cap
from gptcourse.ladder import LADDER, RungResult, default_workload, run_ladder
from gptcourse.results import LADDER_RESULTS


def ladder_rows(results: list[RungResult], command: str, memory_cap_gib: float | None = None) -> list[dict[str, Any]]:
    """The rows of `LADDER_RESULTS` for one climb of the ladder, one per rung, each stamped."""
    rows = []
    for r in results:
        cfg = r.setup.config
        rows.append(
            {
                **stamp(r.device, command),
                "memory_cap_gib": "" if memory_cap_gib is None else memory_cap_gib,
                "config": f"L{cfg.n_layers} h{cfg.n_heads} d{cfg.emb_dim} V{cfg.vocab_size}",
                "rung": r.rung,
                "status": r.status,
                "precision": r.precision or "",
                "batch_size": r.setup.batch_size,
                "seq_len": r.setup.seq_len,
                "tokens_per_second": "" if r.tokens_per_second is None else round(r.tokens_per_second, 1),
                "mfu_datasheet": "" if r.mfu_datasheet is None else round(r.mfu_datasheet, 4),
                "mfu_measured": "" if r.mfu_measured is None else round(r.mfu_measured, 4),
                "peak_memory_gib": "" if r.peak_memory is None else round(r.peak_memory / GIB, 3),
                "estimated_memory_gib": round(r.estimated_memory / GIB, 3),
                "note": r.note,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", help="gpt2-small, gpt2-medium, ... (default: gpt2-small on a GPU, a small GPT on a CPU)")
    parser.add_argument("--batch", type=int, help="the batch of every rung but the last (default: 8 on a GPU, 2 on a CPU)")
    parser.add_argument("--seq", type=int, help="tokens per sequence (default: 1024 on a GPU, 128 on a CPU)")
    parser.add_argument("--steps", type=int, help="timed training steps per rung and round (default: 3 on a GPU, 1 on a CPU)")
    parser.add_argument("--rounds", type=int, help="rounds, each timing every rung in a rotating order (default: 3)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: 2 on a GPU, 1 on a CPU)")
    parser.add_argument("--max-batch", type=int, help="the largest-batch rung's ceiling (default: 64 on a GPU, 2× the batch on a CPU)")
    parser.add_argument("--compile-on-cpu", action="store_true", help="run the torch.compile rung on a CPU too (minutes)")
    parser.add_argument("--skip", nargs="+", default=[], choices=[rung.name for rung in LADDER], metavar="RUNG", help="rungs to leave out")
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--record", action="store_true", help=f"append the rungs to {LADDER_RESULTS.path} (GPU runs only)")
    parser.add_argument("--results", help="another file to append to")
    args = parser.parse_args(argv)

    device = get_device(args.device)  # applies GPTCOURSE_GPU_MEMORY_GIB, if set
    if args.record and device.type != "cuda":
        parser.error("--record keeps GPU measurements only (chapter 10 runs the CPU ladder itself); run it on a GPU")
    config = GPTConfig.from_preset(args.preset) if args.preset else default_workload(device)["config"]
    results = run_ladder(
        config, batch_size=args.batch, seq_len=args.seq, device=device, steps=args.steps, warmup=args.warmup,
        compile_on_cpu=args.compile_on_cpu, max_batch_size=args.max_batch, skip=args.skip, verbose=True, rounds=args.rounds,
    )  # fmt: skip
    if args.record or args.results:
        cap = memory_cap()
        rows = ladder_rows(results, command_line("benchmarks/ladder.py", argv), None if cap is None else round(cap / GIB, 2))
        path = record(LADDER_RESULTS, rows, args.results)
        print(f"recorded in {path}" + ("" if cap is None else f" (capped to {cap / GIB:g} GiB)"))


if __name__ == "__main__":
    main()
