"""The attention modules the course builds, from one head to PyTorch's fused kernel.

Every module here maps ``x`` of shape (batch, tokens, d_in) to (batch, tokens, d_out)
and is causal: token t attends to tokens 0..t only (except chapter 3's two warm-ups,
`SelfAttentionV1` and `SelfAttentionV2`, where every token sees every other). The multi-head modules share
parameter names (``W_query``, ``W_key``, ``W_value``, ``out_proj``), so one's
``state_dict`` loads into another and they compute the same function.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check_heads(d_out: int, num_heads: int) -> None:
    if num_heads <= 0 or d_out % num_heads != 0:
        raise ValueError(
            f"d_out ({d_out}) must be divisible by num_heads ({num_heads}): each head gets d_out // num_heads dimensions."
        )


def _check_length(num_tokens: int, context_length: int) -> None:
    if num_tokens > context_length:
        raise ValueError(
            f"The input has {num_tokens} tokens but the causal mask covers context_length={context_length}. "
            "Crop the input or build the module with a larger context_length."
        )


class SelfAttentionV1(nn.Module):
    """Scaled dot-product self-attention with the weight matrices as bare parameters (chapter 3).

    Not causal: every token attends to every token. ``x @ W`` with W of shape (d_in, d_out),
    exactly as the formula reads; `SelfAttentionV2` does the same with `nn.Linear`.
    """

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries = x @ self.W_query  # (..., T, d_out)
        keys = x @ self.W_key
        values = x @ self.W_value
        scores = queries @ keys.transpose(-2, -1)  # (..., T, T)
        weights = torch.softmax(scores / math.sqrt(keys.shape[-1]), dim=-1)
        return weights @ values  # (..., T, d_out)


class SelfAttentionV2(nn.Module):
    """`SelfAttentionV1` with `nn.Linear` layers: a better initialisation, and optional biases (chapter 3).

    `nn.Linear` stores its weight transposed, (d_out, d_in), and computes ``x @ weight.T``;
    `load_into_v1` copies the weights so that both modules compute the same function.
    """

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries = self.W_query(x)  # (..., T, d_out)
        keys = self.W_key(x)
        values = self.W_value(x)
        scores = queries @ keys.transpose(-2, -1)  # (..., T, T)
        weights = torch.softmax(scores / math.sqrt(keys.shape[-1]), dim=-1)
        return weights @ values  # (..., T, d_out)

    @torch.no_grad()
    def load_into_v1(self, v1: SelfAttentionV1) -> SelfAttentionV1:
        """Copy these weights into a `SelfAttentionV1` (transposed; V1 has no biases)."""
        if self.W_query.bias is not None:
            raise ValueError("SelfAttentionV1 has no biases; build SelfAttentionV2 with qkv_bias=False.")
        for name in ("W_query", "W_key", "W_value"):
            getattr(v1, name).copy_(getattr(self, name).weight.T)
        return v1


class CausalAttention(nn.Module):
    """One head of causal self-attention, written out step by step (chapter 3)."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float = 0.0, qkv_bias: bool = False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        # True above the diagonal: the future positions a token may not see.
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), diagonal=1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, num_tokens, _ = x.shape  # (B, T, d_in)
        _check_length(num_tokens, self.mask.shape[0])
        queries = self.W_query(x)  # (B, T, d_out)
        keys = self.W_key(x)
        values = self.W_value(x)
        scores = queries @ keys.transpose(1, 2)  # (B, T, T)
        # Mask *before* the softmax so each row still sums to 1 over the visible tokens.
        scores = scores.masked_fill(self.mask[:num_tokens, :num_tokens], float("-inf"))
        weights = torch.softmax(scores / math.sqrt(self.d_out), dim=-1)
        weights = self.dropout(weights)
        return weights @ values  # (B, T, d_out)


class MultiHeadAttentionWrapper(nn.Module):
    """Several `CausalAttention` heads side by side, concatenated, then projected (chapter 4).

    Each head has ``d_out // num_heads`` dimensions, so the output has ``d_out``, as in
    `MultiHeadAttention`.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float = 0.0, num_heads: int = 1, qkv_bias: bool = False):
        super().__init__()
        _check_heads(d_out, num_heads)
        head_dim = d_out // num_heads
        self.heads = nn.ModuleList(CausalAttention(d_in, head_dim, context_length, dropout, qkv_bias) for _ in range(num_heads))
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(torch.cat([head(x) for head in self.heads], dim=-1))

    @torch.no_grad()
    def load_from(self, mha: MultiHeadAttention) -> MultiHeadAttentionWrapper:
        """Copy a batched module's weights into the heads: head h owns rows h*hd:(h+1)*hd."""
        head_dim = mha.head_dim
        for h, head in enumerate(self.heads):
            rows = slice(h * head_dim, (h + 1) * head_dim)
            for name in ("W_query", "W_key", "W_value"):
                mine, theirs = getattr(head, name), getattr(mha, name)
                mine.weight.copy_(theirs.weight[rows])
                if mine.bias is not None:
                    mine.bias.copy_(theirs.bias[rows])
        self.out_proj.load_state_dict(mha.out_proj.state_dict())
        return self


