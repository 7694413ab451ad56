"""The attention modules chapters 3 and 4 build, from one head to PyTorch's fused kernel.

Every module here maps ``x`` of shape (batch, tokens, d_in) to (batch, tokens, d_out)
and is causal: token t attends to tokens 0..t only (except chapter 3's two warm-ups,
`SelfAttentionV1` and `SelfAttentionV2`, where every token sees every other). The
multi-head modules share parameter names (``W_query``, ``W_key``, ``W_value``,
``out_proj``), so one's ``state_dict`` loads into another and they compute the same function.

The causal mask is made in ``forward`` at the size of the input, not stored at
``context_length``: a (T, T) buffer per layer would cost 40 GB at T = 200,000 before a
single token is read, and building a (T, T) mask for the T tokens at hand is cheap next to
the (T, T) scores it masks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .checks import positive_int


def causal_mask(num_tokens: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) booleans, True above the diagonal: the future positions a token may not see (chapter 3)."""
    return torch.triu(torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=device), diagonal=1)


def visible_keys(num_queries: int, num_keys: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(queries, keys) booleans, True where a query may look: the last `num_queries` of `num_keys` tokens, causally.

    With a KV cache (chapter 8; appendix B) the new tokens are the last rows, after the cached ones.
    """
    return torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).tril(num_keys - num_queries)


def _check_length(num_tokens: int, context_length: int) -> None:
    if num_tokens > context_length:
        raise ValueError(
            f"The input has {num_tokens} tokens but the module was built for context_length={context_length}. "
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
        """Copy these weights into a `SelfAttentionV1`, transposed; V1 has no biases (chapter 3)."""
        if self.W_query.bias is not None:
            raise ValueError("SelfAttentionV1 has no biases; build SelfAttentionV2 with qkv_bias=False.")
        for name in ("W_query", "W_key", "W_value"):
            getattr(v1, name).copy_(getattr(self, name).weight.T)
        return v1


class CausalAttention(nn.Module):
    """One head of causal self-attention, written out step by step (chapter 3)."""

    def __init__(self, d_in: int, d_out: int, context_length: int, drop_rate: float = 0.0, qkv_bias: bool = False):
        super().__init__()
        self.context_length = positive_int("context_length", context_length)  # the longest input it accepts
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


def _head_dim(d_out: int, n_heads: int) -> int:
    positive_int("n_heads", n_heads)
    if d_out % n_heads != 0:
        raise ValueError(f"d_out ({d_out}) must be divisible by n_heads ({n_heads}): each head gets d_out // n_heads dimensions.")
    return d_out // n_heads


class MultiHeadAttentionWrapper(nn.Module):
    """Several `CausalAttention` heads side by side, concatenated, then projected (chapter 4).

    Each head has ``d_out // n_heads`` dimensions, so the output has ``d_out``, as in
    `MultiHeadAttention`.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, drop_rate: float = 0.0, n_heads: int = 1, qkv_bias: bool = False):
        super().__init__()
        head_dim = _head_dim(d_out, n_heads)
        self.heads = nn.ModuleList(CausalAttention(d_in, head_dim, context_length, drop_rate, qkv_bias) for _ in range(n_heads))
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(torch.cat([head(x) for head in self.heads], dim=-1))  # (B, T, d_out)

    @torch.no_grad()
    def load_from(self, mha: MultiHeadAttention) -> MultiHeadAttentionWrapper:
        """Copy a batched module's weights into the heads: head h owns rows h*hd:(h+1)*hd (chapter 4)."""
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

    The attention matrix is computed explicitly (``Q @ K^T``, mask, softmax, ``@ V``), so
    every FLOP is a visible matmul: this is the path the FLOP chapter counts.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, drop_rate: float = 0.0, n_heads: int = 1, qkv_bias: bool = False):
        super().__init__()
        self.head_dim = _head_dim(d_out, n_heads)
        self.d_out = d_out
        self.n_heads = n_heads
        self.context_length = positive_int("context_length", context_length)  # the longest input it accepts
        self.drop_rate = drop_rate
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mixes what the heads found
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, _ = x.shape  # (B, T, d_in)
        _check_length(num_tokens, self.context_length)
        # Project, then split the width into heads: (B, T, d_out) -> (B, nh, T, hd).
        q = self.W_query(x).view(b, num_tokens, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.W_key(x).view(b, num_tokens, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.W_value(x).view(b, num_tokens, self.n_heads, self.head_dim).transpose(1, 2)
        context = self.attend(q, k, v)  # (B, nh, T, hd)
        context = context.transpose(1, 2).reshape(b, num_tokens, self.d_out)  # merge the heads: (B, T, d_out)
        return self.out_proj(context)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(mask(Q K^T) / √hd) V for every head at once (chapter 4)."""
        scores = q @ k.transpose(2, 3)  # (B, nh, T, T)
        scores = scores.masked_fill(causal_mask(q.shape[-2], q.device), float("-inf"))
        weights = torch.softmax(scores / math.sqrt(self.head_dim), dim=-1)
        weights = self.dropout(weights)
        return weights @ v  # (B, nh, T, hd)


class SDPAMultiHeadAttention(MultiHeadAttention):
    """`MultiHeadAttention` with PyTorch's fused `scaled_dot_product_attention` (chapter 4).

    Same parameters, same result; on a GPU it runs FlashAttention-style kernels that never
    store the (T, T) attention matrix, which is why it is the default in `GPT`.
    """

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The same as `MultiHeadAttention.attend`, in one fused kernel (chapter 4)."""
        dropout_p = self.drop_rate if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)  # (B, nh, T, hd)


# The names `GPT(config, attention=...)` accepts.
ATTENTION_CLASSES: dict[str, type[MultiHeadAttention]] = {
    "sdpa": SDPAMultiHeadAttention,
    "manual": MultiHeadAttention,
}
