"""gptcourse/kv_cache.py: generation with the cache picks exactly the tokens generation without it picks."""

import contextlib

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse import kv_cache as kv
from gptcourse.generate import generate
from gptcourse.kv_cache import KVCache, forward_with_cache

CFG = GPTConfig(vocab_size=500, context_length=24, emb_dim=64, n_heads=4, n_layers=2)
ATTENTIONS = ["sdpa", "manual"]


def model(attention: str) -> GPT:
    torch.manual_seed(0)
    return GPT(CFG, attention=attention).eval()


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_forward_in_pieces_equals_forward_at_once(attention):
    gpt = model(attention)
    idx = torch.randint(0, CFG.vocab_size, (3, 20))
    cache = KVCache(CFG.n_layers)
    with torch.no_grad():
        pieces = [forward_with_cache(gpt, idx[:, :7], cache), forward_with_cache(gpt, idx[:, 7:15], cache)]  # several queries after a cache
        pieces += [forward_with_cache(gpt, idx[:, t : t + 1], cache) for t in range(15, 20)]  # then one at a time
        whole = gpt(idx)
    assert len(cache) == 20
    assert [tuple(k.shape) for k in cache.keys] == [(3, 4, 20, 16)] * 2 == [tuple(v.shape) for v in cache.values]
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize(
    "sampling", [dict(temperature=0.0), dict(temperature=1.0), dict(temperature=0.8, top_k=20)], ids=["greedy", "sampled", "top-k"]
)
def test_generate_picks_the_same_tokens(attention, sampling):
    gpt = model(attention)
    prompt = torch.randint(0, CFG.vocab_size, (3, 5))  # a batch of 3
    out = {
        use_cache: generate(gpt, prompt, max_new_tokens=15, use_cache=use_cache, generator=torch.Generator().manual_seed(7), **sampling)
        for use_cache in (True, False)
    }
    assert out[True].shape == (3, 20)
    assert torch.equal(out[True], out[False])


@pytest.mark.filterwarnings("error")  # no warning unless the prompt is cropped
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("prompt_length", [3, 24, 30])
def test_generate_past_the_context_length(attention, prompt_length):
    """24 tokens of context; 40 new tokens slide the window well past it."""
    gpt = model(attention)
    prompt = torch.randint(0, CFG.vocab_size, (2, prompt_length))
    out = {}
    for use_cache in (True, False):
        too_long = prompt_length > CFG.context_length  # cropped, with a warning
        with pytest.warns(UserWarning, match="only its last 24") if too_long else contextlib.nullcontext():
            out[use_cache] = gpt.generate(
                prompt, max_new_tokens=40, temperature=1.0, generator=torch.Generator().manual_seed(3), use_cache=use_cache
            )
    assert torch.equal(out[True], out[False])
    assert out[True].shape[1] == min(prompt_length, CFG.context_length) + 40


def test_the_cache_runs_the_prompt_once_then_one_token_per_step(monkeypatch):
    gpt = GPT(GPTConfig.from_preset("gpt-nano")).eval()
    calls = []
    original = kv.forward_with_cache

    def spy(model, idx, cache):
        calls.append(idx.shape[1])
        return original(model, idx, cache)

    monkeypatch.setattr("gptcourse.generate.forward_with_cache", spy)
    text = gpt.generate("Hello, world", max_new_tokens=5)
    assert calls == [3, 1, 1, 1, 1]
    calls.clear()
    assert gpt.generate("Hello, world", max_new_tokens=5, use_cache=False) == text
    assert calls == []  # without the cache, GPT.forward runs the whole text every step


def test_cache_overflow_and_layer_mismatch_are_clear_errors():
    gpt = model("sdpa")
    cache = KVCache(CFG.n_layers)
    forward_with_cache(gpt, torch.zeros(1, 20, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="The cache holds 20 tokens; 5 more would pass the context length 24"):
        forward_with_cache(gpt, torch.zeros(1, 5, dtype=torch.long), cache)
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match=r"cache has 3 layers but the model has 2; use KVCache\(model.config.n_layers\)"):
        forward_with_cache(gpt, torch.zeros(1, 5, dtype=torch.long), KVCache(3))
    with pytest.raises(ValueError, match="n_layers must be a positive int, got 0"):
        KVCache(0)
