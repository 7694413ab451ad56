"""The GPT-2 model: layer norm, GELU, feed-forward, the transformer block (chapter 5), and `GPT` (chapter 6)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import weights
from .attention import ATTENTION_CLASSES
from .checks import one_of
from .config import GPTConfig
from .generate import check_token_ids, generate, text_to_token_ids, token_ids_to_text


class LayerNorm(nn.Module):
    """Normalise each token's vector to mean 0 and variance 1, then scale and shift (chapter 5).

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
    """GELU with the tanh approximation GPT-2 was trained with (chapter 5).

    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), computed by PyTorch's fused kernel.
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
    """Pre-norm block: x + attention(norm(x)), then x + feed_forward(norm(x)) (chapter 5)."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x)))  # (B, T, d)
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class GPT(nn.Module):
    """A GPT-2-style language model (chapter 6).

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
        self.trf_blocks = nn.ModuleList(TransformerBlock(cfg, attention) for _ in range(cfg.n_layers))
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

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, exclude_position_embeddings: bool = False) -> int:
        """Parameters, each counted once: the tied head shares the token embedding (chapter 6)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        return n - self.pos_emb.weight.numel() if exclude_position_embeddings else n

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, tokens, vocab_size) for token ids of shape (batch, tokens) (chapter 6).

        Only the shape and dtype are checked, never the values: reading them would stop a
        GPU to wait for the answer at every step. Ids are checked where they enter
        (`generate`, the tokenizer, `GPTDataset`).
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (batch, tokens), got {tuple(idx.shape)}; use idx.unsqueeze(0) for one sequence.")
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"idx must hold integer token ids (torch.long), got {idx.dtype}.")
        _, num_tokens = idx.shape
        if num_tokens > self.config.context_length:
            raise ValueError(
                f"idx has {num_tokens} tokens but the model's context_length is {self.config.context_length}. "
                "Crop it to the last context_length tokens (generate() does this for you)."
            )
        positions = torch.arange(num_tokens, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(positions)  # (B, T, d)
        x = self.drop_emb(x)
        for block in self.trf_blocks:
            x = block(x)  # (B, T, d)
        x = self.final_norm(x)
        return self.out_head(x)  # (B, T, vocab)

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
        """Continue `prompt` by up to `max_new_tokens` tokens with `gptcourse.generate.generate` (chapters 6 and 8).

        A string prompt returns a string (prompt and continuation); a tensor of ids of
        shape (tokens,) or (batch, tokens) returns ids of the same rank, prompt included.
        The other arguments are `gptcourse.generate.generate`'s.
        """
        options = dict(temperature=temperature, top_k=top_k, eos_id=eos_id, generator=generator, use_cache=use_cache)
        vocab_size = self.config.vocab_size
        if isinstance(prompt, str):
            ids = text_to_token_ids(prompt)
            if ids.numel() and ids.max() >= vocab_size:
                raise ValueError(f"prompt has GPT-2 tokens outside this model's vocabulary ({vocab_size}); pass token ids.")
            return token_ids_to_text(generate(self, check_token_ids(ids, vocab_size, "prompt"), max_new_tokens, **options))
        return generate(self, check_token_ids(prompt, vocab_size, "prompt"), max_new_tokens, **options)

    @classmethod
    def from_hf_checkpoint(
        cls, path: str | Path, config: GPTConfig | Mapping[str, Any] | str | None = None, attention: str = "sdpa"
    ) -> GPT:
        """A `GPT` holding the weights of a Hugging Face GPT-2 checkpoint, in eval mode (chapter 8).

        `path` is a directory with ``config.json`` and ``model.safetensors`` (what
        ``GPT2LMHeadModel.save_pretrained`` writes, or a hub download), or a ``.safetensors``
        file alone, whose size must then be given as `config` (a preset name, a `GPTConfig`
        or a dict). Keys with or without the ``transformer.`` prefix are accepted. A tensor
        that is missing, left over or of the wrong shape raises `CheckpointError` naming it.
        """
        model = cls(weights.checkpoint_config(path, config), attention=attention)
        return weights.load_hf_weights(model, path).eval()

    @classmethod
    def from_pretrained(
        cls, name: str = "gpt2", cache_dir: str | Path | None = None, local_files_only: bool = False, attention: str = "sdpa"
    ) -> GPT:
        """OpenAI's GPT-2 weights (`name`: "gpt2", "gpt2-medium", "gpt2-large" or "gpt2-xl") (chapter 8).

        Downloads ``model.safetensors`` and ``config.json`` from the Hugging Face hub once
        (into its cache; ``local_files_only=True`` never touches the network). Offline, it
        fails within seconds, and the error says what to download and where.
        """
        return cls.from_hf_checkpoint(weights.download(name, cache_dir, local_files_only), attention=attention)
