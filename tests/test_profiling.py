"""Profiling a training step by op class (appendix C): every op counted once, in its class."""

from __future__ import annotations

import json

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.flops import count_flops
from gptcourse.kv_cache import KVCache
from gptcourse.profiling import (
    FLOP_CLASSES,
    MATMUL_CLASSES,
    OP_CLASSES,
    flops_by_class,
    profile_call,
    profile_training_step,
)

TINY = GPTConfig(vocab_size=97, context_length=32, emb_dim=32, n_heads=4, n_layers=2)


def tiny_model(attention: str) -> GPT:
    torch.manual_seed(0)
    return GPT(TINY, attention=attention)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, TINY.vocab_size, (2, 17), generator=generator)
    return ids[:, :-1], ids[:, 1:]


@pytest.fixture(scope="module")
def steps() -> dict[str, object]:
    """One profiled training step of each attention kind, shared by the tests."""
    inputs, targets = batch()
    return {kind: profile_training_step(tiny_model(kind), inputs, targets, repeats=1, warmup=1) for kind in ("manual", "sdpa")}


@pytest.mark.parametrize("kind", ["manual", "sdpa"])
def test_classes_cover_every_op_once(steps, kind):
    profile = steps[kind]
    assert list(profile.seconds) == list(OP_CLASSES)
    assert profile.total == pytest.approx(sum(profile.ops.values()), rel=1e-9)
    # Self times on one thread are disjoint pieces of the call: counted twice, they
    # would add up to more than the call took; counted once, to most of it.
    assert 0.3 * profile.wall_seconds < profile.total <= profile.wall_seconds
    rows = profile.rows()
    assert [row["key"] for row in rows] == [key for key in OP_CLASSES if profile.seconds[key] > 0]
    assert sum(row["share"] for row in rows) == pytest.approx(1.0)
    assert profile.matmul_seconds == pytest.approx(sum(profile.seconds[k] for k in MATMUL_CLASSES))


def test_manual_attention_is_matmuls_and_softmax(steps):
    profile = steps["manual"]
    assert profile.seconds["attn_matmul"] > 0 and profile.seconds["softmax"] > 0
    assert profile.seconds["attn_kernel"] == 0 and profile.attention_kernel is None


def test_sdpa_attention_is_one_kernel(steps):
    profile = steps["sdpa"]
    assert profile.seconds["attn_kernel"] > 0
    assert profile.seconds["attn_matmul"] == 0 and profile.seconds["softmax"] == 0
    assert profile.attention_kernel.startswith("aten::_scaled_dot_product")
    assert profile.device == "cpu" and "CPU" in profile.timer


@pytest.mark.parametrize("kind", ["manual", "sdpa"])
def test_training_step_has_backward_loss_optimizer_and_data(steps, kind):
    model = tiny_model(kind)
    inputs, _ = batch()
    forward = profile_call(model, lambda: model(inputs), repeats=1, warmup=1)
    step = steps[kind]
    # Both see the projections. (Not "the step's are longer": its backward has 2× the
    # forward's FLOPs, but these ops take a tenth of a millisecond, and on a loaded
    # machine one forward can outlast them; times are benchmarks' business, not tests'.)
    for key in ("qkv", "mlp", "lm_head"):
        assert step.seconds[key] > 0 and forward.seconds[key] > 0, key
    for key in ("loss", "optimizer", "data"):
        assert step.seconds[key] > 0, key
        assert forward.seconds[key] == 0, key
    backward = [name for name in step.ops if name.startswith("autograd::engine::evaluate_function")]
    assert backward


def test_decode_step_with_a_cache_is_profiled():
    model = tiny_model("sdpa").eval()
    inputs, _ = batch()
    cache = KVCache(TINY.n_layers)
    with torch.no_grad():
        model(inputs[:, :8], cache=cache)
        prompt = list(cache.keys), list(cache.values)

        def decode() -> None:
            model(inputs[:, 8:9], cache=cache)
            cache.keys, cache.values = list(prompt[0]), list(prompt[1])  # the same step again

        profile = profile_call(model, decode, repeats=2, warmup=1)
    assert profile.seconds["qkv"] > 0 and profile.seconds["lm_head"] > 0
    assert profile.attention_kernel is not None


def forward_hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_are_removed_even_after_an_error():
    model = tiny_model("manual")
    inputs, targets = batch()
    profile_training_step(model, inputs, targets, repeats=1, warmup=0)
    assert forward_hooks(model) == 0

    def broken() -> None:
        model(inputs)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        profile_call(model, broken, repeats=1, warmup=0)
    assert forward_hooks(model) == 0
    outside = torch.full_like(inputs, TINY.vocab_size)  # fails inside tok_emb, a scope open
    with pytest.raises(ValueError, match="vocab_size"):
        profile_call(model, lambda: model(outside), repeats=1, warmup=0)
    assert forward_hooks(model) == 0


def test_trace_is_written_as_chrome_json(tmp_path):
    model = tiny_model("sdpa")
    inputs, _ = batch()
    path = tmp_path / "traces" / "forward.json"
    profile = profile_call(model, lambda: model(inputs), repeats=1, warmup=0, trace_path=path)
    assert profile.trace_path == path
    events = json.loads(path.read_text())["traceEvents"]
    assert any(event.get("name") == "gptcourse::qkv" for event in events)


@pytest.mark.parametrize("attention, moved", [("sdpa", "attn_kernel"), ("manual", "attn_matmul")])
def test_flops_by_class_sums_to_the_count(attention, moved):
    count = count_flops(TINY, batch_size=2, seq_len=16, training=True)
    flops = flops_by_class(count, attention)
    assert sum(flops.values()) == count.total
    assert set(flops) <= set(MATMUL_CLASSES)
    assert flops[moved] == count.n_layers * (count.attn_scores + count.attn_values)
    other = {"sdpa": "attn_matmul", "manual": "attn_kernel"}[attention]
    assert other not in flops
    assert flops["mlp"] == count.n_layers * (count.ff_up + count.ff_down)
    assert set(FLOP_CLASSES.values()) <= set(OP_CLASSES)


def test_bad_inputs_name_the_problem():
    model = tiny_model("sdpa")
    inputs, targets = batch()
    with pytest.raises(ValueError, match="repeats"):
        profile_call(model, lambda: model(inputs), repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        profile_training_step(model, inputs, targets, warmup=-1)
    with pytest.raises(TypeError, match="fn"):
        profile_call(model, model(inputs))
    with pytest.raises(ValueError, match="attention"):
        flops_by_class(count_flops(TINY, 1, 8), "flash")
    with pytest.raises(ValueError, match="scope"):
        profile_call(model, lambda: model(inputs), scopes={"matmuls": lambda name, module: True})
    with pytest.raises(ValueError, match="batches ran out"):
        profile_training_step(model, inputs, targets, repeats=1, warmup=1, batches=iter([(inputs, targets)]))
    assert forward_hooks(model) == 0
