"""gptcourse/attention.py: chapter 3's warm-ups and chapter 4's multi-head modules."""

import pytest
import torch

from gptcourse.attention import (
    ATTENTION_CLASSES,
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SDPAMultiHeadAttention,
    SelfAttentionV1,
    SelfAttentionV2,
    causal_mask,
    visible_keys,
)

D_IN, D_OUT, CTX, HEADS = 12, 16, 10, 4


# ---- chapter 3


def test_self_attention_shapes_with_and_without_batch():
    for module in (SelfAttentionV1(D_IN, D_OUT), SelfAttentionV2(D_IN, D_OUT)):
        assert module(torch.randn(5, D_IN)).shape == (5, D_OUT)
        assert module(torch.randn(3, 5, D_IN)).shape == (3, 5, D_OUT)


def test_v2_weights_loaded_into_v1_give_the_same_output():
    v2 = SelfAttentionV2(D_IN, D_OUT)
    v1 = v2.load_into_v1(SelfAttentionV1(D_IN, D_OUT))
    x = torch.randn(2, 5, D_IN)
    torch.testing.assert_close(v1(x), v2(x))


def test_load_into_v1_refuses_biases():
    with pytest.raises(ValueError, match="no biases"):
        SelfAttentionV2(D_IN, D_OUT, qkv_bias=True).load_into_v1(SelfAttentionV1(D_IN, D_OUT))


def test_self_attention_sees_the_future_and_agrees_with_causal_on_the_last_token():
    v2 = SelfAttentionV2(D_IN, D_OUT, qkv_bias=True)
    causal = CausalAttention(D_IN, D_OUT, context_length=5, qkv_bias=True)
    causal.load_state_dict(v2.state_dict())
    x = torch.randn(2, 5, D_IN)
    # The last token sees every token in both, so its output is the same.
    torch.testing.assert_close(v2(x)[:, -1], causal(x)[:, -1])
    changed = x.clone()
    changed[:, -1] = torch.randn(2, D_IN)
    assert not torch.allclose(v2(changed)[:, 0], v2(x)[:, 0]), "without a mask, the first token sees the last"


def test_causal_mask_hides_exactly_the_future():
    assert torch.equal(causal_mask(3), torch.tensor([[False, True, True], [False, False, True], [False, False, False]]))
    # Two new tokens after three cached ones (chapter 8): token 3 sees 0..3, token 4 all five.
    after_cache = torch.tensor([[False, False, False, False, True], [False, False, False, False, False]])
    assert torch.equal(causal_mask(2, num_keys=5), after_cache)
    assert torch.equal(visible_keys(2, 5), ~after_cache)


@pytest.mark.parametrize("num_tokens, num_keys, window", [(6, 6, 3), (7, 7, 1), (5, 5, 5), (4, 4, 10), (2, 5, 2)])
def test_causal_mask_with_a_window_shows_each_query_itself_and_the_window_before(num_tokens, num_keys, window):
    mask = causal_mask(num_tokens, num_keys=num_keys, window=window)
    for i in range(num_tokens):
        position = num_keys - num_tokens + i  # of query i, among the keys
        seen = [j for j in range(num_keys) if not mask[i, j]]
        assert seen == list(range(max(0, position - window + 1), position + 1))


def test_causal_mask_window_rejects_a_non_positive_window():
    with pytest.raises(ValueError, match="window"):
        causal_mask(4, window=0)


def test_exercise_3_1_check_catches_weights_reshaped_instead_of_transposed():
    v2 = SelfAttentionV2(4, 2)
    v1 = SelfAttentionV1(4, 2)
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value"):
            getattr(v1, name).copy_(getattr(v2, name).weight.reshape(4, 2))
    x = torch.randn(6, 4)
    assert not torch.allclose(v1(x), v2(x))


def test_exercise_3_3_check_catches_a_detector_that_compares_the_changed_positions_too():
    """Comparing all outputs flags even gptcourse's causal head, which the check forbids."""
    head = CausalAttention(4, 4, context_length=8)
    x = torch.randn(1, 8, 4)
    changed = x.clone()
    changed[:, 5:] = torch.randn(1, 3, 4)
    with torch.no_grad():
        assert not torch.allclose(head(changed), head(x))
        torch.testing.assert_close(head(changed)[:, :5], head(x)[:, :5])


def test_exercise_3_2_check_catches_a_window_one_token_too_wide():
    """The wrong answer of tests/wrong_answers/03_attention.py: `distance > w` for `>= w`."""
    t = torch.arange(6)
    distance = t[:, None] - t[None, :]
    too_wide = (distance < 0) | (distance > 3)
    assert not torch.equal(too_wide, causal_mask(6, window=3))
    assert torch.equal((distance < 0) | (distance >= 3), causal_mask(6, window=3))


