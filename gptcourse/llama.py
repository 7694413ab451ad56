"""Appendix B: from GPT-2 to a Llama-style model, one change at a time.

`GPT` (chapter 6) with the changes Llama-style models share (Llama, Touvron et al.
2023): `RMSNorm` for `LayerNorm` (Zhang & Sennrich 2019), rotary position embeddings
for the learned table (`apply_rope`, in `gptcourse.llama_rope`), the gated `SwiGLU`
(Shazeer 2020), `GroupedQueryAttention` for a smaller KV cache (GQA, Ainslie et al.
2023), no biases. Module names are `GPT`'s, so the two read as a diff.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import llama_weights
from .attention import causal_mask, visible_keys
from .checks import (
    config_from_mapping,
    finite_number,
    heads_divide,
    one_of,
    positive_int,
)
from .config import GPTConfig, check_overrides
from .flops import ModelFamily, coerce_config, register_family
from .generate import generate
from .kv_cache import KVCache
from .llama_flops import llama_flop_count, llama_parameter_counts
from .llama_rope import RopeScaling, apply_rope, rope_angles
from .model import raise_if_too_big
from .weights import CheckpointError, read_tensors, shape_mismatches

# The sizes a config needs; the other fields have defaults.
REQUIRED = (
    "vocab_size", "context_length", "emb_dim", "n_layers", "n_heads", "n_kv_groups",
    "hidden_dim",
)  # fmt: skip


@dataclass(frozen=True)
class LlamaConfig:
    """The shape of a Llama-style model, checked like `GPTConfig`'s (appendix B)."""

    vocab_size: int
    context_length: int  # the longest sequence: RoPE's angles are precomputed up to it
    emb_dim: int  # the width d of every token's vector
    n_layers: int  # transformer blocks
    n_heads: int  # query heads, each emb_dim // n_heads wide
    # Key/value heads: n_heads is multi-head attention, 1 multi-query, between: grouped.
    n_kv_groups: int
    # SwiGLU's width: about 8/3·emb_dim has the parameters of GPT-2's 4·emb_dim MLP.
    hidden_dim: int
    # RoPE's θ: RoFormer's and Llama 2's; Llama 3 uses 500,000, SmolLM2 100,000.
    rope_base: float = 10_000.0
    # Llama 2 has a separate output head; SmolLM2 and Llama 3.2 1B tie it.
    tie_embeddings: bool = False
    # RMSNorm's ε: Llama 2/3's and SmolLM2's (transformers' default is 1e-6).
    norm_eps: float = 1e-5
    # Llama 3.1/3.2 slow RoPE's long wavelengths down (`RopeScaling`); None: plain RoPE.
    rope_scaling: RopeScaling | None = None

    def __post_init__(self) -> None:
        for name in REQUIRED:
            positive_int(name, getattr(self, name))
        heads_divide(self.emb_dim, self.n_heads)
        if self.n_heads % self.n_kv_groups != 0:
            divisors = [k for k in range(1, self.n_heads + 1) if self.n_heads % k == 0]
            raise ValueError(
                f"n_heads ({self.n_heads}) must be divisible by n_kv_groups "
                f"({self.n_kv_groups}): each key/value head serves n_heads // "
                f"n_kv_groups query heads. Choose n_kv_groups from {divisors}."
            )
        if self.head_dim % 2 != 0:
            raise ValueError(
                f"emb_dim // n_heads = {self.head_dim} must be even: RoPE rotates each "
                "head's dimensions in pairs. Change emb_dim or n_heads."
            )
        if finite_number("rope_base", self.rope_base) <= 1:
            raise ValueError(
                f"rope_base must be > 1, got {self.rope_base!r}: RoPE's frequencies "
                "are rope_base^(-2i/head_dim), which must fall from one pair of "
                "dimensions to the next. Llama uses 10,000 to 500,000."
            )
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(
                f"tie_embeddings must be True or False, got {self.tie_embeddings!r}."
            )
        finite_number("norm_eps", self.norm_eps, strictly_above=0)
        # a dict (from to_dict or JSON) becomes a RopeScaling: frozen, hence __setattr__
        object.__setattr__(self, "rope_scaling", RopeScaling.coerce(self.rope_scaling))

    @property
    def head_dim(self) -> int:
        """Dimensions per attention head (queries, keys and values alike)."""
        return self.emb_dim // self.n_heads

    @property
    def group_size(self) -> int:
        """Query heads per key/value head: n_heads // n_kv_groups."""
        return self.n_heads // self.n_kv_groups

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> LlamaConfig:
        """A preset, with `overrides`: ``from_preset("smollm2-135m", n_layers=2)``."""
        preset = PRESETS[one_of("preset", name, PRESETS)]
        check_overrides(cls, overrides)
        return dataclasses.replace(preset, **overrides)

    @classmethod
    def coerce(cls, config: LlamaConfig | Mapping[str, Any] | str) -> LlamaConfig:
        """A `LlamaConfig` from one, a preset name, or a dict with its fields."""
        if isinstance(config, LlamaConfig):
            return config
        if isinstance(config, str):
            return cls.from_preset(config)
        if isinstance(config, Mapping):
            hint = "For SmolLM2-135M's shape: LlamaConfig.from_preset('smollm2-135m')."
            return config_from_mapping(cls, config, REQUIRED, hint=hint)
        raise TypeError(
            "config must be a LlamaConfig, a preset name or a dict, "
            f"got {type(config).__name__}."
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return dataclasses.asdict(self)


PRESETS: dict[str, LlamaConfig] = {
    # HuggingFaceTB/SmolLM2-135M's config.json on the Hugging Face hub (Allal et al.
    # 2025): its context is 8,192 tokens after the paper's long-context stage.
    "smollm2-135m": LlamaConfig(
        vocab_size=49152, context_length=8192, emb_dim=576, n_layers=30, n_heads=9,
        n_kv_groups=3, hidden_dim=1536, rope_base=100_000.0, tie_embeddings=True,
    ),  # 134,515,008 parameters
    # meta-llama/Llama-3.2-1B's config.json, its "llama3" RoPE scaling included: trained
    # on 8,192 tokens, its slow pairs turn 32 times slower to reach 131,072.
    "llama-3.2-1b": LlamaConfig(
        vocab_size=128256, context_length=131072, emb_dim=2048, n_layers=16, n_heads=32,
        n_kv_groups=8, hidden_dim=8192, rope_base=500_000.0, tie_embeddings=True,
        rope_scaling=RopeScaling(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                 original_context_length=8192),
    ),  # 1,235,814,400 parameters
    # Small shapes for a CPU, with GPT-2's vocabulary, to read and write GPT-2's tokens.
    "llama-nano": LlamaConfig(
        vocab_size=50257, context_length=64, emb_dim=64, n_layers=2, n_heads=4,
        n_kv_groups=2, hidden_dim=172, tie_embeddings=True,
    ),
    "llama-micro": LlamaConfig(
        vocab_size=50257, context_length=128, emb_dim=128, n_layers=4, n_heads=4,
        n_kv_groups=2, hidden_dim=344, tie_embeddings=True,
    ),
}  # fmt: skip


class RMSNorm(nn.Module):
    """`LayerNorm` without mean and shift: x / rms(x) · scale (Zhang & Sennrich 2019).

    rms(x) = √(mean(x²) + ε) over each token's vector. Computed in float32 whatever the
    input's dtype (a bf16 sum of squares loses the small components), as Hugging Face
    does (appendix B).
    """

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.scale * normed.to(x.dtype)


# From torch 2.5, scaled_dot_product_attention shares key/value heads (enable_gqa).
_SDPA_GQA = torch.torch_version.TorchVersion(torch.__version__) >= (2, 5)


class GroupedQueryAttention(nn.Module):
    """Causal attention: `n_kv_groups` key/value heads, `n_heads` queries (appendix B).

    n_kv_groups = n_heads is multi-head attention (chapter 4), 1 multi-query attention.
    RoPE turns queries and keys, not values. With a `KVCache`, `x` holds the tokens
    after the cached ones. ``attention="manual"``: explicit matmuls (chapter 9 counts
    them); ``"sdpa"``: PyTorch's fused kernel.
    """

    def __init__(
        self, emb_dim: int, n_heads: int, n_kv_groups: int, attention: str = "sdpa"
    ):
        super().__init__()
        self.n_heads, self.n_kv_groups = n_heads, n_kv_groups
        self.head_dim = hd = emb_dim // n_heads
        self.attention = one_of("attention", attention, ("sdpa", "manual"))
        self.W_query = nn.Linear(emb_dim, n_heads * hd, bias=False)
        self.W_key = nn.Linear(emb_dim, n_kv_groups * hd, bias=False)  # n_kv_groups
        self.W_value = nn.Linear(emb_dim, n_kv_groups * hd, bias=False)  # heads only
        self.out_proj = nn.Linear(n_heads * hd, emb_dim, bias=False)
        self.rope = apply_rope  # the rotation; Exercise B.5 plugs in the reader's own

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        b, num_tokens, _ = x.shape  # (B, T, d)
        q = self.W_query(x).view(b, num_tokens, self.n_heads, self.head_dim)
        k = self.W_key(x).view(b, num_tokens, self.n_kv_groups, self.head_dim)
        v = self.W_value(x).view(b, num_tokens, self.n_kv_groups, self.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # heads first
        q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
        if cache is not None:  # cached rotated: a token's position never changes
            k, v = cache.update(layer, k, v)  # (B, nkv, T_cached + T, hd)
        context = self.attend(q, k, v)  # (B, nh, T, hd)
        context = context.transpose(1, 2).reshape(b, num_tokens, -1)  # (B, T, nh·hd)
        return self.out_proj(context)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(mask(Q Kᵀ) / √hd) V; query head j reads key/value head j // group."""
        num_queries, num_keys = q.shape[-2], k.shape[-2]
        group = self.n_heads // self.n_kv_groups
        if self.attention == "sdpa":
            # is_causal aligns the mask top-left; new tokens after cached ones are the
            # *last* rows, so they get an explicit mask; a single new token sees all.
            causal = num_queries == num_keys and num_queries > 1
            mask = None
            if not causal and num_queries > 1:
                mask = visible_keys(num_queries, num_keys, q.device)
            if _SDPA_GQA:
                return F.scaled_dot_product_attention(
                    q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=group > 1
                )
            k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=causal
            )
        # Each key/value head serves `group` query heads in a row: copy it that often.
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = q @ k.transpose(2, 3)  # (B, nh, T, S)
        future = causal_mask(num_queries, q.device, num_keys=num_keys)
        scores = scores.masked_fill(future, float("-inf"))
        weights = torch.softmax(scores / math.sqrt(self.head_dim), dim=-1)
        return weights @ v  # (B, nh, T, hd)


class SwiGLU(nn.Module):
    """The gated feed-forward W_down(silu(W_gate x) ⊙ W_up x) (Shazeer 2020; app. B)."""

    def __init__(self, emb_dim: int, hidden_dim: int):
        super().__init__()
        self.W_gate = nn.Linear(emb_dim, hidden_dim, bias=False)
        self.W_up = nn.Linear(emb_dim, hidden_dim, bias=False)
        self.W_down = nn.Linear(hidden_dim, emb_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, d) -> (B, T, hidden) -> (B, T, d)
        return self.W_down(F.silu(self.W_gate(x)) * self.W_up(x))


class LlamaBlock(nn.Module):
    """Pre-norm, as GPT's: x + attention(norm(x)), then x + ff(norm(x)) (appendix B)."""

    def __init__(self, cfg: LlamaConfig, attention: str = "sdpa"):
        super().__init__()
        self.norm1 = RMSNorm(cfg.emb_dim, cfg.norm_eps)
        self.att = GroupedQueryAttention(
            cfg.emb_dim, cfg.n_heads, cfg.n_kv_groups, attention
        )
        self.norm2 = RMSNorm(cfg.emb_dim, cfg.norm_eps)
        self.ff = SwiGLU(cfg.emb_dim, cfg.hidden_dim)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        x = x + self.att(self.norm1(x), cos, sin, cache, layer)  # (B, T, d)
        return x + self.ff(self.norm2(x))


class Llama(nn.Module):
    """A Llama-style language model (appendix B).

    >>> model = Llama("llama-nano")          # a preset name, a LlamaConfig, or a dict
    >>> logits = model(torch.tensor([[15496, 11, 995]]))   # (batch, tokens, vocab)

    ``attention`` as in `GroupedQueryAttention`. RoPE's cos and sin are non-persistent
    buffers, computed from the config: not in ``state_dict``, nor in HF's checkpoints.
    """

    def __init__(
        self, config: LlamaConfig | Mapping[str, Any] | str, attention: str = "sdpa"
    ):
        super().__init__()
        cfg = LlamaConfig.coerce(config)
        self.config, self.attention = cfg, attention
        # No pos_emb: positions enter as RoPE's rotations.
        try:
            self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
            self.trf_blocks = nn.ModuleList(
                LlamaBlock(cfg, attention) for _ in range(cfg.n_layers)
            )
            self.final_norm = RMSNorm(cfg.emb_dim, cfg.norm_eps)
            self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        except (RuntimeError, MemoryError) as err:  # too big: say how big
            raise_if_too_big(self, err)
        if cfg.tie_embeddings:
            self.out_head.weight = self.tok_emb.weight
        cos, sin = rope_angles(
            cfg.head_dim, cfg.context_length, cfg.rope_base, cfg.rope_scaling
        )
        self.register_buffer("cos", cos, persistent=False)  # (context_length, hd)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        """Parameters, each counted once (a tied head shares the token embedding's)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, idx: torch.Tensor, cache: KVCache | None = None, last_only: bool = False
    ) -> torch.Tensor:
        """Logits (batch, tokens, vocab) for token ids (batch, tokens) (appendix B).

        With a `cache`, `idx` holds the tokens after the cached ones: their positions
        start at ``len(cache)``, their keys and values join the cache, as in `GPT`. Only
        shapes are checked (ids are checked where they enter), so it runs on meta.
        ``last_only=True``, as in `GPT`: the head on the last position only.
        """
        if idx.dim() != 2 or idx.numel() == 0:  # (0, T) or (B, 0): nothing to predict
            empty = "give at least one sequence of at least one token"
            fix = empty if idx.dim() == 2 else "use idx.unsqueeze(0) for one sequence"
            raise ValueError(
                f"idx must have shape (batch, tokens), got {tuple(idx.shape)}; {fix}."
            )
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(
                f"idx must hold integer token ids (torch.long), got {idx.dtype}."
            )
        num_tokens, context_length = idx.shape[1], self.config.context_length
        if num_tokens > context_length:
            raise ValueError(
                f"idx has {num_tokens} tokens, more than the model's context_length, "
                f"{context_length}. Crop it to the last context_length tokens "
                "(generate() does this for you)."
            )
        start = 0
        if cache is not None:  # the positions go on from the cached tokens
            cache.check_room(self.config.n_layers, num_tokens, context_length)
            start = len(cache)
        end = start + num_tokens
        cos, sin = self.cos[start:end], self.sin[start:end]  # (T, hd): these positions
        try:  # a CPU's lookup checks every id: its error, restated, costs no GPU wait
            x = self.tok_emb(idx)  # (B, T, d)
        except IndexError as err:  # (on a GPU, a bad id is a device-side assert)
            raise ValueError(
                "idx holds a token id outside [0, vocab_size="
                f"{self.config.vocab_size}): encode text with the model's tokenizer, "
                "or raise vocab_size."
            ) from err
        for layer, block in enumerate(self.trf_blocks):
            x = block(x, cos, sin, cache, layer)
        if last_only:
            x = x[:, -1:, :]  # (B, 1, d)
        return self.out_head(self.final_norm(x))  # (B, T, vocab) or (B, 1, vocab)

    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int = 20,
        temperature: float = 0.0,
        top_k: int | None = None,
        eos_id: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Token ids (tokens,) or (batch, tokens), then up to `max_new_tokens` more.

        Chapter 8's `gptcourse.generate.generate` does the work, with a `KVCache` when
        ``use_cache=True``, as for `GPT` (appendix B).
        """
        options = dict(temperature=temperature, top_k=top_k, eos_id=eos_id)
        options.update(generator=generator, use_cache=use_cache)
        return generate(self, idx, max_new_tokens, **options)

    @classmethod
    def from_hf_checkpoint(cls, path: str | Path, attention: str = "sdpa") -> Llama:
        """`from_hf_checkpoint`, as a class method like `GPT.from_hf_checkpoint`."""
        return from_hf_checkpoint(path, attention)


# The Llama's FLOP and parameter counts (gptcourse.llama_flops) plug into chapter 9's
# count_flops and num_parameters here, so that the core never imports this appendix.
register_family(
    ModelFamily(
        config_class=LlamaConfig,
        model_class=Llama,
        presets=PRESETS,
        mapping_key="n_kv_groups",  # a dict with it describes a Llama; any other a GPT
        flop_count=llama_flop_count,
        parameter_counts=llama_parameter_counts,
    )
)


def kv_cache_bytes(cache: KVCache) -> int:
    """Bytes the keys and values in `cache` occupy, all layers (appendix B)."""
    return sum(t.nbytes for t in (*cache.keys, *cache.values) if t is not None)


# The names kv_cache_bytes_per_token takes for a dtype, besides a torch.dtype.
DTYPE_NAMES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
    "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32,
}  # fmt: skip


def kv_cache_bytes_per_token(
    config: LlamaConfig | GPTConfig | Mapping[str, Any] | str,
    dtype: torch.dtype | str = torch.bfloat16,
) -> int:
    """KV-cache bytes per token: 2 (K, V) · n_layers · kv heads · head_dim · bytes.

    A `GPTConfig` has n_heads key/value heads: multi-head attention (appendix B).
    `dtype` is a torch.dtype or one of `DTYPE_NAMES` ("bf16", "float32", ...).
    """
    if isinstance(dtype, str) and dtype in DTYPE_NAMES:
        dtype = DTYPE_NAMES[dtype]
    if not isinstance(dtype, torch.dtype):
        raise TypeError(
            f"dtype must be a torch.dtype (e.g. torch.bfloat16) or one of "
            f"{', '.join(map(repr, DTYPE_NAMES))}; got {dtype!r}."
        )
    cfg = coerce_config(config)
    kv_heads = cfg.n_kv_groups if isinstance(cfg, LlamaConfig) else cfg.n_heads
    return 2 * cfg.n_layers * kv_heads * cfg.head_dim * dtype.itemsize


def from_hf_checkpoint(path: str | Path, attention: str = "sdpa") -> Llama:
    """A `Llama` with a Hugging Face Llama checkpoint's weights, eval mode (appendix B).

    `path` is a directory with ``config.json`` and ``model.safetensors`` (or shards
    listed in ``model.safetensors.index.json``), read with `safetensors` only. Settings
    it cannot run, and missing, extra or misshapen tensors, raise `CheckpointError`.
    Weights load in float32; ``.to(torch.bfloat16)`` halves the memory.
    """
    hf_config = llama_weights.read_hf_config(path)
    try:
        config = LlamaConfig(**llama_weights.config_from_hf(hf_config))
    except CheckpointError as err:
        raise CheckpointError(f"{Path(path) / 'config.json'}: {err}") from None
    model = Llama(config, attention=attention)
    tensors, tied = read_tensors(path), config.tie_embeddings
    state, source = llama_weights.hf_to_ours(tensors, config.n_layers, tied)
    wrong = shape_mismatches(state, source, model.state_dict())
    if wrong:
        wrong = "; ".join(wrong)
        message = f"Tensors whose shape does not fit config.json's sizes: {wrong}."
        raise CheckpointError(message)
    model.load_state_dict(state)
    return model.eval()
