"""GPT-2: LayerNorm, GELU, FeedForward, the block (chapter 5) and `GPT` (chapter 6)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attention import ATTENTION_CLASSES
from .checks import one_of
from .config import GPTConfig
from .generate import check_token_ids, generate, text_to_token_ids, token_ids_to_text
from .kv_cache import KVCache

Config = GPTConfig | Mapping[str, Any] | str  # a GPTConfig, a dict or a preset name


class LayerNorm(nn.Module):
    """Each token's vector to mean 0, variance 1, then scaled and shifted (chapter 5).

    Chapter 5 writes it with `mean` and `var`; PyTorch's fused kernel computes the same
    (a test checks it), faster.
    """

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class GELU(nn.Module):
    """GELU with the tanh approximation GPT-2 was trained with (chapter 5).

    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), computed by a fused kernel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    """Expand each token to 4× the width, apply GELU, project back (chapter 5)."""

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
    """Pre-norm: x + attention(norm(x)), then x + feed_forward(norm(x)) (chapter 5).

    `cache` and `layer` are passed to the attention: chapter 8's KV cache.
    """

    def __init__(self, cfg: GPTConfig, attention: str = "sdpa"):
        super().__init__()
        self.att = ATTENTION_CLASSES[one_of("attention", attention, ATTENTION_CLASSES)](
            d_in=cfg.emb_dim,
            d_out=cfg.emb_dim,
            context_length=cfg.context_length,
            drop_rate=cfg.drop_rate,
            n_heads=cfg.n_heads,
            qkv_bias=cfg.qkv_bias,
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg.emb_dim)
        self.norm2 = LayerNorm(cfg.emb_dim)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x), cache, layer))  # (B, T, d)
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


def raise_if_too_big(model: nn.Module, err: Exception) -> None:
    """`err`, or if building `model` failed to allocate, how much memory it needs."""
    if not isinstance(err, MemoryError) and "alloc" not in str(err):  # CPU, CUDA, MPS
        raise err
    with torch.device("meta"):  # the same model, with no memory: count it
        n = type(model)(model.config, model.attention).num_parameters()
    raise MemoryError(
        f"{type(model).__name__}({model.config}) has {n:,} parameters: "
        f"{n * 4 / 1e9:,.1f} GB in float32, more than could be allocated. Use a "
        "smaller vocab_size, emb_dim or n_layers (GPT-2 small: 124M, 0.5 GB)."
    ) from err


