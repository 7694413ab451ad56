"""Tests of gptcourse.distributed and gptcourse.sharding (appendix A): real processes, gloo, on the CPU.

The runs are small (gpt-nano, 3 steps): each launch costs a few seconds of Python and torch
start-up per process. Every child process is started in its own session and killed, with
all its children, if it outlives its timeout: a hung collective fails the test, never the
test run.
"""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import safetensors.torch
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import gptcourse.distributed as distributed
from gptcourse import GPT, GPTConfig
from gptcourse.distributed import (
    DistributedConfig,
    accumulate_gradients,
    count_all_reduces,
    parse_args,
    train_data_parallel,
    wrap_ddp,
)
from gptcourse.flops import num_parameters
from gptcourse.sharding import (
    bytes_sent_per_step,
    global_batch_indices,
    local_micro_batches,
    model_state_bytes,
    relative_difference,
    ring_all_reduce_bytes,
    sequence_owner,
)
from gptcourse.train import batch_loss

TIMEOUT = 180  # seconds for one launch; a few on an idle machine
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per process: the ranks share the cores
RUN = ["--preset", "gpt-nano", "--steps", "3", "--seed", "0", "--drop-rate", "0", "--eval-batches", "2"]


def run_command(args: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run `args` in a new session; on timeout, kill the session (torchrun and its workers) and fail."""
    process = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{' '.join(args)} ran past {timeout} s: a rank hangs")
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "gptcourse.distributed", *args]


def launch(args: list[str]) -> subprocess.CompletedProcess:
    result = run_command(args)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def read_run(out) -> tuple[dict, dict]:
    return safetensors.torch.load_file(out / "model.safetensors"), json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: one process, micro-batch 4, accumulation 2 (plain python -m)."""
    out = tmp_path_factory.mktemp("one")
    launch([sys.executable, "-m", "gptcourse.distributed", *RUN, "--micro-batch", "4", "--grad-accum", "2", "--out", str(out)])
    return read_run(out)


# ------------------------------------------------------------------ the equivalence, through the command line


def test_two_processes_train_the_weights_of_one_process_with_accumulation(one_process, tmp_path):
    weights_1, metrics_1 = one_process
    result = launch(torchrun(2, *RUN, "--micro-batch", "4", "--grad-accum", "1", "--out", str(tmp_path)))
    weights_2, metrics_2 = read_run(tmp_path)
    assert metrics_2["world_size"] == 2 and metrics_1["world_size"] == 1
    assert metrics_2["global_batch"] == metrics_1["global_batch"] == 8
    difference = relative_difference(weights_2, weights_1)
    assert difference < 1e-4, f"2 ranks × 4 and 1 rank × 4 × 2 should train the same weights; relative difference {difference:.2e}"
    # The logged loss is the global batch's mean: all-reduced, so the same as one process's.
    torch.testing.assert_close(metrics_2["losses"], metrics_1["losses"], rtol=0, atol=1e-5, msg="the logged loss is not the global mean")
    # no_sync: accumulation over 2 micro-steps all-reduces as often as 1 micro-step does.
    assert metrics_1["all_reduces_per_step"] == metrics_2["all_reduces_per_step"] >= 1
    assert result.stdout.count("DDP on 2 rank(s)") == 1, f"only rank 0 prints:\n{result.stdout}"
    model = GPT("gpt-nano")
    safetensors.torch.load_model(model, tmp_path / "model.safetensors")  # the tied head, saved once, comes back tied
    assert model.out_head.weight is model.tok_emb.weight
    torch.testing.assert_close(model.tok_emb.weight, weights_2["tok_emb.weight"])
    assert not any(name.startswith("module.") for name in weights_2), "save the unwrapped model"


def test_fsdp_trains_the_same_weights_with_each_rank_holding_half(one_process, tmp_path):
    weights_1, _ = one_process
    launch(torchrun(2, *RUN, "--micro-batch", "4", "--grad-accum", "1", "--fsdp", "--out", str(tmp_path)))
    weights_fsdp, metrics = read_run(tmp_path)
    assert relative_difference(weights_fsdp, weights_1) < 1e-4
    assert set(weights_fsdp) == set(weights_1)
    held = metrics["parameters_per_rank"]
    assert sum(held) == metrics["num_parameters"] == num_parameters("gpt-nano", "all")
    assert max(held) <= metrics["num_parameters"] // 2 + 1000, f"each rank should hold about half: {held}"


def test_a_failing_rank_ends_the_run_instead_of_hanging(tmp_path):
    script = tmp_path / "fail_on_rank_1.py"
    script.write_text(
        "import os, sys\n"
        "import gptcourse.distributed as d\n"
        "def fail(*args, **kwargs):\n"
        "    raise RuntimeError('rank 1 fails on purpose')\n"
        "if os.environ['RANK'] == '1':\n"
        "    d.optimizer_step = fail\n"
        "sys.exit(d.main(sys.argv[1:]))\n"
    )
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), *RUN]
    start = time.perf_counter()
    result = run_command([*args, "--micro-batch", "2", "--timeout-s", "60", "--out", str(tmp_path / "out")], timeout=120)
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stdout + result.stderr
    assert time.perf_counter() - start < 100, "the other rank should be stopped, not left waiting"


# ------------------------------------------------------------------ gradients and communication, rank by rank

TINY = GPTConfig(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2)


