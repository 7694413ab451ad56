"""gptcourse/generate.py: generation on ids, the text conversions, and the checks on ids where they enter."""

import warnings

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.generate import check_token_ids, generate, text_to_token_ids, token_ids_to_text

TINY = GPTConfig(vocab_size=97, context_length=12, emb_dim=16, n_heads=4, n_layers=2)


@pytest.fixture
def tiny():
    return GPT(TINY)


def test_greedy_is_deterministic_and_keeps_rank(tiny):
    prompt = torch.tensor([1, 2, 3])
    a, b = generate(tiny, prompt, 4), generate(tiny, prompt, 4)
    assert a.shape == (7,) and torch.equal(a, b) and torch.equal(a[:3], prompt)
    batch = generate(tiny, prompt.repeat(2, 1), 4)
    assert batch.shape == (2, 7) and torch.equal(batch[0], a) and torch.equal(batch[1], a)


def test_sampling_is_seeded_and_top_k_1_is_greedy(tiny):
    prompt = torch.tensor([[5]])
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = generate(tiny, prompt, 6, temperature=1.0, top_k=5, generator=g())
    b = generate(tiny, prompt, 6, temperature=1.0, top_k=5, generator=g())
    assert torch.equal(a, b)
    torch.testing.assert_close(generate(tiny, prompt, 6, temperature=2.0, top_k=1), generate(tiny, prompt, 6))


def test_eos_id_stops_early(tiny):
    prompt = torch.tensor([[1, 2]])
    first = generate(tiny, prompt, 1)[0, -1].item()
    assert generate(tiny, prompt, 10, eos_id=first).shape == (1, 3)


def test_a_long_prompt_is_cropped_with_a_warning(tiny):
    long_prompt = torch.randint(0, 97, (20,))
    with pytest.warns(UserWarning, match="only its last 12"):
        out = generate(tiny, long_prompt, 3)
    assert out.shape == (15,) and torch.equal(out[:12], long_prompt[-12:])
    # Generating past the context slides the window instead of failing.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert generate(tiny, long_prompt[:10], 8).shape == (18,)


def test_training_mode_is_restored(tiny):
    tiny.train()
    generate(tiny, torch.tensor([1]), 2)
    assert tiny.training


def test_text_round_trip():
    ids = text_to_token_ids("Hello, world<|endoftext|>")
    assert ids.tolist() == [[15496, 11, 995, 50256]]
    assert token_ids_to_text(ids) == token_ids_to_text(ids[0]) == "Hello, world<|endoftext|>"
    with pytest.raises(ValueError, match=r"ids must have shape \(tokens,\) or \(1, tokens\), got \(2, 4\)"):
        token_ids_to_text(ids.repeat(2, 1))
    with pytest.raises(TypeError, match="text must be a str, got list"):
        text_to_token_ids([15496])


@pytest.mark.parametrize(
    "idx, error, message",
    [
        (torch.tensor(5), ValueError, r"idx must have shape \(tokens,\) or \(batch, tokens\), got a 0-d tensor .*torch.tensor\(\[id\]\)"),
        (torch.zeros(1, 2, 3, dtype=torch.long), ValueError, r"idx must have shape .* got a 3-d tensor of shape \(1, 2, 3\)"),
        (torch.tensor([1, 97]), ValueError, r"idx holds token id 97, outside the vocabulary \[0, 96\]"),
        (torch.tensor([[-1, 3]]), ValueError, r"idx holds token id -1, outside the vocabulary"),
        (torch.tensor([1.0, 2.0]), TypeError, r"idx must hold integer token ids \(torch.long\), got torch.float32"),
        (torch.tensor([], dtype=torch.long), ValueError, "idx is empty"),
        ([1, 2], TypeError, "idx must be a tensor of token ids, got list"),
    ],
)
def test_bad_ids(tiny, idx, error, message):
    with pytest.raises(error, match=message):
        generate(tiny, idx, 2)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"temperature": "hot"}, TypeError, r"temperature must be a number, got 'hot' \(str\)"),
        ({"temperature": -0.5}, ValueError, "temperature must be >= 0.0, got -0.5"),
        ({"temperature": float("nan")}, ValueError, "temperature must be a finite number"),
        ({"top_k": 0}, ValueError, "top_k must be a positive int, got 0"),
        ({"top_k": 98}, ValueError, "top_k must be at most the vocabulary size 97, got 98"),
        ({"max_new_tokens": -1}, ValueError, "max_new_tokens must be an int >= 0, got -1"),
        ({"max_new_tokens": 2.5}, TypeError, "max_new_tokens must be an int >= 0"),
        ({"eos_id": 97}, ValueError, r"eos_id must be a token id in \[0, 96\], got 97"),
    ],
)
def test_bad_arguments(tiny, kwargs, error, message):
    with pytest.raises(error, match=message):
        generate(tiny, torch.tensor([1, 2]), **{"max_new_tokens": 2, **kwargs})


def test_check_token_ids_names_the_parameter():
    with pytest.raises(ValueError, match="prompt holds token id 7"):
        check_token_ids(torch.tensor([7]), vocab_size=5, name="prompt")


def test_last_only_gives_the_last_positions_logits(tiny):
    ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full, last = tiny(ids), tiny(ids, last_only=True)
    assert last.shape == (2, 1, 97)
    torch.testing.assert_close(last[:, 0], full[:, -1])


@pytest.mark.parametrize("use_cache", [False, True])
def test_generation_runs_the_head_on_one_position_per_step(tiny, use_cache):
    # The fair baseline of chapter 8: without a cache, the model still reads every
    # token, but the 50,257-wide head (here 97) runs on the last position only.
    rows = []
    hook = tiny.out_head.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[1]))
    generate(tiny, torch.tensor([1, 2, 3, 4, 5]), 4, use_cache=use_cache)
    hook.remove()
    assert rows == [1, 1, 1, 1]
