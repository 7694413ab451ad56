"""The check against transformers, and the stand-in that makes it catch porting bugs (gptcourse/llama_check.py)."""

from __future__ import annotations

import pytest
import torch

from gptcourse import get_tokenizer, llama_weights
from gptcourse.llama import from_hf_checkpoint
from gptcourse.llama_check import PROMPT, STAND_IN, check_logits, rope_replaced, save_stand_in
from gptcourse.llama_rope import apply_rope

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """The notebook's stand-in, its prompt's ids, and transformers' logits for them."""
    path = save_stand_in(tmp_path_factory.mktemp("stand-in"))
    ids = torch.tensor([get_tokenizer().encode(PROMPT)])
    reference = transformers.LlamaForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        return path, ids, reference(input_ids=ids).logits


def logits(path, ids, rope=apply_rope):
    model = from_hf_checkpoint(path)
    with torch.no_grad(), rope_replaced(model, rope):
        return model(ids)


def test_the_stand_in_differs_from_the_defaults_and_passes(stand_in):
    path, ids, theirs = stand_in
    model = from_hf_checkpoint(path)
    assert model.config == STAND_IN
    assert not model.config.tie_embeddings and model.config.rope_scaling is not None
    assert all(not torch.equal(norm.scale, torch.ones_like(norm.scale)) for block in model.trf_blocks for norm in (block.norm1, block.norm2))
    assert check_logits(logits(path, ids), theirs) < 1e-4
    before = torch.get_rng_state()
    save_stand_in(path)  # it leaves the global random state alone
    assert torch.equal(before, torch.get_rng_state())


def _changed_config(**fields):
    original = llama_weights.config_from_hf

    def config_from_hf(hf_config):
        config = original(hf_config)
        config.update(fields)
        return {k: v for k, v in config.items() if v is not ...}  # ...: the field dropped, our default used

    return config_from_hf


def _head_is_embedding():
    original = llama_weights.hf_to_ours

    def hf_to_ours(tensors, n_layers, tie_embeddings):
        state, source = original(tensors, n_layers, tie_embeddings)
        state["out_head.weight"] = state["tok_emb.weight"]
        return state, source

    return hf_to_ours


# Each a loader bug, injected: the check must fail on every one.
BUGS = {
    "norms swapped": lambda mp: [
        mp.setitem(llama_weights.LAYOUT, "model.layers.{i}.input_layernorm.weight", "trf_blocks.{i}.norm2.scale"),
        mp.setitem(llama_weights.LAYOUT, "model.layers.{i}.post_attention_layernorm.weight", "trf_blocks.{i}.norm1.scale"),
    ],
    "rope_theta ignored": lambda mp: mp.setattr(llama_weights, "config_from_hf", _changed_config(rope_base=10_000.0)),
    "rms_norm_eps ignored": lambda mp: mp.setattr(llama_weights, "config_from_hf", _changed_config(norm_eps=...)),
    "rope_scaling ignored": lambda mp: mp.setattr(llama_weights, "config_from_hf", _changed_config(rope_scaling=None)),
    "head taken from the embedding": lambda mp: mp.setattr(llama_weights, "hf_to_ours", _head_is_embedding()),
}


@pytest.mark.parametrize("bug", BUGS)
def test_each_porting_bug_fails_the_check(stand_in, monkeypatch, bug):
    path, ids, theirs = stand_in
    BUGS[bug](monkeypatch)
    with pytest.raises(AssertionError, match="differ from transformers'"):
        check_logits(logits(path, ids), theirs)


# Exercise B.5's plausible wrong answers: each must fail the self-check.
def rope_neighbour_pairs(x, cos, sin):
    """Pairs (2i, 2i+1), the RoFormer paper's layout, with pair i's angle."""
    half = x.shape[-1] // 2
    cos, sin = cos[..., :half].repeat_interleave(2, -1), sin[..., :half].repeat_interleave(2, -1)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    return x * cos + torch.stack([-x_odd, x_even], dim=-1).flatten(-2) * sin


def rope_turned_backwards(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos - torch.cat([-x2, x1], dim=-1) * sin


def rope_halves_swapped(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([x2, -x1], dim=-1) * sin


@pytest.mark.parametrize("wrong", [rope_neighbour_pairs, rope_turned_backwards, rope_halves_swapped, lambda x, cos, sin: x])
def test_exercise_b5_fails_on_wrong_ropes(stand_in, wrong):
    path, ids, theirs = stand_in
    with pytest.raises(AssertionError, match="differ from transformers'"):
        check_logits(logits(path, ids, wrong), theirs)


def test_exercise_b5_passes_a_right_rope_and_restores_the_model(stand_in):
    path, ids, theirs = stand_in

    def by_hand(x, cos, sin):  # written from the formula, not with rotate_half
        half = x.shape[-1] // 2
        x1, x2, c, s = x[..., :half], x[..., half:], cos[..., :half], sin[..., :half]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

    check_logits(logits(path, ids, by_hand), theirs)
    model = from_hf_checkpoint(path)
    with rope_replaced(model, by_hand):
        assert model.trf_blocks[0].att.rope is by_hand
    assert all(block.att.rope is apply_rope for block in model.trf_blocks)
