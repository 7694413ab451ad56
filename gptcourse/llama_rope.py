"""Rotary position embeddings for appendix B's Llama: the angles, and the rotation.

RoPE (RoFormer, Su et al. 2021) turns each pair of a head's dimensions by an angle that
grows with the position. Pairs are dimensions i and i + head_dim/2 (Hugging Face's
``rotate_half`` layout). `RopeScaling` is Llama 3's stretch of the slow pairs
(``rope_type: "llama3"`` in a config.json; Grattafiori et al. 2024).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .checks import finite_number, positive_int


@dataclass(frozen=True)
class RopeScaling:
    """Llama 3's RoPE scaling: the slow pairs turn `factor` times slower (appendix B).

    Pairs whose wavelength (tokens per full turn) is under ``original_context_length /
    high_freq_factor`` keep their speed; over ``original_context_length /
    low_freq_factor`` they are divided by `factor`; in between, a smooth blend. So the
    pairs that told positions apart within the trained context keep doing so.
    """

    factor: float  # Llama 3.1: 8, Llama 3.2: 32
    low_freq_factor: float  # 1 in Llama 3.1 and 3.2
    high_freq_factor: float  # 4 in Llama 3.1 and 3.2
    original_context_length: int  # the trained context: 8,192 tokens in Llama 3

    def __post_init__(self) -> None:
        finite_number("factor", self.factor, minimum=1)
        finite_number("low_freq_factor", self.low_freq_factor, strictly_above=0)
        high = finite_number("high_freq_factor", self.high_freq_factor)
        if not high > self.low_freq_factor:
            raise ValueError(
                f"high_freq_factor ({self.high_freq_factor!r}) must be > "
                f"low_freq_factor ({self.low_freq_factor!r}): between the two "
                "wavelengths they set, the speeds blend. Llama 3 uses 4 and 1."
            )
        positive_int("original_context_length", self.original_context_length)

    @classmethod
    def coerce(
        cls, scaling: RopeScaling | Mapping[str, Any] | None
    ) -> RopeScaling | None:
        """None, a `RopeScaling`, or one from a dict of its fields."""
        if scaling is None or isinstance(scaling, RopeScaling):
            return scaling
        if isinstance(scaling, Mapping):
            fields = ", ".join(cls.__dataclass_fields__)
            unknown = sorted(set(scaling) - set(cls.__dataclass_fields__))
            missing = sorted(set(cls.__dataclass_fields__) - set(scaling))
            if unknown or missing:
                raise ValueError(
                    f"rope_scaling needs exactly the keys {fields}; got unknown "
                    f"{unknown} and missing {missing}."
                )
            return cls(**scaling)
        raise TypeError(
            "rope_scaling must be None, a RopeScaling or a dict of its fields, got "
            f"{type(scaling).__name__}."
        )

    def scale(self, inv_freq: torch.Tensor) -> torch.Tensor:
        """Each pair's angle per token (radians), scaled as Llama 3 does."""
        wavelength = 2 * math.pi / inv_freq
        context = self.original_context_length
        slow = wavelength > context / self.low_freq_factor
        fast = wavelength < context / self.high_freq_factor
        # 0 at the slow end of the blend, 1 at the fast end
        smooth = (context / wavelength - self.low_freq_factor) / (
            self.high_freq_factor - self.low_freq_factor
        )
        blended = (1 - smooth) * inv_freq / self.factor + smooth * inv_freq
        scaled = torch.where(slow, inv_freq / self.factor, blended)
        return torch.where(fast, inv_freq, scaled)


def rope_frequencies(
    head_dim: int, base: float = 10_000.0, scaling: RopeScaling | None = None
) -> torch.Tensor:
    """Pair i's angle per token, base^(-2i/head_dim), (head_dim/2,) (appendix B)."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim
    inv_freq = 1.0 / (base**exponents)  # (hd/2,)
    return inv_freq if scaling is None else scaling.scale(inv_freq)


def rope_angles(
    head_dim: int,
    context_length: int,
    base: float = 10_000.0,
    scaling: RopeScaling | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of RoPE's angles, (context_length, head_dim) each (appendix B).

    Pair i of a head (dimensions i and i + head_dim/2, Hugging Face's layout) turns by
    position · `rope_frequencies`[i] radians. float32: angles reach context_length
    radians, and in bf16 (8 significant bits) one near 4,000 is off by up to 8 radians.
    """
    inv_freq = rope_frequencies(head_dim, base, scaling)
    positions = torch.arange(context_length, dtype=torch.float32)
    angles = positions[:, None] * inv_freq[None, :]  # (T, hd/2)
    # (T, hd): the same angle for dimension i and i + hd/2
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1), the halves of the last dimension: each pair turns 90°."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn pair (x_i, x_{i+hd/2}) of `x` (B, heads, T, hd) by its angle (appendix B).

    `cos` and `sin` are (T, hd), rows for the positions of x's tokens.
    """
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)
