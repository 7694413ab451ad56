"""A Llama's analytic FLOP and parameter counts equal what PyTorch counts (gptcourse/llama_flops.py, gptcourse/flops.py).

The Llama's count lives with the Llama and plugs into `count_flops` from there
(`gptcourse.flops.register_family`): the core never imports the appendix.
"""

from __future__ import annotations

import pytest
import torch

from gptcourse.flops import (
    FAMILIES,
    calculate_flops,
    count_flops,
    flop_counter_flops,
    flop_counter_flops_by_operator,
    flops_per_token_6n,
    flops_per_token_palm,
    meta_model,
    num_parameters,
)
from gptcourse.llama import Llama, LlamaConfig
from gptcourse.llama_flops import LLAMA_LAYER_COMPONENTS, LlamaFlopCount, llama_matmuls


def llama(vocab, context, d, layers, heads, kv, hidden, **extra):
    return dict(vocab_size=vocab, context_length=context, emb_dim=d, n_layers=layers, n_heads=heads, n_kv_groups=kv, hidden_dim=hidden, **extra)


# (config, batch_size, seq_len): odd shapes on purpose; MHA, GQA and MQA; tied and untied heads.
CASES = [
    (llama(97, 16, 48, 2, 6, 2, 100), 2, 16),  # GQA, 3 query heads per key/value head
    (llama(97, 16, 48, 2, 6, 2, 100), 3, 7),
    (llama(97, 16, 48, 2, 6, 6, 100), 1, 16),  # multi-head: n_kv_groups = n_heads
    (llama(97, 16, 48, 2, 6, 1, 100), 2, 11),  # multi-query
    (llama(5, 8, 8, 1, 1, 1, 3), 1, 8),  # one head of 8, a hidden width of 3
    (llama(5, 8, 8, 1, 1, 1, 3), 1, 1),  # a single token
    (llama(50, 20, 30, 3, 3, 3, 77, tie_embeddings=True), 2, 20),  # width not a power of 2, tied head
    (llama(50, 20, 30, 1, 15, 5, 80), 3, 13),  # head_dim 2
    (llama(211, 33, 24, 3, 6, 3, 64, rope_base=500_000.0), 1, 33),
    (llama(2, 12, 12, 4, 2, 1, 32), 3, 12),  # vocabulary of 2
    (llama(300, 64, 64, 2, 8, 4, 171, tie_embeddings=True), 1, 64),  # ≈ 8/3·d
    (llama(64, 96, 16, 2, 2, 1, 40), 1, 96),  # attention ≫ rest
    (llama(1000, 10, 20, 5, 5, 5, 53), 2, 10),  # head ≫ layers
    (llama(257, 24, 56, 2, 14, 7, 150), 3, 24),
    (llama(49152, 32, 64, 1, 4, 2, 128, tie_embeddings=True), 1, 32),  # SmolLM2's vocabulary
]


def _case_id(case) -> str:
    c, b, t = case
    return f"L{c['n_layers']}-h{c['n_heads']}-kv{c['n_kv_groups']}-d{c['emb_dim']}-f{c['hidden_dim']}-V{c['vocab_size']}-B{b}-T{t}"


