"""The models a reader would pick instead of ours, built at our config (chapter 10).

Hugging Face ``transformers``' GPT-2 (`hf_gpt2`) and nanoGPT's ``model.py`` (`nanogpt_gpt`),
imported from a checkout of its repository kept outside this one (its code is never copied
in). Each is adapted to take token ids and return logits, so that every model trains with
the same step (`gptcourse.timing.make_train_step`) in the one comparison loop,
`gptcourse.timing.compare`. ``benchmarks/mfu.py`` is what runs them:

    python benchmarks/mfu.py --nanogpt ../nanoGPT
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from gptcourse.checks import one_of
from gptcourse.config import GPTConfig
from gptcourse.weights import config_to_hf


class _HFLogits(nn.Module):
    """A Hugging Face causal LM that takes token ids and returns logits (B, T, vocab)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=idx, use_cache=False).logits  # training keeps no KV cache


def hf_gpt2(config: GPTConfig) -> nn.Module:
    """Hugging Face's ``GPT2LMHeadModel`` at our config, with fused SDPA attention (chapter 10).

    Its config comes from `gptcourse.weights.config_to_hf`, the one place our config meets
    Hugging Face's. The returned module takes token ids and returns logits.
    """
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as err:
        raise ImportError("The comparison with Hugging Face's GPT-2 needs transformers: pip install transformers") from err
    hf_config = GPT2Config(**config_to_hf(GPTConfig.coerce(config)))
    hf_config._attn_implementation = "sdpa"  # the documented switch; the constructor takes no such argument
    model = GPT2LMHeadModel(hf_config)
    if model.config._attn_implementation != "sdpa":  # a transformers version that ignored the switch
        raise RuntimeError(f"transformers built GPT-2 with {model.config._attn_implementation!r} attention, not 'sdpa'.")
    return _HFLogits(model)


def load_nanogpt(nanogpt_path: str | Path) -> ModuleType:
    """nanoGPT's ``model.py``, imported from a checkout of its repository (chapter 10).

    ``nanogpt_path`` is the checkout's directory (or its ``model.py``), outside this
    repository: ``git clone https://github.com/karpathy/nanoGPT``.
    """
    file = Path(nanogpt_path).expanduser().resolve()
    file = file / "model.py" if file.is_dir() else file
    if not file.is_file():
        raise FileNotFoundError(
            f"nanogpt_path: there is no nanoGPT model.py at {file}. Pass the directory of a nanoGPT checkout "
            "(git clone https://github.com/karpathy/nanoGPT)."
        )
    name = "_nanogpt_model_" + hashlib.sha1(str(file).encode()).hexdigest()[:12]  # never shadows our `model`
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    module = sys.modules[name]
    if not (hasattr(module, "GPT") and hasattr(module, "GPTConfig")):
        raise ImportError(f"nanogpt_path: {file} defines no GPT and GPTConfig; is it nanoGPT's model.py?")
    return module


class _NanoGPTLogits(nn.Module):
    """nanoGPT's GPT, taking token ids and returning the logits of every position.

    Its ``forward(idx)`` computes the head for the last position only (a shortcut for
    generation), and ``forward(idx, targets)`` computes its own loss besides the logits,
    which would add a second loss to the step. Two hooks hand its LM head the whole
    sequence instead, so that the step does exactly the work of the other models.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self._hidden: torch.Tensor | None = None
        model.transformer.ln_f.register_forward_hook(self._keep_hidden)
        model.lm_head.register_forward_pre_hook(self._every_position)

    def _keep_hidden(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self._hidden = output  # (B, T, d): the final layer norm's output

    def _every_position(self, module: nn.Module, args: tuple) -> tuple[torch.Tensor]:
        hidden, self._hidden = self._hidden, None
        return (hidden,)  # instead of x[:, [-1], :]

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model(idx)
        return logits  # (B, T, vocab)


def nanogpt_gpt(config: GPTConfig, nanogpt_path: str | Path, gelu: str = "tanh") -> nn.Module:
    """nanoGPT's ``GPT(GPTConfig(...))`` at our config, from a checkout at `nanogpt_path` (chapter 10).

    Same sizes (``block_size`` = context_length, ``n_embd`` = emb_dim), biases everywhere
    as in GPT-2 (``bias=True``), the same dropout. nanoGPT ships the exact (erf) GELU,
    which is not GPT-2's function; ``gelu="tanh"`` (the default) swaps in GPT-2's tanh
    approximation, which our GPT and Hugging Face's use, so that only the implementations
    differ; ``gelu="exact"`` keeps nanoGPT as shipped. Takes token ids, returns logits.
    """
    one_of("gelu", gelu, ("tanh", "exact"))
    cfg = GPTConfig.coerce(config)
    module = load_nanogpt(nanogpt_path)
    nano_config = module.GPTConfig(
        block_size=cfg.context_length,
        vocab_size=cfg.vocab_size,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_embd=cfg.emb_dim,
        dropout=cfg.drop_rate,
        bias=True,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
        model = module.GPT(nano_config)
    if gelu == "tanh":
        for block in model.transformer.h:
            block.mlp.gelu = nn.GELU(approximate="tanh")
    return _NanoGPTLogits(model)
