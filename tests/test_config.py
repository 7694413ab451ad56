"""gptcourse/config.py: `GPTConfig`, its checks, the presets and their aliases."""

import pytest

from gptcourse.config import ALIASES, PRESETS, REQUIRED, GPTConfig, preset_name

SPEC_DICT = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_layers": 12, "n_heads": 12, "drop_rate": 0.1}


def test_from_preset_with_overrides():
    cfg = GPTConfig.from_preset("gpt2-medium", drop_rate=0.1)
    assert (cfg.emb_dim, cfg.n_heads, cfg.n_layers, cfg.drop_rate, cfg.head_dim) == (1024, 16, 24, 0.1, 64)


def test_aliases_name_the_same_preset():
    assert GPTConfig.from_preset("gpt2") == PRESETS["gpt2-small"] == GPTConfig.coerce("gpt2")
    assert all(preset_name(alias) == target for alias, target in ALIASES.items())


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown preset 'gpt5'; choose one of: 'gpt2-small'.*'gpt2'"):
        GPTConfig.from_preset("gpt5")


def test_emb_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"emb_dim \(100\) must be divisible by n_heads \(3\).*Try emb_dim=99"):
        GPTConfig(emb_dim=100, n_heads=3)


@pytest.mark.parametrize("field", REQUIRED)
@pytest.mark.parametrize("value", [0, -4])
def test_non_positive_sizes(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive int, got {value}"):
        GPTConfig(**{field: value})


@pytest.mark.parametrize("value", [76.8, "768", True])
def test_non_int_size(value):
    with pytest.raises(TypeError, match="emb_dim must be a positive int"):
        GPTConfig(emb_dim=value)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_drop_rate_range(rate):
    with pytest.raises(ValueError, match="drop_rate must be"):
        GPTConfig(drop_rate=rate)


def test_qkv_bias_must_be_a_bool():
    with pytest.raises(TypeError, match="qkv_bias must be True or False"):
        GPTConfig(qkv_bias="yes")


def test_coerce_the_spec_dict():
    cfg = GPTConfig.coerce(SPEC_DICT)
    assert cfg.drop_rate == 0.1 and cfg.qkv_bias and cfg.to_dict() == {**SPEC_DICT, "qkv_bias": True}
    assert GPTConfig.coerce(cfg.to_dict()) == cfg


@pytest.mark.parametrize("missing", [list(REQUIRED), ["n_heads"], ["vocab_size", "n_layers"]])
def test_a_dict_missing_sizes_names_them(missing):
    config = {k: v for k, v in SPEC_DICT.items() if k not in missing}
    with pytest.raises(ValueError, match=f"missing {', '.join(missing)}:"):
        GPTConfig.coerce(config)


def test_coerce_rejects_unknown_keys_and_types():
    with pytest.raises(ValueError, match=r"Unknown config key\(s\) \['n_embd'\]"):
        GPTConfig.coerce({**SPEC_DICT, "n_embd": 768})
    with pytest.raises(TypeError, match="config must be a GPTConfig, a preset name or a dict, got int"):
        GPTConfig.coerce(42)
    with pytest.raises(ValueError, match="Unknown preset 'gpt-huge'"):
        GPTConfig.coerce("gpt-huge")
