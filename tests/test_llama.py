"""Appendix B's Llama: its config, its parts, its KV cache, and Hugging Face checkpoints (gptcourse/llama.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from gptcourse import GPTConfig, llama_weights
from gptcourse.flops import coerce_config
from gptcourse.kv_cache import KVCache
from gptcourse.llama import (
    PRESETS,
    Llama,
    LlamaConfig,
    RMSNorm,
    apply_rope,
    from_hf_checkpoint,
    kv_cache_bytes,
    kv_cache_bytes_per_token,
    rope_angles,
)
from gptcourse.llama_rope import RopeScaling
from gptcourse.llama_weights import config_from_hf, save_hf_checkpoint
from gptcourse.weights import CheckpointError, WeightsUnavailableError

# Small and odd on purpose: 6 query heads of 8 dimensions, 2 key/value heads, a hidden width of 100.
TINY = dict(vocab_size=97, context_length=40, emb_dim=48, n_layers=3, n_heads=6, n_kv_groups=2, hidden_dim=100, rope_base=50_000.0)


# Llama 3's RoPE scaling, for TINY's 4 pairs (wavelengths 6, 94, 1,404, 21,000 tokens):
# pair 0 keeps its speed (< 100/4), pair 1 is blended, pairs 2 and 3 turn 4 times slower (> 100).
LLAMA3 = dict(factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0, original_context_length=100)


def tiny(**overrides) -> LlamaConfig:
    return LlamaConfig(**{**TINY, **overrides})


# ------------------------------------------------------------------ the config


def test_rope_scaling_in_a_config():
    cfg = tiny(rope_scaling=LLAMA3)
    assert cfg.rope_scaling == RopeScaling(4.0, 1.0, 4.0, 100) and LlamaConfig.coerce(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"rope_scaling needs exactly the keys .*missing \['original_context_length'\]"):
        tiny(rope_scaling=dict(factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0))
    with pytest.raises(TypeError, match="rope_scaling must be None, a RopeScaling or a dict"):
        tiny(rope_scaling=4.0)
    slow = Llama(cfg).cos[-1] != Llama(tiny()).cos[-1]  # the slow pairs turn slower; pair 0 (fast) keeps its speed
    assert slow.any() and not slow[0]


def test_config_accepts_dicts_presets_and_configs():
    cfg = tiny()
    assert LlamaConfig.coerce(TINY) == cfg == LlamaConfig.coerce(cfg)
    assert cfg.head_dim == 8 and cfg.group_size == 3
    assert cfg.rope_base == 50_000.0 and cfg.tie_embeddings is False and cfg.norm_eps == 1e-5
    assert LlamaConfig.coerce("smollm2-135m") == PRESETS["smollm2-135m"]
    assert LlamaConfig.from_preset("smollm2-135m", context_length=2048).context_length == 2048
    assert LlamaConfig.coerce(cfg.to_dict()) == cfg
    assert coerce_config(TINY) == cfg and coerce_config("gpt2-small") == GPTConfig()  # a dict without n_kv_groups is a GPT's


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (dict(emb_dim=50), ValueError, r"emb_dim \(50\) must be divisible by n_heads \(6\)"),
        (dict(n_kv_groups=4), ValueError, r"n_heads \(6\) must be divisible by n_kv_groups \(4\).*\[1, 2, 3, 6\]"),
        (dict(n_kv_groups=12), ValueError, r"must be divisible by n_kv_groups \(12\)"),
        (dict(emb_dim=42), ValueError, r"emb_dim // n_heads = 7 must be even: RoPE"),
        (dict(rope_base=1.0), ValueError, r"rope_base must be > 1"),
        (dict(rope_base=float("nan")), ValueError, r"rope_base must be a finite number"),
        (dict(tie_embeddings=1), TypeError, r"tie_embeddings must be True or False"),
        (dict(norm_eps=0.0), ValueError, r"norm_eps must be > 0"),
        (dict(hidden_dim=0), ValueError, r"hidden_dim must be a positive int, got 0"),
        (dict(n_kv_groups=2.0), TypeError, r"n_kv_groups must be a positive int"),
    ],
)
def test_bad_configs_say_what_is_wrong(overrides, error, message):
    with pytest.raises(error, match=message):
        tiny(**overrides)


def test_bad_dicts_and_names():
    with pytest.raises(ValueError, match="missing n_kv_groups, hidden_dim"):
        LlamaConfig.coerce({k: v for k, v in TINY.items() if k not in ("n_kv_groups", "hidden_dim")})
    with pytest.raises(ValueError, match=r"Unknown config key\(s\) \['drop_rate'\]"):
        LlamaConfig.coerce({**TINY, "drop_rate": 0.1})
    with pytest.raises(ValueError, match="Unknown preset 'llama-7b'"):
        LlamaConfig.from_preset("llama-7b")
    with pytest.raises(TypeError, match="got int"):
        LlamaConfig.coerce(3)


# The published shapes: HuggingFaceTB/SmolLM2-135M's and meta-llama/Llama-3.2-1B's config.json.
@pytest.mark.parametrize(("preset", "expected"), [("smollm2-135m", 134_515_008), ("llama-3.2-1b", 1_235_814_400)])
def test_parameter_counts_of_real_shapes_on_the_meta_device(preset, expected):
    with torch.device("meta"):
        model = Llama(preset)
    assert next(model.parameters()).device.type == "meta"
    assert model.num_parameters() == expected


# ------------------------------------------------------------------ the parts


def test_no_biases_and_no_position_table():
    model = Llama(tiny())
    assert all(not name.endswith("bias") for name, _ in model.named_parameters())
    assert not any("pos" in name for name, _ in model.named_parameters())
    assert "cos" not in model.state_dict() and "sin" not in model.state_dict()  # derived from the config, not weights
    att = model.trf_blocks[0].att
    assert att.W_key.weight.shape == att.W_value.weight.shape == (2 * 8, 48)  # n_kv_groups heads, not n_heads


def test_rmsnorm_is_x_over_its_root_mean_square():
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        norm.scale.uniform_(0.5, 2.0)
    x = torch.randn(3, 5, 16) * 4 + 1
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * norm.scale
    torch.testing.assert_close(norm(x), expected)
    assert norm.bfloat16()(x.bfloat16()).dtype == torch.bfloat16  # a bf16 model stays bf16


def test_rmsnorm_computes_in_float32_as_transformers_does(transformers):
    """In bf16, ours equals transformers' LlamaRMSNorm bit for bit; one computed in bf16 throughout does not."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    torch.manual_seed(0)
    ours, theirs = RMSNorm(256, eps=1e-6), LlamaRMSNorm(256, eps=1e-6)
    with torch.no_grad():
        ours.scale.uniform_(0.5, 1.5)
        theirs.weight.copy_(ours.scale)
    ours, theirs = ours.bfloat16(), theirs.bfloat16()
    x = (torch.randn(8, 64, 256) * 3 + 1).bfloat16()
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
        in_bf16 = ours.scale * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + ours.eps))  # no upcast
        assert not torch.equal(in_bf16, theirs(x))


