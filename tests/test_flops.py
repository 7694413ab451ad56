"""The analytic FLOP count equals torch's FlopCounterMode, FLOP for FLOP (chapter 9)."""

from __future__ import annotations

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.flops import (
    COMPONENTS,
    attention_crossover,
    batch_shape,
    calculate_flops,
    causal_flops,
    count_flops,
    flop_counter_flops,
    flop_counter_flops_by_operator,
    flops_per_token_6n,
    flops_per_token_palm,
    meta_model,
    model_config,
    num_parameters,
)
from gptcourse.weights import config_to_hf

# (config, batch_size, seq_len): odd shapes on purpose. Small vocabularies and widths keep
# each real forward + backward on the CPU to a few milliseconds.
CASES = [
    (dict(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2), 2, 16),
    (dict(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2), 1, 16),
    (dict(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2), 3, 7),
    (dict(vocab_size=5, context_length=8, emb_dim=8, n_heads=1, n_layers=1), 1, 8),  # tiny vocab, 1 head, 1 layer
    (dict(vocab_size=5, context_length=8, emb_dim=8, n_heads=1, n_layers=1), 1, 1),  # a single token
    (dict(vocab_size=5, context_length=8, emb_dim=8, n_heads=1, n_layers=1, qkv_bias=False), 3, 5),
    (dict(vocab_size=50, context_length=20, emb_dim=30, n_heads=3, n_layers=1), 2, 20),  # width not a power of 2
    (dict(vocab_size=50, context_length=20, emb_dim=30, n_heads=5, n_layers=3, qkv_bias=False), 3, 13),
    (dict(vocab_size=50, context_length=20, emb_dim=30, n_heads=30, n_layers=2), 1, 11),  # head_dim 1
    (dict(vocab_size=211, context_length=33, emb_dim=24, n_heads=6, n_layers=3), 1, 33),
    (dict(vocab_size=211, context_length=33, emb_dim=24, n_heads=6, n_layers=3), 2, 2),
    (dict(vocab_size=2, context_length=12, emb_dim=12, n_heads=2, n_layers=4), 3, 12),  # vocabulary of 2
    (dict(vocab_size=300, context_length=64, emb_dim=48, n_heads=4, n_layers=2, qkv_bias=False), 1, 64),
    (dict(vocab_size=300, context_length=64, emb_dim=48, n_heads=12, n_layers=1), 3, 31),
    (dict(vocab_size=128, context_length=40, emb_dim=40, n_heads=8, n_layers=2, drop_rate=0.1), 2, 40),  # dropout on
    (dict(vocab_size=1000, context_length=10, emb_dim=20, n_heads=4, n_layers=5), 1, 10),  # head ≫ layers
    (dict(vocab_size=64, context_length=96, emb_dim=16, n_heads=2, n_layers=2), 1, 96),  # attention ≫ rest
    (dict(vocab_size=64, context_length=96, emb_dim=16, n_heads=2, n_layers=2), 3, 50),
    (dict(vocab_size=31, context_length=9, emb_dim=18, n_heads=9, n_layers=6, qkv_bias=False), 2, 9),
    (dict(vocab_size=31, context_length=9, emb_dim=18, n_heads=3, n_layers=1, drop_rate=0.2), 1, 4),
    (dict(vocab_size=257, context_length=24, emb_dim=56, n_heads=7, n_layers=2), 3, 24),
    (dict(vocab_size=257, context_length=24, emb_dim=56, n_heads=1, n_layers=3), 2, 17),
    (dict(vocab_size=50257, context_length=32, emb_dim=64, n_heads=4, n_layers=2), 1, 32),  # GPT-2's vocabulary
    (dict(vocab_size=50304, context_length=16, emb_dim=32, n_heads=2, n_layers=1), 1, 16),  # padded to a multiple of 64
]


