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
import time

import torch
import torch.nn.functional as F

from .config import GPTConfig
from .model import GPT


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
    assert model.config._attn_implementation == "sdpa"
    return model


def make_train_step(model: torch.nn.Module, logits_of):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> None:
        logits = logits_of(model, inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def time_steps(step, inputs, targets, n_steps: int, device: torch.device) -> float:
    """Seconds per step, averaged over `n_steps` (synchronised on a GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n_steps):
        step(inputs, targets)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n_steps


def compare(cfg: GPTConfig, batch_size: int, rounds: int, steps_per_round: int, warmup: int, device: torch.device) -> dict[str, float]:
    torch.manual_seed(0)
    ours = GPT(cfg).to(device).train()
    theirs = hf_gpt2(cfg).to(device).train()
    steps = {
        "gptcourse GPT": make_train_step(ours, lambda m, x: m(x)),
        "transformers GPT-2": make_train_step(theirs, lambda m, x: m(input_ids=x).logits),
    }
    inputs = torch.randint(0, cfg.vocab_size, (batch_size, cfg.context_length), device=device)
    targets = torch.randint(0, cfg.vocab_size, (batch_size, cfg.context_length), device=device)
    for step in steps.values():
        time_steps(step, inputs, targets, warmup, device)
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        # Alternate which goes first, so neither always runs on a warmer machine.
        order = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in order:
            seconds[name].append(time_steps(steps[name], inputs, targets, steps_per_round, device))
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