def test_rope_scores_depend_only_on_the_distance():
    torch.manual_seed(0)
    hd = 16
    cos, sin = rope_angles(hd, 2048, base=10_000.0)
    q, k = torch.randn(hd), torch.randn(hd)

    def score(m, n):
        return apply_rope(q, cos[m], sin[m]) @ apply_rope(k, cos[n], sin[n])

    for gap in (0, 3, 100):
        scores = torch.stack([score(m + gap, m) for m in (0, 7, 500, 1900)])
        torch.testing.assert_close(scores, scores[:1].expand(4), atol=1e-4, rtol=1e-4)
    assert not torch.isclose(score(10, 7), score(10, 6))  # and it does depend on the distance
    torch.testing.assert_close(apply_rope(q, cos[0], sin[0]), q)  # position 0 is not turned
    torch.testing.assert_close(apply_rope(q, cos[9], sin[9]).norm(), q.norm())  # a rotation keeps lengths


def test_sdpa_and_manual_attention_agree(monkeypatch):
    torch.manual_seed(0)
    fused = Llama(tiny(), attention="sdpa").eval()
    manual = Llama(tiny(), attention="manual").eval()
    manual.load_state_dict(fused.state_dict())
    idx = torch.randint(0, 97, (2, 23))
    with torch.no_grad():
        expected = manual(idx)
        torch.testing.assert_close(fused(idx), expected, atol=1e-5, rtol=1e-5)
        monkeypatch.setattr("gptcourse.llama._SDPA_GQA", False)  # torch < 2.5: K and V repeated by hand
        torch.testing.assert_close(fused(idx), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="Unknown attention 'flash'"):
        Llama(tiny(), attention="flash")


