"""Our GPT beside the models a reader would pick instead, timed fairly (chapter 10).

The peers, built at our config: Hugging Face ``transformers``' GPT-2 (`hf_gpt2`) and
nanoGPT's ``model.py`` (`nanogpt_gpt`), imported from a checkout of its repository kept
outside this one (its code is never copied in). Each is adapted to take token ids and
return logits, so that every model trains with the same step (`gptcourse.timing.
make_train_step`: the same loss, `gptcourse.train.cross_entropy_loss`, the same AdamW).

`compare` is the one comparison loop every benchmark uses. On a busy or thermally limited
machine the model timed right after another reads a few percent slower, which would swamp
a gap of that size; so the models run in rounds, in an order that rotates every round
(each model takes each place in turn), and the speed ratio is taken **per round**, between
measurements made moments apart, then the median over rounds reported.

    python benchmarks/mfu.py --nanogpt ../nanoGPT     # the command-line front end
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import statistics
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from .checks import non_negative_int, one_of, positive_int
from .config import GPTConfig
from .timing import make_train_step, time_calls
from .weights import config_to_hf


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


@dataclass(frozen=True)
class Comparison:
    """Step times of models trained side by side by `compare` (chapter 10).

    ``step_times[name][r]`` holds the times of the steps of round r, in seconds;
    ``orders[r]`` the order the models ran in that round. The first model is the
    reference the ratios are taken against.
    """

    tokens_per_step: int
    step_times: Mapping[str, tuple[tuple[float, ...], ...]]
    orders: tuple[tuple[str, ...], ...]
    peak_memory: Mapping[str, int | None]  # torch.cuda.max_memory_allocated() of each model (GPU only)

    @property
    def reference(self) -> str:
        return next(iter(self.step_times))

    def all_step_times(self, name: str) -> list[float]:
        """Every timed step of one model, round after round."""
        return [t for times in self.step_times[name] for t in times]

    def tokens_per_second(self, name: str) -> float:
        """Tokens/s of one model at its median step time over all rounds."""
        return self.tokens_per_step / statistics.median(self.all_step_times(name))

    def ratios(self, name: str) -> list[float]:
        """The reference's speed ÷ `name`'s speed, one per round (> 1: the reference is faster)."""
        return [
            statistics.median(theirs) / statistics.median(ours)
            for ours, theirs in zip(self.step_times[self.reference], self.step_times[name], strict=True)
        ]

    def ratio(self, name: str) -> float:
        """The median of the per-round `ratios`."""
        return statistics.median(self.ratios(name))


def compare(
    models: Mapping[str, nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    rounds: int = 6,
    steps_per_round: int = 3,
    warmup: int = 3,
    dtype: torch.dtype = torch.float32,
) -> Comparison:
    """Time a training step of each model, in rounds whose order rotates; chapter 10.

    Every model gets the same step (`make_train_step`: forward, the same loss, backward,
    AdamW with lr=0, under autocast in `dtype`) on the same `inputs` and `targets`, and
    `warmup` untimed steps first. Then, for each of `rounds` rounds, each model runs
    `steps_per_round` timed steps; round r starts with model r mod n and keeps the same
    cyclic order (A B C, B C A, C A B, ...), so that over a multiple of n rounds every model
    takes every place equally often. The first model of `models` is the reference of
    `Comparison.ratios`.
    """
    if not models:
        raise ValueError("models: give at least one model to time, as {name: model}.")
    rounds, steps_per_round = positive_int("rounds", rounds), positive_int("steps_per_round", steps_per_round)
    warmup = non_negative_int("warmup", warmup)
    device = inputs.device
    names = list(models)
    steps = {name: make_train_step(model.train(), inputs, targets, dtype) for name, model in models.items()}
    times: dict[str, list[tuple[float, ...]]] = {name: [] for name in names}
    peak_memory: dict[str, int | None] = dict.fromkeys(names)
    orders = []
    try:
        for name in names:
            time_calls(steps[name], device, repeats=0, warmup=warmup)
        for r in range(rounds):
            order = tuple(names[r % len(names) :] + names[: r % len(names)])
            orders.append(order)
            for name in order:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                times[name].append(tuple(time_calls(steps[name], device, repeats=steps_per_round, warmup=0)))
                if device.type == "cuda":
                    peak_memory[name] = max(peak_memory[name] or 0, torch.cuda.max_memory_allocated(device))
    finally:
        for model in models.values():
            model.zero_grad(set_to_none=True)
    return Comparison(inputs.numel(), {n: tuple(t) for n, t in times.items()}, tuple(orders), peak_memory)
