"""Appendix B's check of our `Llama` against Hugging Face `transformers`' Llama.

Offline, the notebook checks against a stand-in: an untrained Llama that `transformers`
saves. Made so that each common porting bug changes its logits: random norm scales (a
swapped norm shows), RoPE's base 500,000 and Llama 3's RoPE scaling (an ignored
``rope_theta`` or ``rope_scaling`` shows), ε = 1e-6 (an ignored ``rms_norm_eps``), an
untied head. `transformers` is imported only here, when called: no dependency of ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from .llama import Llama, LlamaConfig
from .llama_rope import RopeScaling, apply_rope
from .llama_weights import config_to_hf

# llama-micro's shape, with a setting that differs from the defaults wherever a loader
# could drop one: rope_theta (default 10,000), rms_norm_eps (ours 1e-5), the head (tied
# in llama-micro), RoPE scaling (none). Llama 3's scaling, shrunk to this context:
# trained on 32 tokens, stretched 4 times to 128.
STAND_IN = LlamaConfig.from_preset(
    "llama-micro",
    rope_base=500_000.0,
    norm_eps=1e-6,
    tie_embeddings=False,
    rope_scaling=RopeScaling(
        factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0, original_context_length=32
    ),
)
# The weights' standard deviation: transformers' 0.02 leaves attention nearly uniform
# in an untrained model, and then RoPE hardly touches the logits; 0.1 does not.
STAND_IN_STD = 0.1
# A prompt of a few dozen tokens: RoPE's bugs show more as positions grow.
PROMPT = (
    "The capital of France is Paris. It lies on the Seine, and more than two million "
    "people live there; its museums hold"
)
# Both compute in float32; a checkpoint stored in bf16 is read as the same numbers.
ATOL, RTOL = 1e-3, 1e-4


def save_stand_in(
    directory: str | Path, config: LlamaConfig = STAND_IN, seed: int = 0
) -> Path:
    """An untrained `transformers` Llama of `config`'s shape, saved (appendix B).

    Its norm scales are drawn from U(0.5, 1.5), not all 1, and its weights have standard
    deviation `STAND_IN_STD`. The global random state is left as it was.
    """
    import transformers

    hf_config = transformers.LlamaConfig(
        **config_to_hf(config), initializer_range=STAND_IN_STD
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.LlamaForCausalLM(hf_config)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("norm.weight"):
                    param.uniform_(0.5, 1.5)
    model.save_pretrained(directory)
    return Path(directory)


def check_logits(
    ours: torch.Tensor, theirs: torch.Tensor, what: str = "our Llama's logits"
) -> float:
    """Raise `AssertionError` unless `ours` equals `theirs` within ATOL, RTOL (app. B).

    Returns the largest absolute difference.
    """
    torch.testing.assert_close(
        ours, theirs, atol=ATOL, rtol=RTOL,
        msg=lambda detail: f"{what} differ from transformers'.\n{detail}",
    )  # fmt: skip
    return (ours - theirs).abs().max().item()


@contextmanager
def rope_replaced(
    model: Llama, rope: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
) -> Iterator[Llama]:
    """`model` with `rope` in place of `apply_rope` in every layer, then restored.

    Exercise B.5 plugs in the reader's RoPE this way (appendix B).
    """
    layers = [block.att for block in model.trf_blocks]
    for att in layers:
        att.rope = rope
    try:
        yield model
    finally:
        for att in layers:
            att.rope = apply_rope
