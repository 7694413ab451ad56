"""Argument checks shared by every module: one wording for one mistake.

Each function returns the value it checked (so a caller can write
``steps = positive_int("steps", steps)``) or raises an error that names the parameter,
shows what was given and says what is expected.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


def positive_int(name: str, value: Any) -> int:
    """`value` if it is an int > 0 (a bool is not an int here), else a clear error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{name} must be a positive int, got {value!r} ({type(value).__name__})."
        )
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}.")
    return value


def optional_positive_int(name: str, value: Any) -> int | None:
    """`value` if it is None or an int > 0."""
    return None if value is None else positive_int(name, value)


def non_negative_int(name: str, value: Any) -> int:
    """`value` if it is an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{name} must be an int >= 0, got {value!r} ({type(value).__name__})."
        )
    if value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value}.")
    return value


def finite_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    strictly_above: float | None = None,
) -> float:
    """`value` as a float if it is a finite real number within the bounds.

    ``minimum`` is inclusive (``value >= minimum``); ``strictly_above`` is exclusive.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number, got {value!r} ({type(value).__name__})."
        )
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    if strictly_above is not None and not value > strictly_above:
        raise ValueError(f"{name} must be > {strictly_above}, got {value!r}.")
    return float(value)


def one_of(name: str, value: Any, choices: Any) -> Any:
    """`value` if it is one of `choices` (a dict's keys or any collection)."""
    if value not in choices:
        options = ", ".join(map(repr, choices))
        raise ValueError(f"Unknown {name} {value!r}; choose one of: {options}.")
    return value


def heads_divide(emb_dim: int, n_heads: int) -> None:
    """A clear error unless `n_heads` divides `emb_dim` (GPT, Llama)."""
    if emb_dim % n_heads != 0:
        nearest = n_heads * max(1, round(emb_dim / n_heads))
        raise ValueError(
            f"emb_dim ({emb_dim}) must be divisible by n_heads ({n_heads}): each head "
            f"gets emb_dim // n_heads dimensions. Try emb_dim={nearest} "
            f"or an n_heads that divides {emb_dim}."
        )


def config_from_mapping(
    cls: type, config: Mapping[str, Any], required: tuple[str, ...], hint: str = ""
) -> Any:
    """A config dataclass `cls` from a dict, naming unknown and missing keys.

    `GPTConfig.coerce` and `LlamaConfig.coerce` build their configs from dicts this way.
    """
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(
            f"Unknown config key(s) {unknown}; a {cls.__name__} has: {known}."
        )
    missing = [name for name in required if name not in config]
    if missing:
        optional = ", ".join(name for name in known if name not in required)
        raise ValueError(
            f"The config is missing {', '.join(missing)}: a config dict must give all "
            f"of {', '.join(required)} ({optional} are optional)."
            f"{' ' + hint if hint else ''}"
        )
    return cls(**config)
