"""Text generation on token ids (chapters 6 and 8): one job per function.

`generate` continues token ids; `text_to_token_ids` and `token_ids_to_text` convert to
and from text (they alone load the tokenizer). Token *values* are checked here, where
ids enter, so that ``GPT.forward`` checks shapes only (and runs on the meta device).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .checks import finite_number, non_negative_int, optional_positive_int
from .kv_cache import KVCache


def check_token_ids(
    ids: torch.Tensor, vocab_size: int, name: str = "idx"
) -> torch.Tensor:
    """`ids` if it is a non-empty (tokens,) or (batch, tokens) tensor of integer ids
    within the vocabulary; a clear error naming `name` if not (chapter 6)."""
    if not isinstance(ids, torch.Tensor):
        kind = type(ids).__name__
        raise TypeError(f"{name} must be a tensor of token ids, got {kind}.")
    if ids.dim() not in (1, 2):
        single = "; wrap a single id as torch.tensor([id])" if ids.dim() == 0 else ""
        raise ValueError(
            f"{name} must have shape (tokens,) or (batch, tokens), got a {ids.dim()}-d "
            f"tensor of shape {tuple(ids.shape)}{single}."
        )
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(
            f"{name} must hold integer token ids (torch.long), got {ids.dtype}."
        )
    if ids.shape[-1] == 0:
        raise ValueError(
            f"{name} is empty; give at least one token (e.g. '<|endoftext|>', "
            "id 50256)."
        )
    outside = (ids < 0) | (ids >= vocab_size)
    if outside.any():
        raise ValueError(
            f"{name} holds token id {ids[outside][0].item()}, outside the vocabulary "
            f"[0, {vocab_size - 1}] of this model."
        )
    return ids


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """`idx` (tokens,) or (batch, tokens), then up to `max_new_tokens` ids (chapter 6).

    Temperature 0 picks the likeliest token (greedy); above 0, tokens are sampled from
    softmax(logits / temperature), among the `top_k` likeliest if given. Each step sees
    the last `context_length` tokens (a longer prompt is cropped, with a warning); it
    stops once every sequence has written `eos_id`. ``use_cache=True`` keeps a `KVCache`
    and runs ``model(new_ids, cache=cache)`` (chapter 8): the same tokens, faster.
    """
    vocab_size, context_length = model.config.vocab_size, model.config.context_length
    check_token_ids(idx, vocab_size)
    max_new_tokens = non_negative_int("max_new_tokens", max_new_tokens)
    temperature = finite_number("temperature", temperature, minimum=0.0)
    if optional_positive_int("top_k", top_k) is not None and top_k > vocab_size:
        raise ValueError(
            f"top_k must be at most the vocabulary size {vocab_size}, got {top_k}."
        )
    if eos_id is not None and non_negative_int("eos_id", eos_id) >= vocab_size:
        raise ValueError(
            f"eos_id must be a token id in [0, {vocab_size - 1}], got {eos_id}."
        )

    squeeze = idx.dim() == 1
    idx = idx.unsqueeze(0) if squeeze else idx  # (B, T)
    if idx.shape[1] > context_length:
        warnings.warn(
            f"The prompt has {idx.shape[1]} tokens; only its last {context_length} "
            "(the context length) are used.",
            stacklevel=2,
        )
        idx = idx[:, -context_length:]
    idx = idx.to(next(model.parameters()).device)

    was_training = model.training
    model.eval()
    try:
        cache = KVCache(model.config.n_layers) if use_cache else None
        finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        for _ in range(max_new_tokens):
            logits = _next_token_logits(model, idx, cache)  # (B, vocab)
            next_id = _pick_next(logits, temperature, top_k, generator)  # (B, 1)
            idx = torch.cat([idx, next_id], dim=1)
            if eos_id is not None:
                finished |= next_id.squeeze(1) == eos_id
                if finished.all():
                    break
    finally:
        model.train(was_training)
    return idx[0] if squeeze else idx


def _next_token_logits(
    model: nn.Module, idx: torch.Tensor, cache: KVCache | None
) -> torch.Tensor:
    """The logits for the token after `idx` (B, T): the last position predicts it.

    ``last_only=True``: the head (50,257 outputs per position in GPT-2) runs on the
    last position only, with or without a cache, as nanoGPT does at inference.
    """
    context_length = model.config.context_length
    if cache is None:
        return model(idx[:, -context_length:], last_only=True)[:, -1, :]
    if idx.shape[1] > context_length:
        # The window slides: every token moves to a new position, so the cached keys
        # and values (computed at the old positions) are stale. Recompute the window.
        cache.clear()
        window = idx[:, -context_length:]
        return model(window, cache=cache, last_only=True)[:, -1, :]
    # Up to the context, the cache holds idx[:, :len(cache)]: run only the tokens
    # after it (the whole prompt on the first step, then one token per step).
    return model(idx[:, len(cache) :], cache=cache, last_only=True)[:, -1, :]


def _pick_next(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth_best = torch.topk(logits, top_k).values[:, -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


def text_to_token_ids(text: str, tokenizer=None) -> torch.Tensor:
    """GPT-2's ids of `text` as (1, tokens); ``<|endoftext|>`` is one (chapter 6)."""
    from .tokenizer import ENDOFTEXT, get_tokenizer

    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    tokenizer = tokenizer or get_tokenizer()
    ids = tokenizer.encode(text, allowed_special={ENDOFTEXT})
    return torch.tensor([ids], dtype=torch.long)


def token_ids_to_text(ids: torch.Tensor | list[int], tokenizer=None) -> str:
    """The text of token ids: a list of ints, or a tensor of shape (tokens,) or
    (1, tokens) (chapter 6). An id outside the tokenizer's vocabulary is named."""
    from .tokenizer import get_tokenizer

    if isinstance(ids, (list, tuple)) and all(type(i) is int for i in ids):
        ids = torch.tensor(ids, dtype=torch.long)  # e.g. what encode() returns
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"ids must be a tensor or a list of ints, got {ids!r:.80}.")
    if ids.dim() == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.dim() != 1:
        raise ValueError(
            f"ids must have shape (tokens,) or (1, tokens), got {tuple(ids.shape)}; "
            "decode each sequence of a batch."
        )
    tokenizer = tokenizer or get_tokenizer()
    try:
        return tokenizer.decode(ids.tolist())
    except (KeyError, OverflowError) as err:  # tiktoken's words for an unknown id
        n_vocab = getattr(tokenizer, "n_vocab", "?")
        raise ValueError(
            f"ids holds an id outside the tokenizer's vocabulary [0, {n_vocab}) "
            f"({err}): decode ids with the tokenizer of the model that made them."
        ) from err
