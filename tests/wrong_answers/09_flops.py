"""Chapter 9: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "9.1": (
        "the head's forward FLOPs over the whole training step's (forward and backward)",
        """def head_share(preset, T=1024):
    c = GPTConfig.from_preset(preset)
    head = 2 * T * c.emb_dim * c.vocab_size  # forward only
    return head / count_flops(c, 1, T).total  # forward + backward


head_small, head_xl = head_share("gpt2-small"), head_share("gpt2-xl")
""",
    ),
    "9.2": (
        "the extra head rows counted forward only (2d a vocabulary entry, no backward)",
        """extra_per_token = 2 * gpt2.emb_dim * (50304 - 50257)
extra_fraction = extra_per_token / count_flops(gpt2).per_token
""",
    ),
    "9.3": (
        "off by one: the last length where attention is still under half (the bisection's lo)",
        """medium = GPTConfig.from_preset("gpt2-medium")


def share(T):
    wide = dataclasses.replace(medium, context_length=T)
    return count_flops(wide, 1, T).attention_share


lo, hi = 1, 1 << 20
while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (lo, mid) if share(mid) >= 0.5 else (mid, hi)
t_cross = lo
""",
    ),
    "9.4": (
        "divides by the A100's full bf16 peak, forgetting that only 40% of it is reached",
        """medium = GPTConfig.from_preset("gpt2-medium")
tokens = 20 * num_parameters(medium, "all")
a100 = peak_flops("NVIDIA A100-SXM4-80GB", "bf16")
a100_hours = count_flops(medium).per_token * tokens / a100 / 3600
""",
    ),
}
