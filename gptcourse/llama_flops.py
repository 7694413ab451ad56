"""What a Llama multiplies, and how many parameters it has: the sizes `gptcourse.flops` counts (appendix B).

`llama_matmuls` lists every matmul of one forward pass of ``Llama(config,
attention="manual")``, as (copies, m, k, n); `gptcourse.flops.count_flops` turns them into
FLOPs (2·m·k·n each, ×3 for training) and checks, in the tests, equal `FlopCounterMode`'s
count. The two changes that move FLOPs, against GPT-2's layer at the same width d:

* grouped-query attention: the key and value projections are d × (n_kv_groups · head_dim)
  instead of d × d. The attention matrix itself is unchanged: every *query* head still
  scores every key (the shared key/value heads are read n_heads / n_kv_groups times).
* SwiGLU: three d × hidden matrices (gate, up, down) instead of two d × 4d.

RoPE, RMSNorm and SwiGLU's gating (silu, the elementwise product) are a few FLOPs per
element, not matmuls: `FlopCounterMode` counts none of them, and neither do we.
"""

from __future__ import annotations

from .llama import LlamaConfig

# The per-layer components, in the order a token meets them, with readable names.
LLAMA_LAYER_COMPONENTS: dict[str, str] = {
    "q_proj": "query projection",
    "kv_proj": "key/value projections (GQA)",
    "attn_scores": "attention scores Q·Kᵀ",
    "attn_values": "attention × values",
    "out_proj": "output projection",
    "ff_gate": "SwiGLU gate",
    "ff_up": "SwiGLU up",
    "ff_down": "SwiGLU down",
}


def llama_matmuls(config: LlamaConfig, batch_size: int, seq_len: int) -> dict[str, tuple[int, int, int, int]]:
    """Each component's matmuls in one forward pass, as (copies, m, k, n): per layer, then ``lm_head`` once.

    B·T tokens, width d, n_heads query heads of hd dimensions, n_kv_groups key/value heads.
    """
    c, b, t = config, batch_size, seq_len
    bt, d, hd, f = b * t, c.emb_dim, c.head_dim, c.hidden_dim
    return {
        "q_proj": (1, bt, d, c.n_heads * hd),
        "kv_proj": (2, bt, d, c.n_kv_groups * hd),  # K and V: n_kv_groups heads each
        "attn_scores": (b * c.n_heads, t, hd, t),  # every query head against its group's keys
        "attn_values": (b * c.n_heads, t, t, hd),
        "out_proj": (1, bt, c.n_heads * hd, d),
        "ff_gate": (1, bt, d, f),
        "ff_up": (1, bt, d, f),
        "ff_down": (1, bt, f, d),
        "lm_head": (1, bt, d, c.vocab_size),
    }


def llama_parameter_counts(config: LlamaConfig) -> dict[str, int]:
    """N in the senses of `gptcourse.flops.num_parameters`, for a Llama (appendix B).

    ``"matmul"``: the matrices that multiply activations, the head included once (tied or
    not). ``"all"``: every parameter; an untied head adds a vocab × d token embedding, which
    is looked up, not multiplied. ``"no_position"`` is ``"all"`` (there is no position
    table), and ``"non_embedding"`` leaves out the token embedding.
    """
    c = config
    d, kv = c.emb_dim, c.n_kv_groups * c.head_dim
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * c.hidden_dim  # W_query, out_proj; W_key, W_value; SwiGLU
    matmul = c.n_layers * per_layer + d * c.vocab_size  # + the head
    norms = c.n_layers * 2 * d + d  # two RMSNorm scales per block, and the final one: no shifts
    embedding = 0 if c.tie_embeddings else c.vocab_size * d
    total = matmul + norms + embedding
    return {"all": total, "no_position": total, "non_embedding": total - c.vocab_size * d, "matmul": matmul}