class LayerKVCache:
    """The keys and values one attention layer has computed so far (chapter 8).

    A token's key and value depend only on the token and the ones before it, so once
    computed they never change. When generating, each step then needs K and V for the
    one new token only; the others are read from here.
    """

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None  # (B, nh, T_cached, hd)
        self.values: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.keys is None else self.keys.shape[-2]

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new tokens' keys and values; return those of every token so far."""
        if self.keys is not None:
            keys = torch.cat([self.keys, keys], dim=-2)  # (B, nh, T_cached + T_new, hd)
            values = torch.cat([self.values, values], dim=-2)
        self.keys, self.values = keys, values
        return keys, values


class KVCache:
    """One `LayerKVCache` per transformer block: pass it to ``GPT.forward(idx, kv_cache=...)``."""

    def __init__(self, n_layers: int) -> None:
        self.layers = [LayerKVCache() for _ in range(n_layers)]

    def __len__(self) -> int:
        """Tokens cached (the same in every layer)."""
        return len(self.layers[0])

    def clear(self) -> None:
        for layer in self.layers:
            layer.keys = layer.values = None


class MultiHeadAttention(nn.Module):
    """All heads at once: one projection each for Q, K, V, split into heads (chapter 4).

    The attention matrix is computed explicitly (``Q @ K^T``, mask, softmax, ``@ V``), so
    every FLOP is a visible matmul: this is the path the FLOP chapter counts.

    ``forward(x, kv_cache=cache)`` treats ``x`` as the tokens that follow the ones already
    in `cache` (a `LayerKVCache`): their keys and values are appended to it, and their
    queries attend to every cached token and to themselves. Without a cache, nothing changes.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float = 0.0, num_heads: int = 1, qkv_bias: bool = False):
        super().__init__()
        _check_heads(d_out, num_heads)
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.dropout_p = dropout
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mixes what the heads found
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), diagonal=1), persistent=False)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        b, num_tokens, _ = t.shape
        return t.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        num_queries, num_keys = q.shape[-2], k.shape[-2]  # equal, unless earlier keys come from a cache
        scores = q @ k.transpose(2, 3)  # (B, nh, T_q, T_k)
        # Query i is token num_keys - num_queries + i of the sequence: it sees the keys up to itself.
        scores = scores.masked_fill(self.mask[num_keys - num_queries : num_keys, :num_keys], float("-inf"))
        weights = torch.softmax(scores / math.sqrt(self.head_dim), dim=-1)
        weights = self.dropout(weights)
        return weights @ v  # (B, nh, T, hd)

    def forward(self, x: torch.Tensor, kv_cache: LayerKVCache | None = None) -> torch.Tensor:
        b, num_tokens, _ = x.shape  # (B, T, d_in)
        num_cached = 0 if kv_cache is None else len(kv_cache)
        _check_length(num_cached + num_tokens, self.context_length)
        q = self._split_heads(self.W_query(x))  # (B, nh, T, hd)
        k = self._split_heads(self.W_key(x))
        v = self._split_heads(self.W_value(x))
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)  # (B, nh, T_cached + T, hd)
        context = self._attend(q, k, v)  # (B, nh, T, hd)
        context = context.transpose(1, 2).reshape(b, num_tokens, self.d_out)  # merge heads: (B, T, d_out)
        return self.out_proj(context)


class SDPAMultiHeadAttention(MultiHeadAttention):
    """`MultiHeadAttention` with PyTorch's fused `scaled_dot_product_attention` (chapter 4).

    Same parameters, same result; on a GPU it runs FlashAttention-style kernels that never
    store the (T, T) attention matrix, which is why it is the default in `GPT`.
    """

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        dropout_p = self.dropout_p if self.training else 0.0
        num_queries, num_keys = q.shape[-2], k.shape[-2]
        if num_queries == num_keys:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        # Fewer queries than keys: the last queries after a KV cache. is_causal=True would align
        # its mask top-left (query 0 seeing key 0 only), so give the mask explicitly (True = may
        # attend); one new query sees every key, and needs none.
        allowed = None if num_queries == 1 else ~self.mask[num_keys - num_queries : num_keys, :num_keys]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)


# The names `GPT(config, attention=...)` accepts.
ATTENTION_CLASSES: dict[str, type[MultiHeadAttention]] = {
    "sdpa": SDPAMultiHeadAttention,
    "manual": MultiHeadAttention,
}
