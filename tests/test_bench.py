import math

import torch

from gptcourse.bench import compare, hf_gpt2, main
from gptcourse.config import GPTConfig

TINY = GPTConfig(vocab_size=101, context_length=16, emb_dim=32, n_heads=2, n_layers=1)


def test_peer_model_has_the_same_shape_and_sdpa():
    ours_params = 101 * 32 + 16 * 32 + (4 * 32 + 12 * 32 * 32 + 9 * 32) + 2 * 32  # embeddings, one block, final norm
    peer = hf_gpt2(TINY)
    assert peer.config._attn_implementation == "sdpa"
    assert sum(p.numel() for p in peer.parameters()) == ours_params


def test_compare_reports_tokens_per_second_for_both():
    result = compare(TINY, batch_size=2, rounds=2, steps_per_round=1, warmup=1, device=torch.device("cpu"))
    assert set(result) == {"gptcourse GPT", "transformers GPT-2"}
    assert all(math.isfinite(v) and v > 0 for v in result.values())


def test_main_prints_the_ratio(capsys):
    main(["--layers", "1", "--heads", "2", "--emb-dim", "32", "--context", "16", "--vocab", "101", "--batch", "2", "--rounds", "1", "--steps", "1", "--warmup", "1", "--device", "cpu"])
    assert "ratio (ours / transformers):" in capsys.readouterr().out
