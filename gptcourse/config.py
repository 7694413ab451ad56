"""Model configuration: `GPTConfig`, GPT-2's four sizes, small CPU sizes (chapter 6)."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .checks import (
    config_from_mapping,
    finite_number,
    heads_divide,
    one_of,
    positive_int,
)

# The sizes a config cannot do without: a dict that leaves one out is a mistake,
# not a request for GPT-2 small.
REQUIRED = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers")


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT-2-style model; the defaults are GPT-2 small, 124M (chapter 6).

    Every field is checked when the config is made, so a bad size fails here rather
    than deep inside a matrix multiplication.
    """

    vocab_size: int = 50257  # GPT-2's BPE: 50,000 merges + 256 bytes + <|endoftext|>
    context_length: int = 1024  # the longest sequence the position embeddings cover
    emb_dim: int = 768  # the width d of every token's vector
    n_heads: int = 12  # attention heads; each sees emb_dim // n_heads dimensions
    n_layers: int = 12  # transformer blocks
    drop_rate: float = 0.0  # 0.1 is GPT-1's (GPT-2's is not on record); 0 to measure
    qkv_bias: bool = True  # GPT-2 has biases on the query/key/value projections

    def __post_init__(self) -> None:
        for name in REQUIRED:
            positive_int(name, getattr(self, name))
        heads_divide(self.emb_dim, self.n_heads)
        if finite_number("drop_rate", self.drop_rate, minimum=0.0) >= 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}.")
        if not isinstance(self.qkv_bias, bool):
            raise TypeError(f"qkv_bias must be True or False, got {self.qkv_bias!r}.")

    @property
    def head_dim(self) -> int:
        """Dimensions per attention head (chapter 4)."""
        return self.emb_dim // self.n_heads

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GPTConfig:
        """A preset, e.g. ``from_preset("gpt2-small", drop_rate=0.1)`` (chapter 6)."""
        check_overrides(cls, overrides)
        return dataclasses.replace(PRESETS[preset_name(name)], **overrides)

    @classmethod
    def coerce(cls, config: GPTConfig | Mapping[str, Any] | str) -> GPTConfig:
        """A `GPTConfig` from a `GPTConfig`, a preset name or a dict (chapter 6).

        A dict must give the five sizes (`REQUIRED`); ``drop_rate`` and ``qkv_bias``
        may be left out.
        """
        if isinstance(config, GPTConfig):
            return config
        if isinstance(config, str):
            return cls.from_preset(config)
        if isinstance(config, Mapping):
            return config_from_mapping(
                cls,
                config,
                REQUIRED,
                hint="For GPT-2 small, use GPTConfig.from_preset('gpt2-small').",
            )
        raise TypeError(
            "config must be a GPTConfig, a preset name or a dict, "
            f"got {type(config).__name__}."
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict, the original course's style (chapter 6)."""
        return dataclasses.asdict(self)


PRESETS: dict[str, GPTConfig] = {
    # GPT-2's released sizes (Radford et al., 2019); input and output embeddings tied.
    "gpt2-small": GPTConfig(emb_dim=768, n_heads=12, n_layers=12),  # 124M
    "gpt2-medium": GPTConfig(emb_dim=1024, n_heads=16, n_layers=24),  # 355M
    "gpt2-large": GPTConfig(emb_dim=1280, n_heads=20, n_layers=36),  # 774M
    "gpt2-xl": GPTConfig(emb_dim=1600, n_heads=25, n_layers=48),  # 1558M
    # Small sizes that train in seconds to minutes on a laptop CPU. Same vocabulary, so
    # they read and write the same tokens as GPT-2.
    "gpt-nano": GPTConfig(context_length=64, emb_dim=64, n_heads=4, n_layers=2),
    "gpt-micro": GPTConfig(context_length=128, emb_dim=128, n_heads=4, n_layers=4),
    "gpt-mini": GPTConfig(context_length=128, emb_dim=256, n_heads=4, n_layers=4),
}

# Other names for the presets. Hugging Face calls GPT-2 small plain "gpt2"; the other
# sizes share our names.
ALIASES: dict[str, str] = {"gpt2": "gpt2-small"}


def check_overrides(cls: type, overrides: Mapping[str, Any]) -> None:
    """`from_preset`'s TypeError for an override that is no field: it names them all."""
    fields = [f.name for f in dataclasses.fields(cls)]
    for name in (name for name in overrides if name not in fields):
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TypeError(
            f"{cls.__name__}.from_preset() got an unexpected keyword argument {name!r}."
            f"{hint} A {cls.__name__}'s fields are: {', '.join(fields)}."
        )


def preset_name(name: str) -> str:
    """The `PRESETS` key for `name`, which may be one of `ALIASES` (chapter 6)."""
    name = ALIASES.get(name, name)
    return one_of("preset", name, [*PRESETS, *ALIASES])
