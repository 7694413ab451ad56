"""The attention modules of chapters 3 and 4, from one head to PyTorch's fused kernel.

Each maps ``x`` (batch, tokens, d_in) to (batch, tokens, d_out) and is causal (token t
sees tokens 0..t), except chapter 3's warm-ups `SelfAttentionV1` and `SelfAttentionV2`.
The multi-head modules share parameter names: one's ``state_dict`` loads into another.
The causal mask is made in ``forward``, not stored: 40 GB a layer at 200,000 tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .checks import heads_divide, positive_int
from .kv_cache import KVCache


def causal_mask(
    num_tokens: int,
    device: torch.device | None = None,
    num_keys: int | None = None,
    window: int | None = None,
) -> torch.Tensor:
    """(T, T) booleans, True above the diagonal: the future, hidden (chapter 3).

    After a KV cache (chapter 8) the T queries are the last of `num_keys` tokens. With a
    `window` w, a query also stops seeing keys w or more tokens back (Exercise 3.2).
    """
    num_keys = num_tokens if num_keys is None else num_keys
    ones = torch.ones(num_tokens, num_keys, dtype=torch.bool, device=device)
    future = torch.triu(ones, diagonal=num_keys - num_tokens + 1)
    if window is None:
        return future
    offset = num_keys - num_tokens - positive_int("window", window)
    return future | torch.tril(ones, diagonal=offset)


def visible_keys(
    num_queries: int, num_keys: int, device: torch.device | None = None
) -> torch.Tensor:
    """(queries, keys) booleans, True where the last `num_queries` tokens may look.

    The opposite of `causal_mask`, for `scaled_dot_product_attention` (chapter 8).
    """
    ones = torch.ones(num_queries, num_keys, dtype=torch.bool, device=device)
    return ones.tril(num_keys - num_queries)


def _check_length(num_tokens: int, context_length: int) -> None:
    if num_tokens > context_length:
        raise ValueError(
            f"The input has {num_tokens} tokens but the module was built for "
            f"context_length={context_length}. Crop the input or build the module "
            "with a larger context_length."
        )


def _head_dim(d_out: int, n_heads: int) -> int:
    heads_divide(d_out, positive_int("n_heads", n_heads))
    return d_out // n_heads


class SelfAttentionV1(nn.Module):
    """Self-attention with bare weight matrices, ``x @ W`` as in the math (chapter 3).

    Not causal: every token attends to every token.
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
    """`SelfAttentionV1` with `nn.Linear`: a better init, optional biases (chapter 3).

    `nn.Linear` stores its weight transposed, (d_out, d_in); `load_into_v1` copies it.
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
        """Copy these weights into a `SelfAttentionV1`, transposed (chapter 3)."""
        if self.W_query.bias is not None:
            raise ValueError(
                "SelfAttentionV1 has no biases; "
                "build SelfAttentionV2 with qkv_bias=False."
            )
        for name in ("W_query", "W_key", "W_value"):
            getattr(v1, name).copy_(getattr(self, name).weight.T)
        return v1


class CausalAttention(nn.Module):
    """One head of causal self-attention, written out step by step (chapter 3)."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, drop_rate: float = 0.0,
        qkv_bias: bool = False,
    ):  # fmt: skip
        super().__init__()
        # The longest input it accepts.
        self.context_length = positive_int("context_length", context_length)
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, num_tokens, _ = x.shape  # (B, T, d_in)
        _check_length(num_tokens, self.context_length)
        queries = self.W_query(x)  # (B, T, d_out)
        keys = self.W_key(x)
        values = self.W_value(x)
        scores = queries @ keys.transpose(1, 2)  # (B, T, T)
        # Mask *before* the softmax so each row still sums to 1 over the visible tokens.
        scores = scores.masked_fill(causal_mask(num_tokens, x.device), float("-inf"))
        weights = torch.softmax(scores / math.sqrt(keys.shape[-1]), dim=-1)
        weights = self.dropout(weights)
        return weights @ values  # (B, T, d_out)


