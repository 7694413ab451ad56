"""Record chapter 8's text from OpenAI's GPT-2, for the book that is built offline.

    python benchmarks/generations.py --record           # GPT-2 small: the rows the book shows
    python benchmarks/generations.py --model gpt2-xl    # print only

The book is built without a network, so chapter 8 runs its code on a small stand-in and shows
GPT-2's own text from these rows: the chapter's prompt continued with each of its settings
(`gptcourse.results.GENERATION_SETTINGS`), by ``GPT.from_pretrained`` and ``model.generate``
as the chapter calls them. It needs the Hugging Face hub once (548 MB), not a GPU; sampled
text depends on the device's random numbers, so each row names its device. ``--record``
appends to ``gptcourse/results/gpt2_generations.csv``: commit it, saying where it was made.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch
from recording import command_line, record, stamp  # benchmarks/, beside this file

from gptcourse import GPT
from gptcourse.device import get_device
from gptcourse.results import (
    GENERATION_PROMPT,
    GENERATION_RESULTS,
    GENERATION_SEED,
    GENERATION_SETTINGS,
    GENERATION_TOKENS,
)

GPT2_SIZES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")


def generation_rows(model: GPT, name: str, device: torch.device, command: str) -> list[dict]:
    """One row per setting of `GENERATION_SETTINGS`: chapter 8's generation, stamped."""
    rows = []
    for setting, options in GENERATION_SETTINGS.items():
        generator = torch.Generator(device).manual_seed(GENERATION_SEED)
        text = model.generate(
            GENERATION_PROMPT, max_new_tokens=GENERATION_TOKENS, generator=generator, **options
        )
        rows.append(
            {
                **stamp(device, command),
                "model": name,
                "setting": setting,
                "prompt": GENERATION_PROMPT,
                "max_new_tokens": GENERATION_TOKENS,
                "temperature": options["temperature"],
                "top_k": options.get("top_k", ""),
                "seed": GENERATION_SEED,
                "text": text[len(GENERATION_PROMPT) :],
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=GPT2_SIZES, default="gpt2", help="default: GPT-2 small, the chapter's")
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--record", action="store_true", help=f"append the rows to {GENERATION_RESULTS.path}")
    parser.add_argument("--results", help="another file to append to")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else get_device()
    model = GPT.from_pretrained(args.model).to(device)  # offline: an error saying what to do
    rows = generation_rows(model, args.model, device, command_line("benchmarks/generations.py", argv))
    print(f"{args.model} on {rows[0]['device']}: {GENERATION_PROMPT!r} and then")
    for row in rows:
        print(f"  {row['setting']:>20}: {row['text']!r}")
    if args.record or args.results:
        print(f"recorded in {record(GENERATION_RESULTS, rows, args.results)}")
    return rows


if __name__ == "__main__":
    main()
