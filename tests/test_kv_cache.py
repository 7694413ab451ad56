"""gptcourse/kv_cache.py: `model(idx, cache=cache)` gives the logits of the whole text, and
generation with the cache picks exactly the tokens generation without it picks."""

import contextlib

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.attention import ATTENTION_CLASSES
from gptcourse.generate import generate
from gptcourse.kv_cache import KVCache

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
        pieces = [gpt(idx[:, :7], cache=cache), gpt(idx[:, 7:15], cache=cache)]  # several queries after a cache
        pieces += [gpt(idx[:, t : t + 1], cache=cache) for t in range(15, 20)]  # then one at a time
        whole = gpt(idx)
    assert len(cache) == 20
    assert [tuple(k.shape) for k in cache.keys] == [(3, 4, 20, 16)] * 2 == [tuple(v.shape) for v in cache.values]
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_the_attention_module_alone_reads_and_fills_the_cache(attention):
    torch.manual_seed(0)
    att = ATTENTION_CLASSES[attention](16, 16, context_length=10, n_heads=2).eval()
    x = torch.randn(2, 9, 16)
    cache = KVCache(3)
    pieces = [att(x[:, :4], cache, layer=2), att(x[:, 4:5], cache, layer=2), att(x[:, 5:], cache, layer=2)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), att(x), atol=1e-6, rtol=0)
    assert cache.keys[0] is None and cache.keys[2].shape == (2, 2, 9, 8)  # only the layer it was given


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


def test_the_cache_runs_the_prompt_once_then_one_token_per_step(forward_calls):
    gpt = GPT(GPTConfig.from_preset("gpt-nano")).eval()
    calls = forward_calls(gpt)
    text = gpt.generate("Hello, world", max_new_tokens=5)
    assert calls == [(3, 0), (1, 3), (1, 4), (1, 5), (1, 6)]
    calls.clear()
    assert gpt.generate("Hello, world", max_new_tokens=5, use_cache=False) == text
    assert calls == [(3, None), (4, None), (5, None), (6, None), (7, None)]  # the whole text every step


def test_past_the_context_the_cache_restarts_on_the_window(forward_calls):
    gpt = model("sdpa")
    calls = forward_calls(gpt)
    gpt.generate(torch.zeros(1, 22, dtype=torch.long), max_new_tokens=5)
    # 22 + 2 fill the context of 24; from then on each step recomputes the last 24 tokens.
    assert calls == [(22, 0), (1, 22), (1, 23), (24, 0), (24, 0)]


def test_cache_overflow_and_layer_mismatch_are_clear_errors():
    gpt = model("sdpa")
    cache = KVCache(CFG.n_layers)
    gpt(torch.zeros(1, 20, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="The cache holds 20 tokens; 5 more would pass the context length 24"):
        gpt(torch.zeros(1, 5, dtype=torch.long), cache=cache)
    assert len(cache) == 20  # the refused tokens left the cache as it was
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match=r"cache has 3 layers but the model has 2; use KVCache\(model.config.n_layers\)"):
        gpt(torch.zeros(1, 5, dtype=torch.long), cache=KVCache(3))
    with pytest.raises(ValueError, match="n_layers must be a positive int, got 0"):
        KVCache(0)


def _step_flops(head_always_everywhere=False, head_always_one=False, full_scores=False, attention=True):
    """Exercise 8.4's count of one step's FLOPs; the flags make its plausible mistakes."""

    def step_flops(config, context, use_cache, last_only):
        d, V = config.emb_dim, config.vocab_size
        tokens = 1 if use_cache else context
        linear = 24 * tokens * d * d
        queries = context if full_scores else tokens  # the cache's query is one token
        scores = 4 * queries * context * d if attention else 0
        positions = tokens if head_always_everywhere else 1 if head_always_one else (1 if last_only else tokens)
        return config.n_layers * (linear + scores) + 2 * d * V * positions

    return step_flops


def test_exercise_8_4_check_catches_the_plausible_wrong_answers(exercise_check):
    """The right count passes; the head counted on every position despite last_only, or on
    one position always, every query counted with the cache, or attention forgotten, fail."""
    check = exercise_check("8.4")

    def run(step_flops):
        exec(check, {"torch": torch, "GPT": GPT, "GPTConfig": GPTConfig, "KVCache": KVCache, "step_flops": step_flops})

    run(_step_flops())
    for mistake in ("head_always_everywhere", "head_always_one", "full_scores", "attention"):
        wrong = _step_flops(**{mistake: mistake != "attention"})
        with pytest.raises(AssertionError, match="PyTorch counts"):
            run(wrong)