class MultiHeadAttentionWrapper(nn.Module):
    """`CausalAttention` heads side by side, concatenated, then projected (chapter 4).

    Each head has ``d_out // n_heads`` dimensions, so the output has ``d_out``.
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, drop_rate: float = 0.0,
        n_heads: int = 1, qkv_bias: bool = False,
    ):  # fmt: skip
        super().__init__()
        hd = _head_dim(d_out, n_heads)
        self.heads = nn.ModuleList(
            CausalAttention(d_in, hd, context_length, drop_rate, qkv_bias)
            for _ in range(n_heads)
        )
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = torch.cat([head(x) for head in self.heads], dim=-1)  # (B, T, d_out)
        return self.out_proj(heads)

    @torch.no_grad()
    def load_from(self, mha: MultiHeadAttention) -> MultiHeadAttentionWrapper:
        """Copy `mha`'s weights in: head h gets rows h·hd to (h+1)·hd (chapter 4)."""
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


class MultiHeadAttention(nn.Module):
    """All heads at once: one projection each for Q, K, V, split into heads (chapter 4).

    The attention matrix is explicit (``Q @ K^T``, mask, softmax, ``@ V``), so every
    FLOP is a visible matmul: the path chapter 9 counts. With a `KVCache` (chapter 8),
    `x` holds the tokens after the cached ones, and `layer` picks the cache's layer.
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, drop_rate: float = 0.0,
        n_heads: int = 1, qkv_bias: bool = False,
    ):  # fmt: skip
        super().__init__()
        self.head_dim = _head_dim(d_out, n_heads)
        self.d_out = d_out
        self.n_heads = n_heads
        # The longest input it accepts.
        self.context_length = positive_int("context_length", context_length)
        self.drop_rate = drop_rate
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mixes what the heads found
        self.dropout = nn.Dropout(drop_rate)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        b, num_tokens, _ = x.shape  # (B, T, d_in)
        _check_length(num_tokens, self.context_length)
        # Project, then split the width into heads: (B, T, d_out) -> (B, nh, T, hd).
        heads = (b, num_tokens, self.n_heads, self.head_dim)
        q = self.W_query(x).view(heads).transpose(1, 2)
        k = self.W_key(x).view(heads).transpose(1, 2)
        v = self.W_value(x).view(heads).transpose(1, 2)
        if cache is not None:  # chapter 8: the cached tokens' keys and values first
            k, v = cache.update(layer, k, v)  # (B, nh, T_cached + T, hd)
        context = self.attend(q, k, v)  # (B, nh, T, hd)
        context = context.transpose(1, 2).reshape(b, num_tokens, self.d_out)  # merged
        return self.out_proj(context)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(mask(Q K^T) / √hd) V for every head at once (chapter 4)."""
        scores = q @ k.transpose(2, 3)  # (B, nh, T, T_keys): more keys after a cache
        future = causal_mask(q.shape[-2], q.device, num_keys=k.shape[-2])
        scores = scores.masked_fill(future, float("-inf"))
        weights = torch.softmax(scores / math.sqrt(self.head_dim), dim=-1)
        weights = self.dropout(weights)
        return weights @ v  # (B, nh, T, hd)


class SDPAMultiHeadAttention(MultiHeadAttention):
    """`MultiHeadAttention` with PyTorch's `scaled_dot_product_attention` (chapter 4).

    Same parameters, same result; its fused kernels (FlashAttention-2 on sm80+ GPUs in
    fp16/bf16, the memory-efficient kernel on a T4 or in fp32, PyTorch's own on a CPU)
    never store the (T, T) attention matrix, which is why `GPT` uses it by default.
    """

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The same as `MultiHeadAttention.attend`, in one fused kernel (chapter 4)."""
        p = self.drop_rate if self.training else 0.0
        num_queries, num_keys = q.shape[-2], k.shape[-2]
        if num_queries == num_keys:  # no cached keys
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        # After cached keys the queries are the last rows, but is_causal would align the
        # mask top-left: give it explicitly. A single new token sees every key.
        mask = None
        if num_queries > 1:
            mask = visible_keys(num_queries, num_keys, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)


# The names `GPT(config, attention=...)` accepts.
ATTENTION_CLASSES: dict[str, type[MultiHeadAttention]] = {
    "sdpa": SDPAMultiHeadAttention,
    "manual": MultiHeadAttention,
}