def test_forward_checks_shapes_and_runs_on_meta():
    model = Llama(tiny())
    with pytest.raises(ValueError, match=r"shape \(batch, tokens\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="context_length, 40"):
        model(torch.zeros(1, 41, dtype=torch.long))
    with torch.device("meta"):
        big = Llama("smollm2-135m")
        assert big(torch.zeros(2, 300, dtype=torch.long)).shape == (2, 300, 49152)


# ------------------------------------------------------------------ the KV cache


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_incremental_decoding_gives_the_full_forward_logits(attention):
    torch.manual_seed(0)
    model = Llama(tiny(), attention=attention).eval()
    idx = torch.randint(0, 97, (2, 30))
    with torch.no_grad():
        full = model(idx)
        cache = KVCache(model.config.n_layers)
        pieces = [model(idx[:, :11], cache=cache), model(idx[:, 11:12], cache=cache), model(idx[:, 12:20], cache=cache)]
        pieces += [model(idx[:, t : t + 1], cache=cache) for t in range(20, 30)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.keys[0].shape == (2, 2, 30, 8)  # (batch, n_kv_groups, tokens, head_dim)


def test_cached_generation_equals_uncached_also_past_the_context():
    torch.manual_seed(0)
    model = Llama(tiny(context_length=16)).eval()
    prompt = torch.randint(0, 97, (2, 5))
    for new in (8, 20):  # 20 slides the window past the context of 16
        cached = model.generate(prompt, max_new_tokens=new)
        plain = model.generate(prompt, max_new_tokens=new, use_cache=False)
        assert torch.equal(cached, plain)
        assert cached.shape == (2, 5 + new)
    sampled = [model.generate(prompt[0], 6, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    assert torch.equal(*sampled) and sampled[0].shape == (11,)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.generate(torch.tensor([1, 97]), 2)


def test_generation_keeps_the_mode_and_runs_one_token_per_step_with_the_cache(forward_calls):
    model = Llama(tiny(context_length=8))
    model.train()
    calls = forward_calls(model)
    model.generate(torch.tensor([1, 2, 3]), 7)
    assert model.training
    # The prompt once, then one token per step after the cached ones; past the context
    # of 8 every position moves, so each step restarts the cache on the last 8 tokens.
    assert calls == [(3, 0), (1, 3), (1, 4), (1, 5), (1, 6), (1, 7), (8, 0)]
    calls.clear()
    model.generate(torch.tensor([1, 2, 3]), 2, use_cache=False)
    assert calls == [(3, None), (4, None)]


def test_cache_overflow_and_layer_mismatch_are_clear_errors():
    model = Llama(tiny()).eval()
    cache = KVCache(3)
    model(torch.zeros(1, 38, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="The cache holds 38 tokens; 3 more would pass the context length 40"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match=r"cache has 2 layers but the model has 3; use KVCache\(model.config.n_layers\)"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=KVCache(2))


@pytest.mark.parametrize("n_kv_groups", [6, 3, 2, 1])
def test_the_cache_shrinks_by_n_heads_over_n_kv_groups(n_kv_groups):
    cfg = tiny(n_kv_groups=n_kv_groups)
    model = Llama(cfg).eval()
    cache = KVCache(cfg.n_layers)
    with torch.no_grad():
        model(torch.randint(0, 97, (1, 25)), cache=cache)
    measured = kv_cache_bytes(cache)
    assert measured == 2 * cfg.n_layers * 25 * n_kv_groups * cfg.head_dim * 4  # K and V, fp32
    assert measured == 25 * kv_cache_bytes_per_token(cfg, torch.float32)
    multi_head = 25 * kv_cache_bytes_per_token(tiny(n_kv_groups=6), torch.float32)
    assert measured * (cfg.n_heads // n_kv_groups) == multi_head


def test_kv_cache_bytes_per_token_of_real_shapes():
    # bf16, 2 bytes: 2 (K, V) · layers · key/value heads · head_dim · 2
    assert kv_cache_bytes_per_token("smollm2-135m") == 2 * 30 * 3 * 64 * 2 == 23_040
    assert kv_cache_bytes_per_token("llama-3.2-1b") == 2 * 16 * 8 * 64 * 2 == 32_768
    assert kv_cache_bytes_per_token("gpt2-small", torch.float32) == 2 * 12 * 768 * 4  # GPT-2: every head has its K, V


# ------------------------------------------------------------------ Hugging Face checkpoints

@pytest.fixture(scope="module")
def transformers():
    """Hugging Face transformers, the reference; the tests that need it are skipped without it."""
    return pytest.importorskip("transformers")


# (our sizes, tied?): GQA, multi-head (n_kv = n_heads) and multi-query (n_kv = 1), tied and not.
HF_CASES = {
    "gqa-tied": dict(TINY, tie_embeddings=True),
    # Llama 3's RoPE scaling, trained on 100 tokens and stretched to 400; ε = 1e-6
    "gqa-llama3-untied": dict(TINY, context_length=400, rope_scaling=LLAMA3, norm_eps=1e-6),
    "mha-untied": dict(TINY, n_kv_groups=6, n_layers=2, hidden_dim=70),
    "mqa-untied": dict(TINY, n_kv_groups=1, emb_dim=36, n_heads=3, hidden_dim=58, vocab_size=61),
}


def hf_model(transformers, cfg: LlamaConfig, seed: int = 0):
    """A random transformers LlamaForCausalLM of our size, its norm scales random too (not all 1)."""
    torch.manual_seed(seed)
    rope = {"rope_type": "default", "rope_theta": cfg.rope_base}
    if cfg.rope_scaling is not None:  # transformers' own names, not config_to_hf's output
        scaling = dataclasses.asdict(cfg.rope_scaling)
        scaling["original_max_position_embeddings"] = scaling.pop("original_context_length")
        rope.update(scaling, rope_type="llama3")
    hf_cfg = transformers.LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.emb_dim,
        intermediate_size=cfg.hidden_dim,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_groups,
        max_position_embeddings=cfg.context_length,
        rope_parameters=rope,
        rms_norm_eps=cfg.norm_eps,
        tie_word_embeddings=cfg.tie_embeddings,
        initializer_range=0.1,  # attention far from uniform: RoPE's angles show in the logits
    )
    model = transformers.LlamaForCausalLM(hf_cfg).eval()
    assert model.config.rope_parameters["rope_type"] == ("default" if cfg.rope_scaling is None else "llama3")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)
    return model


def hf_logits(model, idx):
    with torch.no_grad():
        return model(input_ids=idx).logits


@pytest.mark.parametrize("case", HF_CASES)
def test_logits_equal_transformers(transformers, case, tmp_path):
    cfg = LlamaConfig(**HF_CASES[case])
    reference = hf_model(transformers, cfg)
    reference.save_pretrained(tmp_path, safe_serialization=True)
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.context_length))
    expected = hf_logits(reference, idx)
    for attention in ("sdpa", "manual"):
        model = from_hf_checkpoint(tmp_path, attention=attention)
        assert model.config == cfg and not model.training
        with torch.no_grad():
            torch.testing.assert_close(model(idx), expected, atol=1e-4, rtol=0, msg=f"{case}, attention={attention}")
    with torch.no_grad():  # and decoding with the cache: the last position's logits
        cache = KVCache(cfg.n_layers)
        model(idx[:, :-1], cache=cache)
        torch.testing.assert_close(model(idx[:, -1:], cache=cache)[:, 0], expected[:, -1], atol=1e-4, rtol=0)


def test_llama3_scaling_matters_and_round_trips(transformers, tmp_path):
    """Without its RoPE scaling the llama3 case's logits differ: the test above would catch a loader that drops it."""
    cfg = LlamaConfig(**HF_CASES["gqa-llama3-untied"])
    reference = hf_model(transformers, cfg)
    idx = torch.randint(0, cfg.vocab_size, (1, cfg.context_length), generator=torch.Generator().manual_seed(0))
    unscaled = Llama(dataclasses.replace(cfg, rope_scaling=None)).eval()
    unscaled.load_state_dict(llama_weights.hf_to_ours(reference.state_dict(), cfg.n_layers, False)[0])
    with torch.no_grad():
        assert (unscaled(idx) - hf_logits(reference, idx)).abs().max() > 0.1
    ours = Llama(cfg).eval()
    save_hf_checkpoint(ours, tmp_path)  # and ours, saved, is read by transformers with the same scaling
    theirs = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert theirs.config.rope_parameters["rope_type"] == "llama3"
    with torch.no_grad():
        torch.testing.assert_close(hf_logits(theirs, idx), ours(idx), atol=1e-4, rtol=0)
    assert from_hf_checkpoint(tmp_path).config == cfg


def test_the_llama_3_2_1b_preset_reads_its_config_json():
    # meta-llama/Llama-3.2-1B's config.json, its RoPE entries in transformers 4's spelling
    hf_config = dict(
        vocab_size=128256, max_position_embeddings=131072, hidden_size=2048, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, intermediate_size=8192, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=True, head_dim=64, hidden_act="silu", model_type="llama",
        rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    )
    assert LlamaConfig(**config_from_hf(hf_config)) == PRESETS["llama-3.2-1b"]
    assert LlamaConfig.coerce(PRESETS["llama-3.2-1b"].to_dict()) == PRESETS["llama-3.2-1b"]  # the scaling survives a dict


def test_sharded_checkpoints_and_transformers_4_configs(transformers, tmp_path):
    cfg = tiny()
    reference = hf_model(transformers, cfg, seed=1)
    reference.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    config_file = tmp_path / "config.json"
    hf_config = json.loads(config_file.read_text())
    # transformers 4 wrote RoPE's base at the top level, next to rope_scaling
    del hf_config["rope_parameters"]
    hf_config.update(rope_theta=50_000.0, rope_scaling=None)
    config_file.write_text(json.dumps(hf_config))
    idx = torch.randint(0, 97, (1, 17))
    with torch.no_grad():
        torch.testing.assert_close(from_hf_checkpoint(tmp_path)(idx), hf_logits(reference, idx), atol=1e-4, rtol=0)


def test_our_checkpoints_load_in_transformers(transformers, tmp_path):
    torch.manual_seed(0)
    ours = Llama(tiny(tie_embeddings=True)).eval()
    save_hf_checkpoint(ours, tmp_path)
    theirs = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf_logits(theirs, idx), atol=1e-4, rtol=0)
    torch.testing.assert_close(from_hf_checkpoint(tmp_path)(idx), ours(idx))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small checkpoint, saved once, for the tests that break it."""
    path = tmp_path_factory.mktemp("llama")
    save_hf_checkpoint(Llama(tiny()), path)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(rope_parameters={"rope_type": "yarn", "rope_theta": 5e5, "factor": 32.0}), "RoPE scaling of type 'yarn'"),
        (dict(rope_parameters={"rope_type": "llama3", "rope_theta": 5e5, "factor": 32.0}), "'llama3' needs .*missing low_freq_factor, high_freq_factor, original_max_position_embeddings"),
        (dict(rope_parameters=None, rope_scaling={"type": "linear", "factor": 2.0}), "RoPE scaling of type 'linear'"),
        (dict(attention_bias=True), "attention_bias=True: our Llama has no biases"),
        (dict(mlp_bias=True), "mlp_bias=True"),
        (dict(hidden_act="gelu"), "hidden_act='gelu'"),
        (dict(head_dim=16), "head_dim=16 with 6 heads is not hidden_size=48"),
        (dict(model_type="mistral"), "'mistral' checkpoint"),
        (dict(num_key_value_heads=4), r"n_heads \(6\) must be divisible by n_kv_groups \(4\)"),
    ],
)
def test_unsupported_configs_are_refused(saved, tmp_path, change, message):
    hf_config = json.loads((saved / "config.json").read_text())
    hf_config.update(change)
    (tmp_path / "config.json").write_text(json.dumps(hf_config))
    (tmp_path / "model.safetensors").symlink_to(saved / "model.safetensors")
    with pytest.raises((CheckpointError, ValueError), match=message):
        from_hf_checkpoint(tmp_path)


def test_wrong_tensors_are_named(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(saved / "model.safetensors")
    hf_config = json.loads((saved / "config.json").read_text())
    cases = {
        "missing tensors: model.layers.1.mlp.up_proj.weight": {k: v for k, v in tensors.items() if k != "model.layers.1.mlp.up_proj.weight"},
        "unexpected tensors: model.layers.3.mlp.up_proj.weight": {**tensors, "model.layers.3.mlp.up_proj.weight": torch.zeros(1)},
        r"model.layers.0.self_attn.k_proj.weight → trf_blocks.0.att.W_key.weight: \(48, 48\) from the checkpoint, \(16, 48\) in the model": {
            **tensors,
            "model.layers.0.self_attn.k_proj.weight": torch.zeros(48, 48),
        },
    }
    for message, broken in cases.items():
        (tmp_path / "config.json").write_text(json.dumps(hf_config))
        save_file(broken, tmp_path / "model.safetensors")
        with pytest.raises(CheckpointError, match=message):
            from_hf_checkpoint(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="No config.json"):
        from_hf_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="No checkpoint directory"):
        from_hf_checkpoint(tmp_path / "nowhere")


def test_config_from_hf_defaults_are_transformers():
    fields = config_from_hf(dict(vocab_size=10, max_position_embeddings=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20))
    cfg = LlamaConfig(**fields)
    assert (cfg.n_kv_groups, cfg.rope_base, cfg.tie_embeddings, cfg.norm_eps, cfg.rope_scaling) == (2, 10_000.0, False, 1e-6, None)
    assert dataclasses.replace(cfg, norm_eps=1e-5) == LlamaConfig(**{**fields, "norm_eps": 1e-5})


def test_downloads_fail_fast_offline(tmp_path, monkeypatch):
    repo = "HuggingFaceTB/SmolLM2-135M"
    assert not llama_weights.is_cached(repo, cache_dir=tmp_path)
    with pytest.raises(WeightsUnavailableError, match="downloads are switched off"):
        llama_weights.download_checkpoint(repo, cache_dir=tmp_path, local_files_only=True)
    monkeypatch.setattr("gptcourse.weights.reachable", lambda url, timeout=3.0: False)  # as offline, at once
    with pytest.raises(WeightsUnavailableError, match=r"cannot be reached|switched off.*\n.*hf_hub_download"):
        llama_weights.download_checkpoint(repo, cache_dir=tmp_path)


def test_last_only_gives_the_last_positions_logits():
    model = Llama("llama-nano").eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full, last = model(ids), model(ids, last_only=True)
    assert last.shape == (2, 1, model.config.vocab_size)
    torch.testing.assert_close(last[:, 0], full[:, -1])
