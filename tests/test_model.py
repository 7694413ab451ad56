import warnings

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.device import autocast_dtype, get_device, needs_grad_scaler
from gptcourse.model import GELU, LayerNorm

TINY = GPTConfig(vocab_size=97, context_length=12, emb_dim=16, n_heads=4, n_layers=2)


@pytest.mark.parametrize(
    "preset, expected",
    [("gpt2-small", 124_439_808), ("gpt2-medium", 354_823_168), ("gpt2-large", 774_030_080), ("gpt2-xl", 1_557_611_200)],
)
def test_gpt2_parameter_counts(preset, expected):
    with torch.device("meta"):  # nothing is allocated
        model = GPT(preset)
    assert model.num_parameters() == expected


def test_head_is_tied_to_the_token_embedding():
    model = GPT(TINY)
    assert model.out_head.weight is model.tok_emb.weight


def test_spec_dict_config_and_logits_shape():
    config = {"vocab_size": 97, "context_length": 12, "emb_dim": 16, "n_layers": 2, "n_heads": 4, "drop_rate": 0.1}
    model = GPT(config)
    assert model(torch.randint(0, 97, (3, 7))).shape == (3, 7, 97)


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_causality(attention):
    model = GPT(TINY, attention=attention).eval()
    x = torch.randint(0, 97, (2, 12))
    changed = x.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 97
    torch.testing.assert_close(model(changed)[:, :6], model(x)[:, :6])
    assert not torch.allclose(model(changed)[:, 6:], model(x)[:, 6:])


def test_sdpa_and_manual_models_agree():
    a = GPT(TINY, attention="sdpa").eval()
    b = GPT(TINY, attention="manual").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 97, (2, 12))
    torch.testing.assert_close(a(x), b(x))


def test_unknown_attention():
    with pytest.raises(ValueError, match="manual"):
        GPT(TINY, attention="flash")


def test_layernorm_and_gelu_match_pytorch():
    x = torch.randn(4, 16) * 3 + 1
    ln = LayerNorm(16)
    torch.testing.assert_close(ln(x), torch.nn.functional.layer_norm(x, (16,)))
    torch.testing.assert_close(GELU()(x), torch.nn.GELU(approximate="tanh")(x))


@pytest.mark.parametrize(
    "idx, error, message",
    [
        (torch.tensor([[1, 97]]), ValueError, r"Token id 97 is outside the vocabulary \[0, 96\]"),
        (torch.tensor([[-1, 3]]), ValueError, "Token id -1"),
        (torch.tensor([1, 2]), ValueError, "unsqueeze"),
        (torch.tensor([[1.0, 2.0]]), TypeError, "integers"),
        (torch.zeros(1, 13, dtype=torch.long), ValueError, "context_length is 12"),
    ],
)
def test_bad_input_errors(idx, error, message):
    with pytest.raises(error, match=message):
        GPT(TINY)(idx)


def test_generate_string_in_string_out():
    model = GPT(GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1))
    out = model.generate("Your prompt here", max_new_tokens=5)
    assert isinstance(out, str) and out.startswith("Your prompt here")


def test_generate_ids_greedy_is_deterministic_and_keeps_rank():
    model = GPT(TINY)
    prompt = torch.tensor([1, 2, 3])
    a, b = model.generate(prompt, max_new_tokens=4), model.generate(prompt, max_new_tokens=4)
    assert a.shape == (7,) and torch.equal(a, b) and torch.equal(a[:3], prompt)
    assert model.generate(prompt.unsqueeze(0).repeat(2, 1), 4).shape == (2, 7)


def test_generate_sampling_is_seeded_and_top_k_restricts():
    model = GPT(TINY)
    prompt = torch.tensor([[5]])
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = model.generate(prompt, 6, temperature=1.0, top_k=5, generator=g())
    b = model.generate(prompt, 6, temperature=1.0, top_k=5, generator=g())
    assert torch.equal(a, b)
    # With top_k=1, sampling is greedy.
    torch.testing.assert_close(model.generate(prompt, 6, temperature=2.0, top_k=1), model.generate(prompt, 6))


def test_generate_crops_a_long_prompt_with_a_warning():
    model = GPT(TINY)
    long_prompt = torch.randint(0, 97, (20,))
    with pytest.warns(UserWarning, match="only its last 12"):
        out = model.generate(long_prompt, max_new_tokens=3)
    assert out.shape == (15,) and torch.equal(out[:12], long_prompt[-12:])
    # Generating past the context slides the window instead of failing.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.generate(long_prompt[:10], max_new_tokens=8).shape == (18,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -0.5}, "temperature must be >= 0"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 98}, "top_k"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
    ],
)
def test_generate_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPT(TINY).generate(torch.tensor([1, 2]), **{"max_new_tokens": 2, **kwargs})


def test_generate_rejects_bad_ids_and_empty_prompts():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        GPT(TINY).generate(torch.tensor([1, 500]), 2)
    with pytest.raises(ValueError, match="empty"):
        GPT(TINY).generate(torch.tensor([], dtype=torch.long), 2)


def test_generate_restores_training_mode():
    model = GPT(TINY).train()
    model.generate(torch.tensor([1]), 2)
    assert model.training


def test_device_helpers_on_cpu():
    assert get_device("cpu").type == "cpu"
    assert autocast_dtype("cpu") == torch.float32
    assert needs_grad_scaler(torch.float16) and not needs_grad_scaler(torch.bfloat16)


def test_t4_bf16_is_not_native(monkeypatch):
    # A T4 reports bf16 "supported" through emulation; only the no-emulation answer counts.
    from gptcourse import device as dev

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert dev.autocast_dtype("cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert dev.autocast_dtype("cuda") == torch.bfloat16
