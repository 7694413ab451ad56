"""The chunked LM head and loss (appendix C): the plain loss's value and gradients, with
no (N, vocab) tensor, and the peak memory that shows it, measured on a CPU."""

from __future__ import annotations

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.chunked_loss import chunked_cross_entropy, chunked_model_loss, measure_peak_memory
from gptcourse.memory import estimate_memory
from gptcourse.timing import make_train_step
from gptcourse.train import cross_entropy_loss

TINY = GPTConfig(vocab_size=97, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def case(n: int = 24, d: int = 16, vocab: int = 50, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g, requires_grad=True)
    weight = torch.randn(vocab, d, generator=g).mul_(0.5).requires_grad_()
    targets = torch.randint(0, vocab, (n,), generator=g)
    return hidden, weight, targets


def plain_and_chunked(chunk: int, **sizes):
    hidden, weight, targets = case(**sizes)
    plain = cross_entropy_loss((hidden @ weight.T).unsqueeze(0), targets.unsqueeze(0))
    plain_grads = torch.autograd.grad(plain, (hidden, weight))
    chunked = chunked_cross_entropy(hidden, weight, targets, chunk)
    chunked_grads = torch.autograd.grad(chunked, (hidden, weight))
    return plain, chunked, plain_grads, chunked_grads


@pytest.mark.parametrize("chunk", [1, 5, 8, 24, 1000])  # 1, not dividing 24, dividing, = N, > N
def test_loss_and_gradients_are_the_plain_ones(chunk):
    plain, chunked, plain_grads, chunked_grads = plain_and_chunked(chunk)
    torch.testing.assert_close(chunked, plain, rtol=1e-6, atol=0)
    for ours, theirs in zip(chunked_grads, plain_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_batch_of_sequences_is_the_same_as_its_rows():
    hidden, weight, targets = case(n=24)
    flat = chunked_cross_entropy(hidden, weight, targets, 7)
    batched = chunked_cross_entropy(hidden.view(4, 6, -1), weight, targets.view(4, 6), 7)
    torch.testing.assert_close(batched, flat)


def tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(TINY)


def test_model_without_head_returns_the_normed_hidden_states():
    model = tiny_gpt()
    idx = torch.randint(0, TINY.vocab_size, (3, 10))
    hidden = model(idx, head=False)
    assert hidden.shape == (3, 10, TINY.emb_dim)
    torch.testing.assert_close(model.out_head(hidden), model(idx))


def test_a_gpt_with_tied_weights_gets_the_plain_gradients():
    plain_model, chunked_model = tiny_gpt(), tiny_gpt()
    assert chunked_model.out_head.weight is chunked_model.tok_emb.weight
    g = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, TINY.vocab_size, (2, 16), generator=g)
    targets = torch.randint(0, TINY.vocab_size, (2, 16), generator=g)
    plain = cross_entropy_loss(plain_model(inputs), targets)
    chunked = chunked_model_loss(chunked_model, inputs, targets, chunk_size=5)
    torch.testing.assert_close(chunked, plain, rtol=1e-6, atol=0)
    plain.backward()
    chunked.backward()
    theirs = dict(plain_model.named_parameters())
    for name, p in chunked_model.named_parameters():  # the tied weight: embedding + head
        torch.testing.assert_close(p.grad, theirs[name].grad, rtol=1e-5, atol=1e-6, msg=name)


def test_under_autocast_it_is_close_to_fp32():
    hidden, weight, targets = case(n=64, d=32, vocab=300)
    fp32 = chunked_cross_entropy(hidden, weight, targets, 16)
    fp32_grads = torch.autograd.grad(fp32, (hidden, weight))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = chunked_cross_entropy(hidden, weight, targets, 16)
        plain = cross_entropy_loss((hidden @ weight.T).unsqueeze(0), targets.unsqueeze(0))
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, fp32, rtol=2e-2, atol=0)
    torch.testing.assert_close(bf16, plain, rtol=1e-2, atol=0)  # what autocast's plain loss gives
    for ours, theirs in zip(torch.autograd.grad(bf16, (hidden, weight)), fp32_grads, strict=True):
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, theirs, rtol=0.1, atol=2e-3)


def test_without_gradients():
    hidden, weight, targets = case()
    with torch.no_grad():
        loss = chunked_cross_entropy(hidden, weight, targets, 5)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, cross_entropy_loss((hidden @ weight.T)[None], targets[None]))
    only_hidden = chunked_cross_entropy(hidden, weight.detach(), targets, 5)
    (grad,) = torch.autograd.grad(only_hidden, hidden)
    assert grad.shape == hidden.shape and weight.grad is None


