"""The KV cache of chapter 8, shared by `GPT` and appendix B's `Llama`.

In a causal model a token's key and value depend only on it and the tokens before it,
so once computed they never change. `KVCache` keeps every layer's; ``model(idx,
cache=cache)`` then runs only the tokens that follow the cached ones.
"""

from __future__ import annotations

import torch

from .checks import positive_int


class KVCache:
    """Every layer's keys and values, (batch, heads, tokens, head_dim) (chapter 8)."""

    def __init__(self, n_layers: int) -> None:
        positive_int("n_layers", n_layers)
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers

    def __len__(self) -> int:
        """Tokens cached (the same in every layer, once a forward pass is over)."""
        return 0 if self.keys[0] is None else self.keys[0].shape[-2]

    def update(
        self, layer: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new tokens' keys and values to `layer`'s; return all of them."""
        if self.keys[layer] is not None:
            keys = torch.cat([self.keys[layer], keys], dim=-2)  # (B, h, T_old + T, hd)
            values = torch.cat([self.values[layer], values], dim=-2)
        self.keys[layer], self.values[layer] = keys, values
        return keys, values

    def check_room(self, n_layers: int, num_new: int, context_length: int) -> None:
        """A clear error unless it has `n_layers` and room for `num_new` more tokens."""
        if len(self.keys) != n_layers:
            raise ValueError(
                f"cache has {len(self.keys)} layers but the model has {n_layers}; "
                "use KVCache(model.config.n_layers)."
            )
        if len(self) + num_new > context_length:
            raise ValueError(
                f"The cache holds {len(self)} tokens; {num_new} more would pass the "
                f"context length {context_length}. Clear the cache and start again "
                "from the last context_length tokens."
            )

    def clear(self) -> None:
        """Forget every token (chapter 8)."""
        n_layers = len(self.keys)
        self.keys, self.values = [None] * n_layers, [None] * n_layers