def _case_id(case) -> str:
    c, b, t = case
    return f"L{c['n_layers']}-h{c['n_heads']}-d{c['emb_dim']}-V{c['vocab_size']}-B{b}-T{t}" + ("" if c.get("qkv_bias", True) else "-nobias")


@pytest.mark.parametrize("training", [False, True], ids=["forward", "forward+backward"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_count_equals_flop_counter_mode(case, training):
    config, batch_size, seq_len = case
    torch.manual_seed(0)
    model = GPT(config, attention="manual")
    expected = count_flops(config, batch_size, seq_len, training=training).total
    counted = flop_counter_flops(model, batch_size, seq_len, training=training)
    assert counted == expected, f"FlopCounterMode counted {counted:,}, the analytic count says {expected:,}"


@pytest.mark.parametrize("preset", ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"])
def test_gpt2_sizes_on_meta_device(preset):
    # No patch: GPT.forward reads only shapes, which meta tensors have.
    model = meta_model(preset)
    assert next(model.parameters()).device.type == "meta"
    for batch_size, seq_len, training in [(1, 1024, True), (2, 300, False)]:
        expected = count_flops(preset, batch_size, seq_len, training=training).total
        assert flop_counter_flops(model, batch_size, seq_len, training=training) == expected


def test_components_per_operator():
    config = GPTConfig(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2)
    count = count_flops(config, 2, 16, training=False)
    ops = flop_counter_flops_by_operator(GPT(config, attention="manual"), 2, 16, training=False)
    layers = config.n_layers
    # Linear layers with a bias run as addmm, those without (the LM head) as mm, attention as bmm.
    assert ops["aten.bmm"] == layers * (count.attn_scores + count.attn_values)
    assert ops["aten.addmm"] == layers * (count.qkv_proj + count.out_proj + count.ff_up + count.ff_down)
    assert ops["aten.mm"] == count.lm_head


def test_sdpa_on_cpu_is_not_counted_and_is_reconciled():
    config = GPTConfig(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2)
    model = GPT(config, attention="sdpa")
    for training in (False, True):
        count = count_flops(config, 2, 16, training=training)
        plain = flop_counter_flops(model, 2, 16, training=training)
        if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
            # The CPU kernel has no flop formula: attention's matmuls vanish from the count.
            assert plain == count.total - count.attention_matrix
        assert flop_counter_flops(model, 2, 16, training=training, count_cpu_sdpa=True) == count.total


def test_sdpa_on_meta_device_falls_back_to_counted_matmuls():
    model = meta_model("gpt2-small", attention="sdpa")
    assert flop_counter_flops(model, 1, 128) == count_flops("gpt2-small", 1, 128).total


def test_breakdown_adds_up():
    count = count_flops("gpt2-small", batch_size=4, seq_len=512)
    assert sum(count.components().values()) == count.total
    assert set(count.components()) == set(COMPONENTS)
    assert count.forward_total * 3 == count.total
    assert count.backward_total == 2 * count.forward_total
    assert sum(row["total"] for row in count.rows()) == count.total
    assert abs(sum(row["share"] for row in count.rows()) - 1) < 1e-12
    forward = count_flops("gpt2-small", batch_size=4, seq_len=512, training=False)
    assert forward.total == count.forward_total and forward.backward_total == 0


def test_seq_len_defaults_to_context_and_is_checked():
    assert count_flops("gpt-nano").seq_len == 64
    assert batch_shape("gpt-nano", 3) == (3, 64)
    with pytest.raises(ValueError, match=r"seq_len must be at most the context length, 64, got 65"):
        count_flops("gpt-nano", seq_len=65)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        count_flops("gpt-nano", batch_size=0)
    with pytest.raises(TypeError, match="seq_len must be a positive int"):
        count_flops("gpt-nano", seq_len=2.5)
    with pytest.raises(ValueError, match="seq_len"):  # the real pass is checked the same way
        flop_counter_flops(meta_model("gpt-nano"), 1, 65)


def test_the_config_comes_from_the_model_or_is_asked_for():
    model = meta_model("gpt-nano")
    assert model_config(model) == model.config == model_config(None, "gpt-nano")
    with pytest.raises(ValueError, match="config"):
        calculate_flops(torch.nn.Linear(2, 2))


def test_calculate_flops_is_one_full_sequence_forward_and_backward():
    config = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_layers": 12, "n_heads": 12, "drop_rate": 0.1}
    model = meta_model(config)
    assert calculate_flops(model, config) == count_flops(config, 1, 1024, training=True).total == 874_944_921_600
    assert calculate_flops(model) == calculate_flops(None, config)


@pytest.mark.parametrize("preset", ["gpt-nano", "gpt2-small", "gpt2-xl"])
def test_parameter_counts(preset):
    model = meta_model(preset)
    assert num_parameters(preset, "all") == model.num_parameters()
    assert num_parameters(preset, "no_position") == model.num_parameters(exclude_position_embeddings=True)
    cfg = model.config
    assert num_parameters(preset, "non_embedding") == num_parameters(preset, "no_position") - cfg.vocab_size * cfg.emb_dim
    matmul_weights = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and "emb" not in name)
    assert num_parameters(preset, "matmul") == matmul_weights + cfg.vocab_size * cfg.emb_dim  # + the tied head


def test_unknown_parameter_count_names_the_choices():
    with pytest.raises(ValueError, match="which.*'matmul'"):
        num_parameters("gpt-nano", "weights")


@pytest.mark.parametrize("preset", ["gpt-nano", "gpt2-small", "gpt2-large"])
def test_rules_of_thumb(preset):
    cfg = GPTConfig.from_preset(preset)
    exact = count_flops(cfg).per_token
    assert flops_per_token_palm(cfg) == exact  # 6N + 12·L·d·T with N = the matmul weights
    assert flops_per_token_6n(cfg) < exact  # 6N leaves out attention's T×T work
    assert causal_flops(cfg, seq_len=1) == count_flops(cfg, seq_len=1).total  # one token: nothing masked


@pytest.mark.parametrize("preset", ["gpt-nano", "gpt2-small"])
def test_causal_flops_counts_each_query_against_the_keys_it_sees(preset):
    # Counted query by query, not by the closed form: query i scores i + 1 keys (2·hd FLOPs
    # each) and mixes as many values, in every head, sequence and layer, 3× for training.
    cfg = GPTConfig.from_preset(preset)
    batch, t = 2, 37
    useful = sum(2 * 2 * cfg.head_dim * (i + 1) for i in range(t))  # scores and values
    useful *= 3 * batch * cfg.n_heads * cfg.n_layers
    full = count_flops(cfg, batch, t)
    assert causal_flops(cfg, batch, t) == full.total - full.attention_matrix + useful


@pytest.mark.parametrize("preset", ["gpt2-small", "gpt2-medium", "gpt2-xl"])
def test_attention_takes_half_the_flops_at_the_crossover(preset):
    t_star = attention_crossover(preset)

    def share(t):
        return count_flops(GPTConfig.from_preset(preset, context_length=t), 1, t).attention_share

    assert share(int(t_star)) < 0.5 <= share(int(t_star) + 1)


def test_hugging_face_gpt2_does_the_same_matmuls():
    # benchmarks/mfu.py divides both models' speed by one FLOP count: check that it is theirs too.
    transformers = pytest.importorskip("transformers")
    from torch.utils.flop_counter import FlopCounterMode

    cfg = GPTConfig(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2)
    hf_cfg = transformers.GPT2Config(**config_to_hf(cfg))
    hf_cfg._attn_implementation = "eager"  # explicit matmuls, so that FlopCounterMode sees them on a CPU
    model = transformers.GPT2LMHeadModel(hf_cfg)
    idx = torch.randint(0, 97, (2, 16))
    with FlopCounterMode(display=False) as counter:
        logits = model(input_ids=idx).logits
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
    assert counter.get_total_flops() == count_flops(cfg, 2, 16).total
