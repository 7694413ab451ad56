"""Training speed of our `GPT` against Hugging Face's GPT-2, on the same config and machine.

    python -m gptcourse.bench                      # the default: 4 layers, width 256, batch 8
    python -m gptcourse.bench --layers 12 --emb-dim 768 --heads 12 --context 1024 --batch 4

Both models get the same shapes, the same loss and the same AdamW; rounds alternate between
them so that a change in the machine's load hits both alike. Prints tokens/s of each (the
median over rounds) and their ratio. A benchmark prints figures: it passes or fails nothing.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from .config import GPTConfig
from .model import GPT
from .perf import make_train_step, time_calls


def hf_gpt2(cfg: GPTConfig) -> torch.nn.Module:
    """Hugging Face's GPT2LMHeadModel with the same shape as `cfg`, fused SDPA attention."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as err:
        raise SystemExit("The benchmark compares against Hugging Face transformers: pip install transformers") from err
    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.context_length,
        n_embd=cfg.emb_dim,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        resid_pdrop=cfg.drop_rate,
        embd_pdrop=cfg.drop_rate,
        attn_pdrop=cfg.drop_rate,
    )
    hf_cfg._attn_implementation = "sdpa"  # the documented switch; the constructor takes no such argument
    model = GPT2LMHeadModel(hf_cfg)
    if model.config._attn_implementation != "sdpa":  # a transformers version that ignored the switch
        raise RuntimeError(f"transformers built GPT-2 with {model.config._attn_implementation!r} attention, not 'sdpa'.")
    return model


def compare(cfg: GPTConfig, batch_size: int, rounds: int, steps_per_round: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Tokens/s of a training step of each model: the median over alternating rounds."""
    torch.manual_seed(0)
    inputs = torch.randint(0, cfg.vocab_size, (batch_size, cfg.context_length), device=device)
    targets = torch.randint(0, cfg.vocab_size, (batch_size, cfg.context_length), device=device)
    models = {"gptcourse GPT": GPT(cfg), "transformers GPT-2": hf_gpt2(cfg)}
    # The same step for both (gptcourse.perf): forward, cross-entropy, backward, AdamW, in fp32.
    steps = {name: make_train_step(model.to(device).train(), inputs, targets, torch.float32) for name, model in models.items()}
    for step in steps.values():
        time_calls(step, device, repeats=0, warmup=warmup)
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        # Alternate which goes first, so neither always runs on a warmer machine.
        order = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in order:
            seconds[name].append(statistics.mean(time_calls(steps[name], device, repeats=steps_per_round, warmup=0)))
    tokens = batch_size * cfg.context_length
    return {name: tokens / statistics.median(s) for name, s in seconds.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--emb-dim", type=int, default=256)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3, help="training steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    args = parser.parse_args(argv)

    from .device import get_device

    device = get_device(args.device)
    cfg = GPTConfig(vocab_size=args.vocab, context_length=args.context, emb_dim=args.emb_dim, n_heads=args.heads, n_layers=args.layers)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"config: {cfg.n_layers} layers, {cfg.n_heads} heads, width {cfg.emb_dim}, context {cfg.context_length}, vocab {cfg.vocab_size}; batch {args.batch}; fp32")
    print(f"median of {args.rounds} alternating rounds of {args.steps} training steps (forward, loss, backward, AdamW)")
    result = compare(cfg, args.batch, args.rounds, args.steps, args.warmup, device)
    for name, tps in result.items():
        print(f"  {name:<20} {tps:>10,.0f} tokens/s")
    ours, theirs = result["gptcourse GPT"], result["transformers GPT-2"]
    print(f"ratio (ours / transformers): {ours / theirs:.3f}")


if __name__ == "__main__":
    main()
