"""Tests of gptcourse.distributed and the step of gptcourse.data_parallel (appendix A): real processes, gloo, on the CPU.

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
    global_mean,
    gradient_sync,
    parse_args,
    train_data_parallel,
    wrap_ddp,
)
from gptcourse.flops import num_parameters
from gptcourse.sharding import assert_same_training, local_micro_batches, relative_difference
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
    # Weights, the logged loss (the global batch's mean, all-reduced) and the gradient norm of every step.
    assert_same_training(weights_2, metrics_2, weights_1, metrics_1)
    # no_sync: accumulation over 2 micro-steps all-reduces as often as 1 micro-step does.
    assert metrics_1["all_reduces_per_step"] == metrics_2["all_reduces_per_step"] >= 1
    assert result.stdout.count("DDP on 2 rank(s)") == 1, f"only rank 0 prints:\n{result.stdout}"
    model = GPT("gpt-nano")
    safetensors.torch.load_model(model, tmp_path / "model.safetensors")  # the tied head, saved once, comes back tied
    assert model.out_head.weight is model.tok_emb.weight
    torch.testing.assert_close(model.tok_emb.weight, weights_2["tok_emb.weight"])
    assert not any(name.startswith("module.") for name in weights_2), "save the unwrapped model"


def test_two_processes_accumulating_train_what_one_process_accumulating_trains(one_process, tmp_path):
    """N = 2 and G = 2: no_sync runs on several ranks, and the loss is divided by G there too."""
    weights_1, metrics_1 = one_process
    launch(torchrun(2, *RUN, "--micro-batch", "2", "--grad-accum", "2", "--out", str(tmp_path)))
    weights_2, metrics_2 = read_run(tmp_path)
    assert (metrics_2["world_size"], metrics_2["grad_accum"], metrics_2["global_batch"]) == (2, 2, 8)
    assert_same_training(weights_2, metrics_2, weights_1, metrics_1)
    assert metrics_2["all_reduces_per_step"] == metrics_1["all_reduces_per_step"], "G micro-steps, one all-reduce"


def _accumulate_without_dividing(model, micro_batches, dtype=None, scaler=None):
    """accumulate_gradients with the commonest bug: each micro-step's loss not divided by G."""
    losses = []
    for k, (inputs, targets) in enumerate(micro_batches):
        with gradient_sync(model, enabled=k == len(micro_batches) - 1):
            loss = batch_loss(model, inputs, targets)
            loss.backward()  # the bug: loss / G
        losses.append(loss.detach())
    return global_mean(torch.stack(losses).mean())


def test_the_equality_check_fails_when_the_loss_is_not_divided_by_g(tmp_path, monkeypatch):
    """AdamW and clipping hide a gradient G times too large from the weights, not from its norm."""
    def run(name, micro_batch, grad_accum):
        config = DistributedConfig(out=tmp_path / name, steps=3, micro_batch=micro_batch, grad_accum=grad_accum, eval_batches=1, device="cpu")
        metrics = train_data_parallel(config)
        return safetensors.torch.load_file(tmp_path / name / "model.safetensors"), metrics

    reference = run("whole", 8, 1)  # no accumulation: nothing to divide
    assert_same_training(*run("right", 4, 2), *reference)
    monkeypatch.setattr(distributed, "accumulate_gradients", _accumulate_without_dividing)
    weights, metrics = run("bug", 4, 2)
    assert relative_difference(weights, reference[0]) < 1e-3, "the weights barely see the bug: that is why the norms are compared"
    with pytest.raises(AssertionError, match="grad_norms differ"):
        assert_same_training(weights, metrics, *reference)
    torch.testing.assert_close(metrics["grad_norms"][0], 2 * reference[1]["grad_norms"][0], rtol=1e-3, atol=0)


def test_a_run_resumed_from_its_checkpoint_trains_what_an_uninterrupted_run_trains(tmp_path, monkeypatch, capsys):
    """--checkpoint-every: what torchrun --max-restarts needs to go on where a failed group stopped."""
    def config(name):
        return DistributedConfig(out=tmp_path / name, steps=4, micro_batch=4, grad_accum=2, eval_batches=1, device="cpu", checkpoint_every=2)

    straight = train_data_parallel(config("straight"))
    original_step = distributed._RankRun.step

    def crash_at_step_3(self, step):
        if step == 3:
            raise RuntimeError("the machine fails")
        return original_step(self, step)

    monkeypatch.setattr(distributed._RankRun, "step", crash_at_step_3)
    with pytest.raises(RuntimeError, match="the machine fails"):
        train_data_parallel(config("crashed"))
    monkeypatch.setattr(distributed._RankRun, "step", original_step)
    resumed = train_data_parallel(config("crashed"))  # the same command again, as torchrun restarts it
    assert "resumed from" in capsys.readouterr().out and len(resumed["step_times"]) == 2, "steps 3 and 4 only"
    assert_same_training(
        safetensors.torch.load_file(tmp_path / "crashed" / "model.safetensors"), resumed,
        safetensors.torch.load_file(tmp_path / "straight" / "model.safetensors"), straight, rtol=1e-6,
    )  # fmt: skip


def test_a_corpus_file_gives_the_windows_a_large_global_batch_needs(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 25_000)  # about 250,000 tokens
    options = dict(preset="gpt2-small", steps=1, micro_batch=128, device="cpu")  # 128 windows of 1,024 tokens
    with pytest.raises(ValueError, match="more than the"):
        distributed._prepare(DistributedConfig(out=tmp_path / "a", **options), world_size=1)  # the default corpus is too small
    _, _, train_set, _ = distributed._prepare(DistributedConfig(out=tmp_path / "b", corpus=str(text), **options), world_size=1)
    assert len(train_set) >= 128
    with pytest.raises(ValueError, match="corpus must be one of"):
        DistributedConfig(corpus=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="checkpoint-every with --fsdp"):
        DistributedConfig(fsdp=True, checkpoint_every=2)


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
    # Two ranks take a few seconds (10 s on a loaded machine). Once, in a fresh-clone `make
    # test`, they hung past 180 s with no error: a stuck launch is killed and tried once
    # more, from a new store; a second hang fails.
    for _attempt in (1, 2):
        directory = tmp_path_factory.mktemp("grads")
        context = mp.start_processes(_gradient_worker, args=(2, str(directory / "store"), str(directory)), nprocs=2, join=False, start_method="spawn")
        deadline = time.monotonic() + TIMEOUT / 2
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                break
        else:
            return [torch.load(directory / f"rank{r}.pt") for r in range(2)]
    pytest.fail(f"the gradient workers ran past {TIMEOUT / 2:.0f} s, twice")


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