@pytest.mark.parametrize("training", [False, True], ids=["forward", "forward+backward"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_count_equals_flop_counter_mode(case, training):
    config, batch_size, seq_len = case
    torch.manual_seed(0)
    model = Llama(config, attention="manual")
    count = count_flops(LlamaConfig(**config), batch_size, seq_len, training=training)
    assert isinstance(count, LlamaFlopCount)
    counted = flop_counter_flops(model, batch_size, seq_len, training=training)
    assert counted == count.total, f"FlopCounterMode counted {counted:,}, the analytic count says {count.total:,}"


@pytest.mark.parametrize("preset", ["smollm2-135m", "llama-3.2-1b"])
def test_real_shapes_on_the_meta_device(preset):
    model = meta_model(preset)
    assert isinstance(model, Llama) and next(model.parameters()).device.type == "meta"
    for batch_size, seq_len, training in [(1, 512, True), (2, 300, False)]:
        assert flop_counter_flops(model, batch_size, seq_len, training=training) == count_flops(preset, batch_size, seq_len, training).total


def test_breakdown_names_the_gqa_and_swiglu_terms():
    cfg = LlamaConfig.from_preset("smollm2-135m")
    count = count_flops(cfg, batch_size=2, seq_len=256)
    names = [row["component"] for row in count.rows()]
    assert "key/value projections (GQA)" in names and {"SwiGLU gate", "SwiGLU up", "SwiGLU down"} <= set(names)
    assert set(count.components()) == {*LLAMA_LAYER_COMPONENTS, "lm_head"}
    assert sum(count.components().values()) == count.total == sum(row["total"] for row in count.rows())
    assert count.forward_total * 3 == count.total and count.backward_total == 2 * count.forward_total
    # GQA: K and V are n_kv_groups of n_heads heads wide, so their projections cost 2·(3/9) of Q's.
    assert count.kv_proj * cfg.n_heads == 2 * cfg.n_kv_groups * count.q_proj
    # SwiGLU: three d × hidden matrices, equal in FLOPs.
    assert count.ff_gate == count.ff_up == count.ff_down == 3 * 2 * (2 * 256) * cfg.emb_dim * cfg.hidden_dim
    # the attention matrix does not shrink with GQA: every query head scores every key
    mha = count_flops(LlamaConfig.from_preset("smollm2-135m", n_kv_groups=9), batch_size=2, seq_len=256)
    assert mha.attention_matrix == count.attention_matrix and mha.kv_proj == 3 * count.kv_proj
    rows = {row["component"]: row["matmul"] for row in count.rows()}
    assert rows["key/value projections (GQA)"] == "2 × (512×576)·(576×192)"
    assert rows["SwiGLU down"] == "(512×1536)·(1536×576)"


def test_no_biases_means_every_linear_layer_is_an_mm():
    cfg = LlamaConfig(**CASES[0][0])
    count = count_flops(cfg, 2, 16, training=False)
    ops = flop_counter_flops_by_operator(Llama(cfg, attention="manual"), 2, 16, training=False)
    assert ops.keys() == {"aten.mm", "aten.bmm"}  # no addmm: no layer has a bias
    assert ops["aten.bmm"] == count.attention_matrix
    assert ops["aten.mm"] == count.total - count.attention_matrix


def test_sdpa_with_gqa_on_cpu_is_reconciled():
    cfg = LlamaConfig(**CASES[0][0])
    model = Llama(cfg, attention="sdpa")
    for training in (False, True):
        count = count_flops(cfg, 2, 16, training=training)
        plain = flop_counter_flops(model, 2, 16, training=training)
        if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
            assert plain == count.total - count.attention_matrix  # the CPU kernel has no formula
        assert flop_counter_flops(model, 2, 16, training=training, count_cpu_sdpa=True) == count.total


def test_rope_rmsnorm_and_gating_are_not_counted():
    from torch.utils.flop_counter import FlopCounterMode

    model = Llama(LlamaConfig(**CASES[0][0]))
    block, x = model.trf_blocks[0], torch.randn(2, 16, 48)
    with FlopCounterMode(display=False) as counter:
        block.norm1(x)
        torch.nn.functional.silu(x) * x
        block.att.W_query(x)  # the one matmul here: 2·(2·16)·48·48
    assert counter.get_total_flops() == 2 * 32 * 48 * 48


@pytest.mark.parametrize("preset", ["smollm2-135m", "llama-3.2-1b", "llama-nano"])
@pytest.mark.parametrize("tied", [True, False])
def test_parameter_counts(preset, tied):
    cfg = LlamaConfig.from_preset(preset, tie_embeddings=tied)
    with torch.device("meta"):
        model = Llama(cfg)
    assert num_parameters(cfg, "all") == num_parameters(cfg, "no_position") == model.num_parameters()
    matrices = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and name != "tok_emb.weight")
    head = cfg.vocab_size * cfg.emb_dim if tied else 0  # tied: the head is tok_emb, counted once as a matmul
    assert num_parameters(cfg, "matmul") == matrices + head
    assert num_parameters(cfg, "non_embedding") == model.num_parameters() - cfg.vocab_size * cfg.emb_dim


def test_smollm2_135m_has_134_515_008_parameters():
    assert num_parameters("smollm2-135m", "all") == 134_515_008
    assert num_parameters("llama-3.2-1b", "all") == 1_235_814_400


@pytest.mark.parametrize("preset", ["smollm2-135m", "llama-nano"])
def test_rules_of_thumb(preset):
    exact = count_flops(preset).per_token
    assert flops_per_token_palm(preset) == exact  # 6N + 12·L·d·T, N = the matmul weights
    assert flops_per_token_6n(preset) < exact


def test_matmul_table_is_the_model():
    cfg = LlamaConfig(**CASES[6][0])
    table = llama_matmuls(cfg, batch_size=1, seq_len=5)
    weights = {"q_proj": "W_query", "out_proj": "out_proj", "ff_gate": "W_gate", "ff_up": "W_up", "ff_down": "W_down"}
    block = Llama(cfg).trf_blocks[0]
    modules = {**{k: getattr(block.att, v) for k, v in weights.items() if hasattr(block.att, v)}}
    modules.update({k: getattr(block.ff, v) for k, v in weights.items() if hasattr(block.ff, v)})
    for name, module in modules.items():
        copies, m, k, n = table[name]
        assert (copies, m) == (1, 5) and module.weight.shape == (n, k), name
    assert table["kv_proj"] == (2, 5, cfg.emb_dim, block.att.W_key.weight.shape[0])


def test_calculate_flops_takes_a_llama():
    model = meta_model("smollm2-135m")
    assert calculate_flops(model) == count_flops("smollm2-135m", 1, 8192, training=True).total


def test_the_llama_plugs_into_the_core_which_never_imports_it(run_python):
    # A fresh interpreter: the counts of chapter 9 load without the appendix, and know no
    # Llama until gptcourse.llama registers it.
    result = run_python(
        "import sys\n"
        "from gptcourse.flops import count_flops\n"
        "print(sorted(m for m in sys.modules if m.startswith('gptcourse.llama')))\n"
        "try:\n"
        "    count_flops('llama-nano')\n"
        "except ValueError as err:\n"
        "    print('refused:', err)\n"
        "import gptcourse.llama\n"
        "print(type(count_flops('llama-nano')).__name__)\n"
    )
    modules, refused, count = result.stdout.strip().splitlines()
    assert modules == "[]", f"gptcourse.flops imported the appendix: {modules}"
    assert refused.startswith("refused:") and "llama-nano" in refused
    assert count == "LlamaFlopCount"
    assert FAMILIES[LlamaConfig].model_class is Llama


def test_a_dict_with_n_kv_groups_is_a_llamas_config():
    cfg = LlamaConfig(**CASES[0][0])
    assert count_flops(CASES[0][0], 2, 16) == count_flops(cfg, 2, 16)
    assert type(meta_model(CASES[0][0])) is Llama