# ---- chapter 4


def all_variants():
    """Every multi-head variant, with the same weights."""
    mha = MultiHeadAttention(D_IN, D_OUT, CTX, drop_rate=0.0, n_heads=HEADS, qkv_bias=True)
    torch.nn.init.normal_(mha.out_proj.bias)  # non-zero, so a wrongly copied bias would show
    sdpa = SDPAMultiHeadAttention(D_IN, D_OUT, CTX, drop_rate=0.0, n_heads=HEADS, qkv_bias=True)
    sdpa.load_state_dict(mha.state_dict())
    wrapper = MultiHeadAttentionWrapper(D_IN, D_OUT, CTX, drop_rate=0.0, n_heads=HEADS, qkv_bias=True).load_from(mha)
    return {"manual": mha, "sdpa": sdpa, "wrapper": wrapper}


def test_all_variants_compute_the_same():
    x = torch.randn(3, CTX, D_IN)
    outs = {name: m(x) for name, m in all_variants().items()}
    for name, out in outs.items():
        assert out.shape == (3, CTX, D_OUT)
        torch.testing.assert_close(out, outs["manual"], msg=f"{name} differs from manual")


def test_the_names_gpt_accepts():
    assert ATTENTION_CLASSES == {"sdpa": SDPAMultiHeadAttention, "manual": MultiHeadAttention}


@pytest.mark.parametrize("name", ["manual", "sdpa", "wrapper", "single-head"])
def test_causal_later_tokens_never_change_earlier_outputs(name):
    module = all_variants()[name] if name != "single-head" else CausalAttention(D_IN, D_OUT, CTX)
    x = torch.randn(2, CTX, D_IN)
    for t in range(CTX - 1):
        changed = x.clone()
        changed[:, t + 1 :] = torch.randn_like(changed[:, t + 1 :])
        torch.testing.assert_close(module(changed)[:, : t + 1], module(x)[:, : t + 1])


def test_shorter_sequences_and_single_head_shape():
    x = torch.randn(2, 3, D_IN)
    assert CausalAttention(D_IN, 5, CTX)(x).shape == (2, 3, 5)
    assert all_variants()["sdpa"](x).shape == (2, 3, D_OUT)


@pytest.mark.parametrize("name", ["manual", "sdpa", "wrapper"])
def test_too_long_input_is_a_clear_error(name):
    with pytest.raises(ValueError, match="11 tokens but the module was built for context_length=10"):
        all_variants()[name](torch.randn(1, CTX + 1, D_IN))


def test_no_mask_is_stored_so_a_long_context_costs_nothing():
    mha = MultiHeadAttention(D_IN, D_OUT, context_length=1_000_000, n_heads=HEADS)
    assert list(mha.buffers()) == []
    assert mha(torch.randn(1, 3, D_IN)).shape == (1, 3, D_OUT)


def test_heads_must_divide():
    with pytest.raises(ValueError, match=r"emb_dim \(10\) must be divisible by n_heads \(3\)"):
        MultiHeadAttention(D_IN, 10, CTX, drop_rate=0.0, n_heads=3)
    with pytest.raises(ValueError, match="n_heads must be a positive int, got 0"):
        MultiHeadAttentionWrapper(D_IN, D_OUT, CTX, n_heads=0)


@pytest.mark.parametrize("cls", [MultiHeadAttention, SDPAMultiHeadAttention])
def test_dropout_only_in_training(cls):
    mha = cls(D_IN, D_OUT, CTX, drop_rate=0.5, n_heads=HEADS)
    x = torch.randn(1, CTX, D_IN)
    mha.eval()
    torch.testing.assert_close(mha(x), mha(x))
    mha.train()
    assert not torch.allclose(mha(x), mha(x))


def test_the_newest_queries_need_the_mask_aligned_bottom_right():
    # Exercise 4.3's premise: with fewer queries than keys, is_causal=True aligns the mask
    # top-left and differs from full attention's last rows; visible_keys gives those rows.
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, HEADS, CTX, 8).unbind(0)
    full = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    for n in (1, 3):
        newest = q[:, :, -n:]
        top_left = torch.nn.functional.scaled_dot_product_attention(newest, k, v, is_causal=True)
        assert not torch.allclose(top_left, full[:, :, -n:], atol=1e-3)
        mask = visible_keys(n, CTX)
        right = torch.nn.functional.scaled_dot_product_attention(newest, k, v, attn_mask=mask)
        torch.testing.assert_close(right, full[:, :, -n:])
