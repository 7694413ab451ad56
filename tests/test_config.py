import dataclasses

import pytest

from gptcourse.config import PRESETS, GPTConfig


def test_defaults_are_gpt2_small():
    assert GPTConfig() == dataclasses.replace(PRESETS["gpt2-small"])


def test_from_preset_with_overrides():
    cfg = GPTConfig.from_preset("gpt2-medium", drop_rate=0.1)
    assert (cfg.emb_dim, cfg.n_heads, cfg.n_layers, cfg.drop_rate) == (1024, 16, 24, 0.1)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="gpt2-small"):
        GPTConfig.from_preset("gpt5")


def test_emb_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"emb_dim \(100\) must be divisible by n_heads \(3\)"):
        GPTConfig(emb_dim=100, n_heads=3)


@pytest.mark.parametrize("field", ["vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"])
@pytest.mark.parametrize("value", [0, -4])
def test_non_positive_sizes(field, value):
    with pytest.raises(ValueError, match=f"{field} must be positive"):
        GPTConfig(**{field: value})


def test_non_int_size():
    with pytest.raises(TypeError, match="emb_dim must be an int"):
        GPTConfig(emb_dim=76.8)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_drop_rate_range(rate):
    with pytest.raises(ValueError, match=r"drop_rate must be in \[0, 1\)"):
        GPTConfig(drop_rate=rate)


def test_coerce_dict_and_unknown_keys():
    cfg = GPTConfig.coerce({"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_layers": 12, "n_heads": 12, "drop_rate": 0.1})
    assert cfg.drop_rate == 0.1 and cfg.qkv_bias
    with pytest.raises(ValueError, match="n_embd"):
        GPTConfig.coerce({"n_embd": 768})
    with pytest.raises(TypeError):
        GPTConfig.coerce(42)


def test_coerce_preset_name():
    assert GPTConfig.coerce("gpt-nano") == PRESETS["gpt-nano"]
    with pytest.raises(ValueError, match="Unknown preset"):
        GPTConfig.coerce("gpt-huge")
