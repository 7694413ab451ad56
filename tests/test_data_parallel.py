"""Tests of gptcourse.data_parallel (appendix A): the check of Exercise A.5's hand-written all-reduce.

The step functions themselves (accumulate_gradients, gradient_sync, count_all_reduces) are
tested through real runs in tests/test_distributed.py.
"""

import pytest
import torch.distributed as dist

from gptcourse.data_parallel import check_gradient_all_reduce


def average_gradients(model):
    for p in model.parameters():
        dist.all_reduce(p.grad)  # a sum over the ranks
        p.grad /= dist.get_world_size()


def summed_gradients(model):  # the plausible wrong answer: all_reduce sums, and gloo has no AVG
    for p in model.parameters():
        dist.all_reduce(p.grad)


def own_gradients(model):  # no communication at all: each rank keeps its own share's gradient
    pass


def test_a_right_all_reduce_passes_and_the_plausible_wrong_ones_fail():
    assert check_gradient_all_reduce(average_gradients) < 1e-4
    with pytest.raises(AssertionError, match=r"norm is 2.00 × the right one"):
        check_gradient_all_reduce(summed_gradients)
    with pytest.raises(AssertionError, match="rank 0"):
        check_gradient_all_reduce(own_gradients)


def test_the_function_must_be_written_with_def():
    with pytest.raises(TypeError, match="average_gradients must be a function"):
        check_gradient_all_reduce(lambda model: None)
    with pytest.raises(ValueError, match="world_size"):
        check_gradient_all_reduce(average_gradients, world_size=3)
