"""What a Llama multiplies, and how many parameters it has: the sizes `gptcourse.flops` counts (appendix B).

`llama_matmuls` lists the matmuls of one forward pass of ``Llama(config, attention="manual")``
as (copies, m, k, n); `llama_flop_count` makes them FLOPs, equal to `FlopCounterMode`'s. Both
counts plug into `count_flops` and `num_parameters` by `register_family` (in `gptcourse.llama`):
the core never imports this appendix. GQA shrinks the key/value projections, not the attention
matrix (every query head scores every key); RoPE, RMSNorm and SwiGLU's gating are elementwise,
uncounted, as by `FlopCounterMode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .flops import PassTotals, matmul_flops

# The configs these take are `gptcourse.llama.LlamaConfig`s, typed `Any` here: `gptcourse.llama`
# imports this module to register the counts, so this one cannot import it back.

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


def llama_matmuls(config: Any, batch_size: int, seq_len: int) -> dict[str, tuple[int, int, int, int]]:
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


def llama_parameter_counts(config: Any) -> dict[str, int]:
    """N in the senses of `gptcourse.flops.num_parameters`, for a Llama (appendix B).

    ``"matmul"``: the matrices that multiply activations, the head once (tied or not).
    ``"all"``: every parameter, an untied head's token embedding too (looked up, not multiplied);
    ``"no_position"`` is ``"all"`` (no position table); ``"non_embedding"`` drops the token embedding.
    """
    c = config
    d, kv = c.emb_dim, c.n_kv_groups * c.head_dim
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * c.hidden_dim  # W_query, out_proj; W_key, W_value; SwiGLU
    matmul = c.n_layers * per_layer + d * c.vocab_size  # + the head
    norms = c.n_layers * 2 * d + d  # two RMSNorm scales per block, and the final one: no shifts
    embedding = 0 if c.tie_embeddings else c.vocab_size * d
    total = matmul + norms + embedding
    return {"all": total, "no_position": total, "non_embedding": total - c.vocab_size * d, "matmul": matmul}


@dataclass(frozen=True)
class LlamaFlopCount(PassTotals):
    """FLOPs of one pass of a Llama (appendix B), component by component, as `FlopCount`'s.

    The layer components are per layer, ``lm_head`` once; ``training=True`` is forward +
    backward (3× forward).
    """

    layer_components: ClassVar[dict[str, str]] = LLAMA_LAYER_COMPONENTS

    config: Any
    batch_size: int
    seq_len: int
    training: bool
    q_proj: int  # x (B·T×d) @ W_query (d×d)
    kv_proj: int  # x @ W_key and x @ W_value, each (d × n_kv_groups·hd): GQA's saving
    attn_scores: int  # Q (T×hd) @ Kᵀ (hd×T), for each of B·n_heads query heads
    attn_values: int  # weights (T×T) @ V (T×hd), for each of B·n_heads query heads
    out_proj: int  # context (B·T×d) @ W_out (d×d)
    ff_gate: int  # (B·T×d) @ (d×hidden)
    ff_up: int  # (B·T×d) @ (d×hidden)
    ff_down: int  # (B·T×hidden) @ (hidden×d)
    lm_head: int  # (B·T×d) @ (d×vocab), tied or not

    def matmul_shapes(self) -> dict[str, str]:
        """Each component's matmul, written out with this pass's sizes."""
        matmuls = llama_matmuls(self.config, self.batch_size, self.seq_len)
        return {
            name: f"{copies} × ({m}×{k})·({k}×{n})" if copies > 1 else f"({m}×{k})·({k}×{n})"
            for name, (copies, m, k, n) in matmuls.items()
        }


def llama_flop_count(config: Any, batch_size: int, seq_len: int, training: bool) -> LlamaFlopCount:
    """`count_flops` for a Llama: each of `llama_matmuls` at 2·m·k·n, ×3 when training."""
    passes = 3 if training else 1  # backward = 2 × forward, matmul by matmul
    matmuls = llama_matmuls(config, batch_size, seq_len)
    flops = {name: passes * copies * matmul_flops(m, k, n) for name, (copies, m, k, n) in matmuls.items()}
    return LlamaFlopCount(config=config, batch_size=batch_size, seq_len=seq_len, training=training, **flops)
