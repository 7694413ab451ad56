"""The GPT-2 model: layer norm, GELU, feed-forward, the transformer block, and `GPT`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attention import ATTENTION_CLASSES, KVCache, LayerKVCache
from .config import GPTConfig


class LayerNorm(nn.Module):
    """Normalise each token's vector to mean 0 and variance 1, then scale and shift.

    Chapter 5 writes this out with `mean` and `var`; here we call the fused kernel that
    computes the same thing (a test checks they agree), because it is faster.
    """

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class GELU(nn.Module):
    """GELU with the tanh approximation GPT-2 was trained with.

    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), computed by PyTorch's fused kernel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    """Expand each token to 4× the width, apply GELU, project back."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg.emb_dim, 4 * cfg.emb_dim),
            GELU(),
            nn.Linear(4 * cfg.emb_dim, cfg.emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then x + feed_forward(norm(x))."""

    def __init__(self, cfg: GPTConfig, attention: str = "sdpa"):
        super().__init__()
        if attention not in ATTENTION_CLASSES:
            raise ValueError(f"Unknown attention {attention!r}; choose one of {sorted(ATTENTION_CLASSES)}.")
        self.att = ATTENTION_CLASSES[attention](
            d_in=cfg.emb_dim,
            d_out=cfg.emb_dim,
            context_length=cfg.context_length,
            dropout=cfg.drop_rate,
            num_heads=cfg.n_heads,
            qkv_bias=cfg.qkv_bias,
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg.emb_dim)
        self.norm2 = LayerNorm(cfg.emb_dim)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(self, x: torch.Tensor, kv_cache: LayerKVCache | None = None) -> torch.Tensor:
        if kv_cache is None:
            x = x + self.drop_shortcut(self.att(self.norm1(x)))  # (B, T, d)
        else:
            x = x + self.drop_shortcut(self.att(self.norm1(x), kv_cache=kv_cache))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class GPT(nn.Module):
    """A GPT-2-style language model.

    >>> model = GPT("gpt-nano")               # a preset name, a GPTConfig, or a dict
    >>> logits = model(torch.tensor([[15496, 11, 995]]))   # (batch, tokens, vocab)

    ``attention="sdpa"`` (the default) uses PyTorch's fused attention kernel;
    ``attention="manual"`` computes the attention matrix explicitly, so that every FLOP
    is a visible matmul (chapter 9 counts them).
    """

    def __init__(self, config: GPTConfig | Mapping[str, Any] | str, attention: str = "sdpa"):
        super().__init__()
        cfg = GPTConfig.coerce(config)
        self.config = cfg
        self.attention = attention
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg, attention) for _ in range(cfg.n_layers)])
        self.final_norm = LayerNorm(cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        # Weight tying (as in GPT-2): the output head reuses the token embedding matrix,
        # saving vocab_size × emb_dim parameters (38.6M of GPT-2 small's 124M).
        self.out_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2 scales the init of the projections that write into the residual stream
        # by 1/√(2·n_layers), so the stream's variance does not grow with depth.
        for name, param in self.named_parameters():
            if name.endswith(("out_proj.weight", "layers.2.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @classmethod
    def from_pretrained(cls, name: str = "gpt2", cache_dir: str | None = None, local_files_only: bool = False, attention: str = "sdpa") -> GPT:
        """OpenAI's GPT-2 weights (`name`: "gpt2", "gpt2-medium", "gpt2-large" or "gpt2-xl").

        Downloads ``model.safetensors`` and ``config.json`` from the Hugging Face hub once
        (into its cache; ``local_files_only=True`` never touches the network) and loads them
        with `gptcourse.weights.from_hf_checkpoint` (chapter 8). Offline, the error says what
        to download and where.
        """
        from .weights import from_pretrained  # lazy: weights.py imports this module

        return from_pretrained(name, cache_dir=cache_dir, local_files_only=local_files_only, attention=attention)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, exclude_position_embeddings: bool = False) -> int:
        """Parameters, each counted once (the tied head shares the token embedding)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        return n - self.pos_emb.weight.numel() if exclude_position_embeddings else n

    def check_input(self, idx: torch.Tensor) -> None:
        """Raise a clear error for ids a GPT cannot read (instead of an opaque indexing error)."""
        if not isinstance(idx, torch.Tensor):
            raise TypeError(f"Expected a tensor of token ids, got {type(idx).__name__}.")
        if idx.dim() != 2:
            raise ValueError(f"Expected token ids of shape (batch, tokens), got shape {tuple(idx.shape)}; use idx.unsqueeze(0) for one sequence.")
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"Token ids must be integers (torch.long), got {idx.dtype}.")
        if idx.shape[1] > self.config.context_length:
            raise ValueError(
                f"The input has {idx.shape[1]} tokens but the model's context_length is {self.config.context_length}. "
                "Crop it to the last context_length tokens (generate() does this for you)."
            )
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.config.vocab_size):
            bad = idx[(idx < 0) | (idx >= self.config.vocab_size)][0].item()
            raise ValueError(f"Token id {bad} is outside the vocabulary [0, {self.config.vocab_size - 1}].")

    def forward(self, idx: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Logits of shape (batch, tokens, vocab_size) for token ids of shape (batch, tokens).

        With a `KVCache` (chapter 8), `idx` holds the tokens that follow those already cached:
        their positions continue from there, and their keys and values join the cache.
        """
        if not torch.compiler.is_compiling():  # the check reads values, which graph capture cannot
            self.check_input(idx)
        _, num_tokens = idx.shape
        num_cached = 0 if kv_cache is None else len(kv_cache)
        if num_cached + num_tokens > self.config.context_length:
            raise ValueError(
                f"The cache holds {num_cached} tokens; {num_tokens} more would pass the context length "
                f"{self.config.context_length}. Clear the cache and start again from the last tokens."
            )
        positions = torch.arange(num_cached, num_cached + num_tokens, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(positions)  # (B, T, d)
        x = self.drop_emb(x)
        if kv_cache is None:
            x = self.trf_blocks(x)
        else:
            for block, layer_cache in zip(self.trf_blocks, kv_cache.layers, strict=True):
                x = block(x, kv_cache=layer_cache)
        x = self.final_norm(x)
        return self.out_head(x)  # (B, T, vocab)

    @torch.no_grad()
    def generate(
        self,
        prompt: str | torch.Tensor,
        max_new_tokens: int = 20,
        temperature: float = 0.0,
        top_k: int | None = None,
        eos_id: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> str | torch.Tensor:
        """Continue `prompt` by `max_new_tokens` tokens.

        A string prompt returns a string (prompt and continuation); a tensor of ids of
        shape (tokens,) or (batch, tokens) returns ids of the same rank, prompt included.

        temperature 0 picks the most likely token every step (greedy, deterministic);
        above 0, tokens are sampled from softmax(logits / temperature), restricted to the
        `top_k` most likely when given. A prompt longer than the context is cropped to its
        last `context_length` tokens (with a warning), and each step sees at most the last
        `context_length` tokens. Generation stops early when every sequence produced `eos_id`.

        ``use_cache=True`` keeps every layer's keys and values in a `KVCache`, so each step
        runs the model on the one new token instead of the whole sequence (chapter 8). It
        picks the same tokens as ``use_cache=False`` (tests/test_kv_cache.py checks greedy and
        seeded sampling, both attention modules, batches, and past the context): the logits
        differ only in their last bits, from adding the same numbers in another order. Past the context
        length every token's position shifts by one each step, which makes cached keys stale,
        so from there on each step recomputes the last `context_length` tokens, as without a cache.
        """
        from .tokenizer import encode, get_tokenizer

        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}.")
        if temperature < 0 or not math.isfinite(temperature):
            raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}.")
        if top_k is not None and (not isinstance(top_k, int) or not 1 <= top_k <= self.config.vocab_size):
            raise ValueError(f"top_k must be an int in [1, {self.config.vocab_size}] or None, got {top_k!r}.")

        device = next(self.parameters()).device
        tokenizer = None
        if isinstance(prompt, str):
            tokenizer = get_tokenizer()
            if tokenizer.n_vocab > self.config.vocab_size:
                raise ValueError(f"This model's vocabulary ({self.config.vocab_size}) is smaller than GPT-2's; pass token ids, not a string.")
            idx = torch.tensor([encode(prompt, tokenizer)], dtype=torch.long, device=device)
        elif isinstance(prompt, torch.Tensor):
            idx = prompt.to(device)
        else:
            raise TypeError(f"prompt must be a str or a tensor of token ids, got {type(prompt).__name__}.")
        squeeze = idx.dim() == 1
        if squeeze:
            idx = idx.unsqueeze(0)
        if idx.shape[1] == 0:
            raise ValueError("The prompt is empty; give at least one token (e.g. '<|endoftext|>', id 50256).")
        context = self.config.context_length
        if idx.shape[1] > context:
            warnings.warn(f"The prompt has {idx.shape[1]} tokens; only its last {context} (the context length) are used.", stacklevel=2)
            idx = idx[:, -context:]
        self.check_input(idx)

        was_training = self.training
        self.eval()
        try:
            finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=device)
            cache = KVCache(self.config.n_layers) if use_cache else None
            for _ in range(max_new_tokens):
                logits = self._next_token_logits(idx, cache)  # (B, vocab)
                next_id = self._pick_next(logits, temperature, top_k, generator)  # (B, 1)
                idx = torch.cat([idx, next_id], dim=1)
                if eos_id is not None:
                    finished |= next_id.squeeze(1) == eos_id
                    if finished.all():
                        break
        finally:
            self.train(was_training)

        if tokenizer is not None:
            return tokenizer.decode(idx[0].tolist())
        return idx[0] if squeeze else idx

    def _next_token_logits(self, idx: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        """The logits for the token after `idx` (B, T): the last position predicts it."""
        context = self.config.context_length
        if cache is None:
            return self(idx[:, -context:])[:, -1, :]
        if idx.shape[1] > context:
            # The window slides: every token moves to a new position, so the cached keys and
            # values (computed at the old positions) are stale. Recompute the whole window.
            cache.clear()
            return self(idx[:, -context:], kv_cache=cache)[:, -1, :]
        # Up to the context, the cache holds idx[:, :len(cache)]: run only the tokens after it
        # (the whole prompt on the first step, then one token per step).
        return self(idx[:, len(cache) :], kv_cache=cache)[:, -1, :]

    @staticmethod
    def _pick_next(logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None) -> torch.Tensor:
        if temperature == 0:
            return logits.argmax(dim=-1, keepdim=True)
        logits = logits.float() / temperature
        if top_k is not None:
            kth_best = torch.topk(logits, top_k).values[:, -1:]
            logits = logits.masked_fill(logits < kth_best, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=generator)
