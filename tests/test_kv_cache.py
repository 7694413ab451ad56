"""The KV cache: generation with it picks exactly the tokens generation without it picks."""

import contextlib

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.attention import KVCache, LayerKVCache, MultiHeadAttention, SDPAMultiHeadAttention

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
    pieces = [gpt(idx[:, :7], kv_cache=cache), gpt(idx[:, 7:15], kv_cache=cache)]  # several queries after a cache
    pieces += [gpt(idx[:, t : t + 1], kv_cache=cache) for t in range(15, 20)]  # then one at a time
    assert len(cache) == 20
    torch.testing.assert_close(torch.cat(pieces, dim=1), gpt(idx), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", [MultiHeadAttention, SDPAMultiHeadAttention])
def test_attention_module_with_a_cache(cls):
    att = cls(d_in=32, d_out=32, context_length=16, num_heads=4).eval()
    x = torch.randn(2, 12, 32)
    cache = LayerKVCache()
    out = torch.cat([att(x[:, :5], kv_cache=cache), att(x[:, 5:6], kv_cache=cache), att(x[:, 6:], kv_cache=cache)], dim=1)
    torch.testing.assert_close(out, att(x), atol=1e-6, rtol=0)
    assert cache.keys.shape == (2, 4, 12, 8) and cache.values.shape == (2, 4, 12, 8)
    with pytest.raises(ValueError, match="context_length=16"):
        att(torch.randn(2, 5, 32), kv_cache=cache)  # 12 cached + 5 new > 16


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("sampling", [dict(temperature=0.0), dict(temperature=1.0), dict(temperature=0.8, top_k=20)], ids=["greedy", "sampled", "top-k"])
def test_generate_picks_the_same_tokens(attention, sampling):
    gpt = model(attention)
    prompt = torch.randint(0, CFG.vocab_size, (3, 5))  # a batch of 3
    out = {
        use_cache: gpt.generate(prompt, max_new_tokens=15, use_cache=use_cache, generator=torch.Generator().manual_seed(7), **sampling)
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
            out[use_cache] = gpt.generate(prompt, max_new_tokens=40, temperature=1.0, generator=torch.Generator().manual_seed(3), use_cache=use_cache)
    assert torch.equal(out[True], out[False])
    assert out[True].shape[1] == min(prompt_length, CFG.context_length) + 40


def test_string_prompt_and_default_uses_the_cache(monkeypatch):
    gpt = GPT(GPTConfig.from_preset("gpt-nano")).eval()
    calls = []
    original = GPT.forward

    def spy(self, idx, kv_cache=None):
        calls.append((idx.shape[1], kv_cache is not None))
        return original(self, idx, kv_cache)

    monkeypatch.setattr(GPT, "forward", spy)
    text = gpt.generate("Hello, world", max_new_tokens=5)
    assert calls == [(3, True), (1, True), (1, True), (1, True), (1, True)]  # the prompt once, then one token per step
    calls.clear()
    assert gpt.generate("Hello, world", max_new_tokens=5, use_cache=False) == text
    assert [n for n, _ in calls] == [3, 4, 5, 6, 7]


def test_cache_overflow_is_a_clear_error():
    gpt = model("sdpa")
    cache = KVCache(CFG.n_layers)
    gpt(torch.zeros(1, 20, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="cache holds 20 tokens"):
        gpt(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)
    cache.clear()
    assert len(cache) == 0


def test_kv_figures():
    import matplotlib.pyplot as plt

    from gptcourse.plots import plot_kv_cache_idea, plot_kv_speedup

    titles = [ax.get_title() for ax in plot_kv_cache_idea(prompt_tokens=3, new_tokens=5).axes]
    assert titles == ["Without a KV cache: 25 token computations", "With a KV cache: 7 token computations"]  # 3+4+5+6+7; 3+1+1+1+1
    fig = plot_kv_speedup([8, 16], {"without cache": [0.2, 0.8], "with KV cache": [0.1, 0.2]})
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [2.0, 4.0]
    plt.close("all")
