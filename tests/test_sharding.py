"""Tests of gptcourse.sharding (appendix A): who reads what, and the bytes, without processes."""

import pytest
import torch

from gptcourse.flops import num_parameters
from gptcourse.sharding import (
    RECIPES,
    STAGES,
    bytes_sent_per_step,
    global_batch_indices,
    local_micro_batches,
    model_state_bytes,
    ring_all_reduce_bytes,
    sequence_owner,
)

# ------------------------------------------------------------------ gptcourse.sharding: which rank reads what


@pytest.mark.parametrize("micro_batch, grad_accum, world_size", [(4, 1, 2), (2, 2, 2), (1, 4, 2), (3, 2, 4), (8, 1, 1)])
def test_every_sequence_goes_to_exactly_the_rank_and_micro_step_sequence_owner_names(micro_batch, grad_accum, world_size):
    global_batch = micro_batch * grad_accum * world_size
    positions = torch.arange(global_batch)
    seen = []
    for rank in range(world_size):
        micro = local_micro_batches(positions, rank, world_size, grad_accum)
        assert [len(m) for m in micro] == [micro_batch] * grad_accum
        for step, batch in enumerate(micro):
            for p in batch.tolist():
                assert sequence_owner(p, micro_batch, grad_accum) == (rank, step)
                seen.append(p)
    assert sorted(seen) == positions.tolist()


def test_the_global_batches_do_not_depend_on_the_split():
    # Only (num_windows, global_batch, step, seed) enter: B, G and N cannot change them.
    first = [global_batch_indices(100, 8, step, seed=0) for step in range(30)]
    assert all(torch.equal(a, b) for a, b in zip(first, [global_batch_indices(100, 8, s, 0) for s in range(30)]))
    epoch = torch.cat(first[:12])  # 12 steps of 8 = one epoch of 100 windows, the last 4 skipped
    assert len(set(epoch.tolist())) == 96, "an epoch reads each window at most once"
    assert not torch.equal(first[0], first[12]), "each epoch is shuffled anew"
    assert not torch.equal(first[0], global_batch_indices(100, 8, 0, seed=1))
    with pytest.raises(ValueError, match="more than the 100 windows"):
        global_batch_indices(100, 101, 0, 0)
    with pytest.raises(ValueError, match="cannot be split evenly"):
        local_micro_batches(torch.arange(6), 0, 4, 1)


# ------------------------------------------------------------------ gptcourse.sharding: bytes


def test_ring_all_reduce_sends_two_n_minus_one_over_n_of_the_buffer():
    assert ring_all_reduce_bytes(1000, 1) == 0
    assert ring_all_reduce_bytes(1000, 2) == 1000
    assert ring_all_reduce_bytes(1000, 8) == 1750
    assert 1999 < ring_all_reduce_bytes(1000, 10_000) < 2000
    with pytest.raises(ValueError, match="world_size"):
        ring_all_reduce_bytes(1000, 0)


def test_zero_stages_for_gpt2_xl_on_8_gpus_in_the_zero_papers_fp16_recipe():
    psi = num_parameters("gpt2-xl", "all")
    expected = {"ddp": 16 * psi, "zero1": 4 * psi + 12 * psi / 8, "zero2": 2 * psi + 14 * psi / 8, "zero3": 16 * psi / 8}
    for stage, total in expected.items():
        state = model_state_bytes(psi, stage, 8, recipe="fp16")
        assert state.total == pytest.approx(total), stage
    assert model_state_bytes(psi, "zero1", 8, recipe="fp16").per_parameter == pytest.approx(5.5)
    assert bytes_sent_per_step(psi, "zero3", 8, "fp16") == 1.5 * bytes_sent_per_step(psi, "ddp", 8, "fp16") == 1.5 * 2 * 7 / 8 * 2 * psi
    with pytest.raises(ValueError, match="stage"):
        model_state_bytes(psi, "zero4", 8)


def test_under_autocast_the_weights_and_gradients_are_fp32_and_zero1_saves_less():
    """Autocast keeps fp32 weights (the master copy itself) and fp32 gradients: 4 + 4 + 8."""
    psi = 1_000_000
    per_param = {stage: model_state_bytes(psi, stage, 8, recipe="autocast").per_parameter for stage in STAGES}
    assert per_param == pytest.approx({"ddp": 16, "zero1": 4 + 4 + 8 / 8, "zero2": 4 + 12 / 8, "zero3": 16 / 8})
    fp16 = {stage: model_state_bytes(psi, stage, 8, recipe="fp16").per_parameter for stage in STAGES}
    assert fp16["ddp"] == per_param["ddp"] and fp16["zero3"] == per_param["zero3"], "the same 16 bytes, all kept or all sharded"
    assert fp16["zero1"] < per_param["zero1"], "ZeRO-1 shards the optimizer state, 12 of 16 bytes in fp16 but 8 under autocast"
    # DDP all-reduces the gradients it holds: fp32 under autocast, twice the fp16 recipe's bytes.
    assert bytes_sent_per_step(psi, "ddp", 8, "autocast") == 2 * bytes_sent_per_step(psi, "ddp", 8, "fp16")
    with pytest.raises(ValueError, match="recipe"):
        model_state_bytes(psi, "ddp", 8, recipe="bf16")


def test_autocast_leaves_fp32_gradients():
    """What the "autocast" recipe assumes: a bf16 forward, yet fp32 parameters and gradients."""
    layer = torch.nn.Linear(8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(4, 8))
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    weight_bytes, grad_bytes, _ = RECIPES["autocast"]
    assert layer.weight.element_size() == weight_bytes and layer.weight.grad.element_size() == grad_bytes
