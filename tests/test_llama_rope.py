"""RoPE's angles and Llama 3's scaling of them (gptcourse/llama_rope.py)."""

from __future__ import annotations

import math

import pytest
import torch

from gptcourse.llama import PRESETS
from gptcourse.llama_rope import RopeScaling, rope_angles, rope_frequencies
from gptcourse.llama_weights import config_to_hf


def test_llama3_frequencies_equal_transformers():
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    cfg = PRESETS["llama-3.2-1b"]
    theirs, _ = ROPE_INIT_FUNCTIONS["llama3"](transformers.LlamaConfig(**config_to_hf(cfg)))
    ours = rope_frequencies(cfg.head_dim, cfg.rope_base, cfg.rope_scaling)
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
    assert not torch.equal(ours, rope_frequencies(cfg.head_dim, cfg.rope_base))  # the scaling does something


def test_llama3_keeps_the_fast_pairs_slows_the_slow_and_blends_between():
    scaling = RopeScaling(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_context_length=8192)
    plain = rope_frequencies(128, 500_000.0)
    scaled = rope_frequencies(128, 500_000.0, scaling)
    wavelength = 2 * math.pi / plain
    fast, slow = wavelength < 8192 / 4, wavelength > 8192
    assert fast.any() and slow.any() and (~fast & ~slow).any()
    torch.testing.assert_close(scaled[fast], plain[fast])
    torch.testing.assert_close(scaled[slow], plain[slow] / 8)
    middle = ~fast & ~slow  # strictly between the two: slower than before, faster than slow / 8
    assert ((scaled[middle] < plain[middle]) & (scaled[middle] > plain[middle] / 8)).all()
    assert torch.all(scaled[1:] <= scaled[:-1])  # still each pair slower than the one before
    cos, _ = rope_angles(128, 16, 500_000.0, scaling)
    torch.testing.assert_close(cos[5, :64], torch.cos(5 * scaled))


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        (dict(factor=0.5), ValueError, "factor must be >= 1"),
        (dict(low_freq_factor=0.0), ValueError, "low_freq_factor must be > 0"),
        (dict(high_freq_factor=1.0), ValueError, r"high_freq_factor \(1.0\) must be > low_freq_factor \(1.0\)"),
        (dict(original_context_length=8192.0), TypeError, "original_context_length must be a positive int"),
    ],
)
def test_bad_scalings_name_the_field(fields, error, message):
    good = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_context_length=8192)
    with pytest.raises(error, match=message):
        RopeScaling(**{**good, **fields})
