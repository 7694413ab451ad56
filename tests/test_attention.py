import pytest
import torch

from gptcourse.attention import CausalAttention, MultiHeadAttention, MultiHeadAttentionWrapper, SDPAMultiHeadAttention

D_IN, D_OUT, CTX, HEADS = 12, 16, 10, 4


def all_variants():
    """Every multi-head variant, with the same weights."""
    mha = MultiHeadAttention(D_IN, D_OUT, CTX, 0.0, HEADS, qkv_bias=True)
    torch.nn.init.normal_(mha.out_proj.bias)  # non-zero, so a wrongly copied bias would show
    sdpa = SDPAMultiHeadAttention(D_IN, D_OUT, CTX, 0.0, HEADS, qkv_bias=True)
    sdpa.load_state_dict(mha.state_dict())
    wrapper = MultiHeadAttentionWrapper(D_IN, D_OUT, CTX, 0.0, HEADS, qkv_bias=True).load_from(mha)
    return {"manual": mha, "sdpa": sdpa, "wrapper": wrapper}


def test_all_variants_compute_the_same():
    x = torch.randn(3, CTX, D_IN)
    outs = {name: m(x) for name, m in all_variants().items()}
    for name, out in outs.items():
        assert out.shape == (3, CTX, D_OUT)
        torch.testing.assert_close(out, outs["manual"], msg=f"{name} differs from manual")


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


def test_too_long_input_is_a_clear_error():
    with pytest.raises(ValueError, match="context_length=10"):
        all_variants()["manual"](torch.randn(1, CTX + 1, D_IN))


def test_heads_must_divide():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiHeadAttention(D_IN, 10, CTX, 0.0, 3)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    mha = MultiHeadAttention(D_IN, D_OUT, CTX, 0.5, HEADS)
    x = torch.randn(1, CTX, D_IN)
    mha.eval()
    torch.testing.assert_close(mha(x), mha(x))
    mha.train()
    assert not torch.allclose(mha(x), mha(x))