def _gradient_worker(rank: int, world_size: int, store: str, out: str) -> None:
    """On each rank: DDP's gradients after `accumulate_gradients`, and how many all-reduces it took."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size, timeout=timedelta(seconds=60))
    try:
        ids = torch.randint(0, TINY.vocab_size, (8, TINY.context_length + 1), generator=torch.Generator().manual_seed(1))
        inputs, targets = ids[:, :-1], ids[:, 1:]
        torch.manual_seed(0)
        model = GPT(TINY)
        reference = copy.deepcopy(model)  # one process, the whole global batch of 8 at once
        full_loss = batch_loss(reference, inputs, targets)
        full_loss.backward()
        ddp = wrap_ddp(model, torch.device("cpu"), bucket_cap_mb=0.02)  # small buckets: several per step
        counter = count_all_reduces(ddp)

        def share(grad_accum):  # this rank's micro-batches: 4 sequences, in 1 or 2 micro-steps
            return [(inputs[ix], targets[ix]) for ix in local_micro_batches(torch.arange(8), rank, world_size, grad_accum)]

        accumulate_gradients(ddp, share(1))  # DDP settles its buckets after the first step
        ddp.zero_grad(set_to_none=True)
        results = {"full_loss": full_loss.item(), "reference": {n: p.grad for n, p in reference.named_parameters()}}
        for grad_accum in (1, 2):
            counter.reset()
            results[f"loss_{grad_accum}"] = accumulate_gradients(ddp, share(grad_accum)).item()
            results[f"calls_{grad_accum}"] = counter.calls
            results[f"grads_{grad_accum}"] = {n: p.grad.clone() for n, p in ddp.module.named_parameters()}
            ddp.zero_grad(set_to_none=True)
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def gradient_results(tmp_path_factory):
    directory = tmp_path_factory.mktemp("grads")
    context = mp.start_processes(_gradient_worker, args=(2, str(directory / "store"), str(directory)), nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the gradient workers ran past their timeout")
    return [torch.load(directory / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_gradients_are_those_of_the_whole_global_batch(gradient_results, grad_accum):
    """Fails if the loss is not divided by G, or divided by N as well, or the ranks not averaged."""
    for rank, results in enumerate(gradient_results):
        for name, expected in results["reference"].items():
            torch.testing.assert_close(
                results[f"grads_{grad_accum}"][name], expected, rtol=1e-4, atol=1e-6,
                msg=lambda m, rank=rank, name=name: f"rank {rank}, G={grad_accum}: the gradient of {name} is not the global batch's\n{m}",
            )  # fmt: skip
        torch.testing.assert_close(results[f"loss_{grad_accum}"], results["full_loss"], rtol=1e-5, atol=0, msg="the returned loss is not the global mean")


def test_accumulation_all_reduces_once_per_step(gradient_results):
    """Fails if no_sync is dropped: each micro-step would all-reduce every bucket."""
    for results in gradient_results:
        assert results["calls_1"] > 1, "the test wants several buckets"
        assert results["calls_2"] == results["calls_1"], (
            f"with 2 micro-steps DDP all-reduced {results['calls_2']} buckets, with 1 {results['calls_1']}: "
            "the micro-steps before the last must run under no_sync()"
        )


# ------------------------------------------------------------------ in this process: errors, clean-up


def test_bad_options_exit_with_their_message(tmp_path, capsys):
    for options, message in [
        (["--steps", "0"], "steps must be a positive int"),
        (["--drop-rate", "1.5"], "drop_rate must be in [0, 1)"),
        (["--preset", "gpt-huge"], "invalid choice"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            parse_args(["--out", str(tmp_path), *options])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, message",
    [
        (["--global-batch", "6", "--micro-batch", "4"], "not divisible by micro_batch × world size"),
        (["--global-batch", "8", "--micro-batch", "4", "--grad-accum", "3"], "disagrees with global_batch"),
        (["--micro-batch", "100000"], "more than the"),
    ],
)
def test_a_global_batch_that_does_not_fit_fails_before_training(options, message, tmp_path, capsys):
    assert distributed.main(["--out", str(tmp_path), "--steps", "1", *options]) == 2
    assert message in capsys.readouterr().err
    assert not dist.is_initialized()


def test_an_unwritable_out_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert distributed.main(["--out", str(blocker / "run"), "--steps", "1"]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine can run NCCL")
def test_nccl_needs_a_gpu():
    with pytest.raises(ValueError, match="nccl needs CUDA"):
        DistributedConfig(backend="nccl")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        DistributedConfig(device="cuda")


def test_the_process_group_is_left_even_on_an_error(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        assert dist.is_initialized()
        raise RuntimeError("crash during training")

    monkeypatch.setattr(distributed, "_train", crash)
    with pytest.raises(RuntimeError, match="crash during training"):
        train_data_parallel(DistributedConfig(out=tmp_path, steps=1))
    assert not dist.is_initialized()


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


def test_zero_stages_for_gpt2_xl_on_8_gpus():
    psi = num_parameters("gpt2-xl", "all")
    assert psi == 1_557_611_200
    expected = {"ddp": 16 * psi, "zero1": 4 * psi + 12 * psi / 8, "zero2": 2 * psi + 14 * psi / 8, "zero3": 16 * psi / 8}
    for stage, total in expected.items():
        state = model_state_bytes(psi, stage, 8)
        assert state.total == pytest.approx(total), stage
    assert model_state_bytes(psi, "zero3", 8).per_parameter == 2
    assert bytes_sent_per_step(psi, "zero3", 8) == 1.5 * bytes_sent_per_step(psi, "ddp", 8) == 1.5 * 2 * 7 / 8 * 2 * psi
    with pytest.raises(ValueError, match="stage"):
        model_state_bytes(psi, "zero4", 8)