class GPT(nn.Module):
    """A GPT-2-style language model (chapter 6).

    >>> model = GPT("gpt-nano")               # a preset name, a GPTConfig, or a dict
    >>> logits = model(torch.tensor([[15496, 11, 995]]))   # (batch, tokens, vocab)

    ``attention="sdpa"`` (the default) uses PyTorch's fused attention kernel;
    ``"manual"`` explicit matmuls, every FLOP visible (chapter 9 counts them).
    """

    def __init__(self, config: Config, attention: str = "sdpa"):
        super().__init__()
        cfg = GPTConfig.coerce(config)
        self.config = cfg
        self.attention = attention
        try:
            self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
            self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
            self.drop_emb = nn.Dropout(cfg.drop_rate)
            self.trf_blocks = nn.ModuleList(
                TransformerBlock(cfg, attention) for _ in range(cfg.n_layers)
            )
            self.final_norm = LayerNorm(cfg.emb_dim)
            self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        except (RuntimeError, MemoryError) as err:  # e.g. vocab_size=10**9: 3 TB
            raise_if_too_big(self, err)
        # Weight tying (as in GPT-2): the output head reuses the token embedding matrix,
        # saving vocab_size × emb_dim parameters (38.6M of GPT-2 small's 124M).
        self.out_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2 scales the init of the projections that write into the residual stream
        # by 1/√(2·n_layers), so the stream's variance does not grow with depth.
        for name, param in self.named_parameters():
            if name.endswith(("out_proj.weight", "layers.2.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, exclude_position_embeddings: bool = False) -> int:
        """Parameters, each counted once: the tied head is the embedding (chapter 6)."""
        n = sum(p.numel() for p in self.parameters())  # a shared tensor counts once
        return n - self.pos_emb.weight.numel() if exclude_position_embeddings else n

    def forward(
        self, idx: torch.Tensor, cache: KVCache | None = None, last_only: bool = False,
        head: bool = True,
    ) -> torch.Tensor:
        """Logits (batch, tokens, vocab_size) for token ids (batch, tokens) (chapter 6).

        Only shapes are checked: reading the ids' values would make a GPU wait at every
        step (they are checked where they enter: `generate`, the tokenizer, the data).
        With a `cache` (chapter 8), `idx` holds the tokens after the cached ones: their
        positions start at ``len(cache)`` and their keys and values join the cache.
        ``last_only=True`` (generation, ch. 8) runs the head on the last position only.
        ``head=False`` (appendix C) returns the final-normed states (batch, tokens, d).
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
        _, num_tokens = idx.shape
        context_length = self.config.context_length
        if num_tokens > context_length:
            raise ValueError(
                f"idx has {num_tokens} tokens but the model's context_length is "
                f"{context_length}. Crop it to the last context_length tokens "
                "(generate() does this for you)."
            )
        start = 0
        if cache is not None:  # chapter 8: the positions go on from the cached tokens
            cache.check_room(self.config.n_layers, num_tokens, context_length)
            start = len(cache)
        positions = torch.arange(start, start + num_tokens, device=idx.device)
        try:  # a CPU's lookup checks every id: its error, restated, costs no GPU wait
            x = self.tok_emb(idx) + self.pos_emb(positions)  # (B, T, d)
        except IndexError as err:  # (on a GPU, a bad id is a device-side assert)
            raise ValueError(
                "idx holds a token id outside [0, vocab_size="
                f"{self.config.vocab_size}): encode text with the model's tokenizer, "
                "or raise vocab_size."
            ) from err
        x = self.drop_emb(x)
        for layer, block in enumerate(self.trf_blocks):
            x = block(x, cache, layer)  # (B, T, d)
        if last_only:  # only the last position predicts the next token: skip the rest
            x = x[:, -1:, :]  # (B, 1, d)
        x = self.final_norm(x)
        return self.out_head(x) if head else x  # (B, T or 1, vocab), or (B, T, d)

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
        """`prompt` continued by up to `max_new_tokens` tokens (chapters 6 and 8).

        A string gives a string (prompt and continuation); ids of shape (tokens,) or
        (batch, tokens) give ids of the same rank. The other arguments are those of
        `gptcourse.generate.generate`, which does the work.
        """
        options = dict(temperature=temperature, top_k=top_k, eos_id=eos_id)
        options.update(generator=generator, use_cache=use_cache)
        vocab_size = self.config.vocab_size
        if not isinstance(prompt, str):
            ids = check_token_ids(prompt, vocab_size, "prompt")
            return generate(self, ids, max_new_tokens, **options)
        ids = text_to_token_ids(prompt)
        if ids.numel() and ids.max() >= vocab_size:
            raise ValueError(
                f"prompt has GPT-2 tokens outside this model's vocabulary "
                f"({vocab_size}); pass token ids."
            )
        ids = check_token_ids(ids, vocab_size, "prompt")
        return token_ids_to_text(generate(self, ids, max_new_tokens, **options))

    @classmethod
    def from_hf_checkpoint(
        cls, path: str | Path, config: Config | None = None, attention: str = "sdpa"
    ) -> GPT:
        """A `GPT` holding a Hugging Face GPT-2 checkpoint's weights, in eval mode.

        `path` is a directory with ``config.json`` and ``model.safetensors`` (as
        ``save_pretrained`` writes them), or a ``.safetensors`` file whose size is then
        `config`. A tensor missing, extra or misshapen is a `CheckpointError` (ch. 8).
        """
        from . import weights  # GPT-2's checkpoint layout: only read when one is loaded

        model = cls(weights.checkpoint_config(path, config), attention=attention)
        return weights.load_hf_weights(model, path).eval()

    @classmethod
    def from_pretrained(
        cls,
        name: str = "gpt2",
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        attention: str = "sdpa",
    ) -> GPT:
        """OpenAI's GPT-2: "gpt2", "gpt2-medium", "gpt2-large" or "gpt2-xl" (chapter 8).

        Downloads ``model.safetensors`` and ``config.json`` from the Hugging Face hub
        once (``local_files_only=True`` never goes online). Offline it fails within
        seconds, saying what to download and where.
        """
        from . import weights  # GPT-2's checkpoint layout: only read when one is loaded

        path = weights.download(name, cache_dir, local_files_only)
        return cls.from_hf_checkpoint(path, attention=attention)
