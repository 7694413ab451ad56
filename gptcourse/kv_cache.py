"""The KV cache of chapter 8: generating one token per step instead of the whole text again.

In a causal model a token's key and value depend only on it and the tokens before it, so
once computed they never change. `KVCache` keeps every layer's; `forward_with_cache` runs a
`GPT` on the tokens that follow the cached ones, reading the model's own modules
(``tok_emb``, ``pos_emb``, ``trf_blocks[i].norm1/att/ff/norm2``, ``final_norm``,
``out_head``), so that chapters 3 to 6's ``forward`` methods need no cache at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import visible_keys
from .checks import positive_int


class KVCache:
    """Every layer's keys and values so far, each of shape (batch, heads, tokens, head_dim) (chapter 8)."""

    def __init__(self, n_layers: int) -> None:
        positive_int("n_layers", n_layers)
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers

    def __len__(self) -> int:
        """Tokens cached (the same in every layer)."""
        return 0 if self.keys[0] is None else self.keys[0].shape[-2]

    def update(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new tokens' keys and values to `layer`'s; return those of every token so far."""
        if self.keys[layer] is not None:
            keys = torch.cat([self.keys[layer], keys], dim=-2)  # (B, nh, T_cached + T_new, hd)
            values = torch.cat([self.values[layer], values], dim=-2)
        self.keys[layer], self.values[layer] = keys, values
        return keys, values

    def clear(self) -> None:
        """Forget every token (chapter 8)."""
        n_layers = len(self.keys)
        self.keys, self.values = [None] * n_layers, [None] * n_layers


def forward_with_cache(model: nn.Module, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Logits (batch, tokens, vocab) of `model` for `idx`, the tokens that follow those in `cache` (chapter 8).

    Their positions continue from ``len(cache)``, their keys and values join the cache, and
    each attends to every cached token and to the new ones up to itself. For inference: no
    dropout, as in ``model.eval()``; ``model(whole_sequence)`` gives the same logits up to rounding.
    """
    num_cached, (_, num_tokens) = len(cache), idx.shape
    context_length = model.config.context_length
    if len(cache.keys) != len(model.trf_blocks):
        raise ValueError(
            f"cache has {len(cache.keys)} layers but the model has {len(model.trf_blocks)}; use KVCache(model.config.n_layers)."
        )
    if num_cached + num_tokens > context_length:
        raise ValueError(
            f"The cache holds {num_cached} tokens; {num_tokens} more would pass the context length {context_length}. "
            "Clear the cache and start again from the last context_length tokens."
        )
    positions = torch.arange(num_cached, num_cached + num_tokens, device=idx.device)
    x = model.tok_emb(idx) + model.pos_emb(positions)  # (B, T, d)
    for layer, block in enumerate(model.trf_blocks):
        x = x + _cached_attention(block.att, block.norm1(x), cache, layer)
        x = x + block.ff(block.norm2(x))
    return model.out_head(model.final_norm(x))  # (B, T, vocab)


def _cached_attention(att: nn.Module, x: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
    """A multi-head attention module's output for new tokens `x` (B, T, d), the earlier ones' K, V read from `cache`."""
    b, num_tokens, _ = x.shape  # (B, T, d)
    q, k, v = (w(x).view(b, num_tokens, att.n_heads, att.head_dim).transpose(1, 2) for w in (att.W_query, att.W_key, att.W_value))
    k, v = cache.update(layer, k, v)  # (B, nh, T_cached + T, hd)
    num_keys = k.shape[-2]
    # New token i is token num_keys - num_tokens + i of the text: it sees the keys up to itself. is_causal=True
    # would align the mask top-left (query 0 seeing key 0 only), so it is given explicitly; one new token sees all.
    visible = None if num_tokens == 1 else visible_keys(num_tokens, num_keys, x.device)
    context = F.scaled_dot_product_attention(q, k, v, attn_mask=visible)  # (B, nh, T, hd)
    return att.out_proj(context.transpose(1, 2).reshape(b, num_tokens, att.d_out))  # (B, T, d)