def test_bad_inputs_are_clear_errors():
    hidden, weight, targets = case(n=24, d=16)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        chunked_cross_entropy(hidden, weight, targets, 0)
    with pytest.raises(ValueError, match=r"weight must have shape \(vocab, d\) with d = hidden's last size \(16\)"):
        chunked_cross_entropy(hidden, weight[:, :8], targets)
    with pytest.raises(ValueError, match=r"targets must have shape \(24,\)"):
        chunked_cross_entropy(hidden, weight, targets[:5])
    with pytest.raises(ValueError, match="hidden must have shape"):
        chunked_cross_entropy(hidden[0], weight, targets[0])
    with pytest.raises(TypeError, match="token ids"):
        chunked_cross_entropy(hidden, weight, targets.float())
    with pytest.raises(TypeError, match="one dtype outside autocast"):
        chunked_cross_entropy(hidden.double(), weight, targets)
    with pytest.raises(TypeError, match="needs a GPT"):
        chunked_model_loss(torch.nn.Linear(3, 3), targets[None], targets[None])


def test_peak_memory_sees_a_tensor_made_and_freed():
    def four_megabytes():
        x = torch.ones(1_000_000)  # 4 MB, freed on return
        return float(x[0])

    assert measure_peak_memory(four_megabytes, "cpu") >= 4_000_000
    assert measure_peak_memory(lambda: torch.ones(10).sum(), "cpu") < 1_000_000


def test_the_chunked_loss_needs_far_less_memory():
    """The point: no (N, vocab) fp32 tensors (here 5 MB each; plain holds about three)."""
    hidden, weight, targets = case(n=256, d=64, vocab=5000)

    def step(loss_fn):
        def run():
            loss_fn().backward()
            hidden.grad = weight.grad = None

        return run

    plain = measure_peak_memory(step(lambda: cross_entropy_loss((hidden @ weight.T)[None], targets[None])), "cpu")
    chunked = measure_peak_memory(step(lambda: chunked_cross_entropy(hidden, weight, targets, 32)), "cpu")
    assert plain >= 2 * 256 * 5000 * 4, plain
    assert chunked < 0.5 * plain, (chunked, plain)


def test_a_training_step_with_the_chunked_loss_trains():
    model = tiny_gpt()
    inputs = torch.randint(0, TINY.vocab_size, (2, 16), generator=torch.Generator().manual_seed(2))
    before = model.tok_emb.weight.detach().clone()
    step = make_train_step(model, inputs, inputs, torch.float32, lr=1e-2, loss_chunk=8)
    step()
    assert not torch.equal(model.tok_emb.weight, before)
    with pytest.raises(ValueError, match="loss_chunk must be a positive int"):
        make_train_step(model, inputs, inputs, torch.float32, loss_chunk=0)


def test_the_estimate_counts_chunks_not_the_whole_vocabulary_by_row():
    cfg = GPTConfig.from_preset("gpt2-small")
    plain = estimate_memory(cfg, 8, 1024)
    chunked = estimate_memory(cfg, 8, 1024, loss_chunk=1024)
    v, rows = cfg.vocab_size, 8 * 1024
    assert plain.total - chunked.total > 2.5 * rows * v * 4  # most of three (B·T, vocab) fp32 tensors
    assert chunked.logits < plain.logits / 4
    assert estimate_memory(cfg, 8, 1024, loss_chunk=10**6) == estimate_memory(cfg, 8, 1024, loss_chunk=rows)
    with pytest.raises(ValueError, match="loss_chunk must be a positive int"):
        estimate_memory(cfg, 8, 1024, loss_chunk=-1)


def test_the_weight_gradient_is_held_once_and_a_second_backward_is_refused():
    # The backward scales the saved gradients in place: at its peak the step holds one
    # (vocab, d) weight gradient, not the saved one and its scaled copy.
    hidden, weight, targets = case(n=8, d=64, vocab=5000)

    def run():
        chunked_cross_entropy(hidden, weight, targets, 4).backward()
        hidden.grad = weight.grad = None

    assert measure_peak_memory(run, "cpu") < 1.5 * 5000 * 64 * 4
    loss = chunked_cross_entropy(hidden, weight, targets, 4)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice on one graph"):
        loss.backward()
