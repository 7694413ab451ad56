"""Appendix B: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "B.1": (
        "GPT-2's own width 4d, forgetting that SwiGLU has three matrices, not two",
        """hidden_small = 4 * 768
hidden_7b = 256 * math.ceil(8 * 4096 / 3 / 256)
""",
    ),
    "B.2": (
        "the keys only: the values, cached beside them, forgotten",
        """kv_gib = {kind: 16 * heads * 64 * 2 * 131_072 / 2**30
          for kind, heads in [("GQA", 8), ("MHA", 32), ("MQA", 1)]}
""",
    ),
    "B.3": (
        "W_key and W_value d x d, as in multi-head attention: the key/value heads ignored",
        """def llama_params(c):
    d = c.emb_dim
    per_layer = 4 * d * d + 3 * d * c.hidden_dim + 2 * d
    head = 0 if c.tie_embeddings else c.vocab_size * d
    return c.vocab_size * d + c.n_layers * per_layer + d + head


params_360m = llama_params(LlamaConfig(
    vocab_size=49152, context_length=8192, emb_dim=960, n_layers=32, n_heads=15,
    n_kv_groups=5, hidden_dim=2560, rope_base=100_000.0, tie_embeddings=True))
""",
    ),
    "B.4": (
        "the RoPE paper's base 10,000 (used earlier in the appendix) for SmolLM2's 100,000",
        """theta = 10_000.0 ** (-torch.arange(0, 64, 2, dtype=torch.float64) / 64)
n_slow = int((8191 * theta < 2 * math.pi).sum())
""",
    ),
    "B.5": (
        "the RoFormer paper's neighbouring pairs (x_2i, x_2i+1) for the halves' pairs",
        """def my_apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    c = cos[..., :half].repeat_interleave(2, -1)
    s = sin[..., :half].repeat_interleave(2, -1)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    return x * c + torch.stack([-x_odd, x_even], dim=-1).flatten(-2) * s
""",
    ),
}
