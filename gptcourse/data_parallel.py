"""The pieces of a data-parallel step, one rank's view: no launcher, no command line (appendix A).

The process group (`init_distributed`, from the launch `launch_environment` checks), a
replica or a shard of the model (`wrap_ddp`, `shard_fsdp`), accumulation that all-reduces
once (`accumulate_gradients`), what DDP sends (`count_all_reduces`), the weights saved
once; and the check of an all-reduce written by hand (`check_gradient_all_reduce`,
Exercise A.5). `gptcourse.distributed` runs them.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import safetensors.torch
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.nn.parallel import DistributedDataParallel

from .checks import finite_number, one_of, positive_int
from .config import GPTConfig
from .device import autocast, autocast_dtype
from .files import write_atomically
from .model import GPT
from .sharding import relative_difference
from .timing import time_calls
from .train import batch_loss

DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("auto", "nccl", "gloo")

# ------------------------------------------------------------------ the process group


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process stands in the group: its rank, its device, the group's size (appendix A)."""

    rank: int  # 0 .. world_size − 1, across all nodes
    local_rank: int  # its index on this node: which GPU it drives
    world_size: int
    device: torch.device
    backend: str  # "nccl" or "gloo"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # torchrun sets all three, in every process
NOTICE_AFTER_S = 5.0  # a rank still waiting to join after this long says what it waits for


@dataclass(frozen=True)
class LaunchEnvironment:
    """What torchrun told this process (the variables of `LAUNCH_VARIABLES`), checked."""

    rank: int
    world_size: int
    local_rank: int
    master: str  # "MASTER_ADDR:MASTER_PORT": where the ranks meet


def launch_environment() -> LaunchEnvironment | None:
    """This process's place in a launch, from its environment; None when none of it is set (one process).

    Defined in appendix A. A half-set environment (``WORLD_SIZE=2`` alone) is a ValueError
    naming the variables: guessing would train a different global batch than the one asked.
    """
    present = [name for name in LAUNCH_VARIABLES if name in os.environ]
    if not present:
        return None
    launch = "launch with torchrun --nproc_per_node N -m gptcourse.distributed ..., which sets them all"
    given = ", ".join(f"{name}={os.environ[name]!r}" for name in present)
    if len(present) < len(LAUNCH_VARIABLES):
        missing = [name for name in LAUNCH_VARIABLES if name not in present]
        raise ValueError(f"{given} is set but {' and '.join(missing)} not: {', '.join(LAUNCH_VARIABLES)} go together. "
                         f"To run one process unset {', '.join(present)}; for several, {launch}.")  # fmt: skip
    values = {}
    for name in LAUNCH_VARIABLES:
        try:
            values[name] = int(os.environ[name])
        except ValueError:
            raise ValueError(f"{name}={os.environ[name]!r} is not an integer ({given}): {launch}.") from None
    rank, world_size, local_rank = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world_size < 1 or not 0 <= rank < world_size or not 0 <= local_rank < world_size:
        raise ValueError(f"{given}: WORLD_SIZE must be >= 1 and RANK and LOCAL_RANK in 0 .. WORLD_SIZE - 1: {launch}.")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name, "").strip():
            raise ValueError(f"{given}, but {name} is not set: the ranks meet at MASTER_ADDR:MASTER_PORT. {launch[0].upper()}{launch[1:]}, "
                             "or by hand set MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 (a free port) in every process.")  # fmt: skip
    port = os.environ["MASTER_PORT"].strip()
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"MASTER_PORT={port!r} is not a port number (1 .. 65535): give a free port, e.g. 29500.")
    return LaunchEnvironment(rank, world_size, local_rank, f"{os.environ['MASTER_ADDR'].strip()}:{port}")


def choose_device_and_backend(device: str = "auto", backend: str = "auto") -> tuple[str, str]:
    """(device type, backend): NCCL on CUDA GPUs, gloo on CPUs, unless told otherwise (appendix A)."""
    one_of("device", device, DEVICES)
    one_of("backend", backend, BACKENDS)
    has_cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise ValueError("--device cuda: there is no CUDA GPU here (torch.cuda.is_available() is False). Use --device cpu.")
    if backend == "auto":
        backend = "nccl" if device == "cuda" else "gloo"
    if backend == "nccl" and device != "cuda":
        raise ValueError("--backend nccl needs CUDA GPUs (NCCL moves data between NVIDIA GPUs): on a CPU use --backend gloo, or auto.")
    return device, backend


def init_distributed(device: str = "auto", backend: str = "auto", timeout_s: float = 600.0) -> ProcessInfo:
    """Join the process group torchrun describes in the environment (without torchrun, a group of one).

    Defined in appendix A. Each rank drives GPU ``LOCAL_RANK`` of its node. Joining, or a
    collective, that waits longer than `timeout_s` (a rank never started, died or hangs)
    fails instead of waiting for ever: joining raises TimeoutError, naming what it awaited.
    """
    device_type, backend = choose_device_and_backend(device, backend)
    timeout_s = finite_number("timeout_s", timeout_s, strictly_above=0)
    launch = launch_environment()
    local_rank = launch.local_rank if launch else 0
    where = torch.device("cuda", local_rank) if device_type == "cuda" else torch.device("cpu")
    if where.type == "cuda" and local_rank >= torch.cuda.device_count():
        raise ValueError(f"LOCAL_RANK={local_rank}, but this node has {torch.cuda.device_count()} GPU(s): start at most that many processes per node.")
    if where.type == "cuda":
        torch.cuda.set_device(where)
    if launch:  # torchrun set RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
        _join_group(backend, launch, timeout_s)  # init_method="env://"
    else:  # one process, no launcher: a group of one, its store in memory (no port, no file)
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timedelta(seconds=timeout_s))
    return ProcessInfo(dist.get_rank(), local_rank, dist.get_world_size(), where, backend)


def _join_group(backend: str, launch: LaunchEnvironment, timeout_s: float) -> None:
    """``init_process_group`` from the environment, saying what it awaits when the others are slow to come.

    Under torchrun every rank starts at once and the group forms in about a second; a rank
    still waiting after `NOTICE_AFTER_S` most likely waits for a process nobody started.
    """
    who = f"rank {launch.rank} of {launch.world_size}"
    one_process = "or unset RANK, WORLD_SIZE and LOCAL_RANK to run one process"

    def say_what_is_awaited() -> None:
        waiting = f"waiting for the other ranks to join at {launch.master} (timeout {timeout_s:g} s)"
        print(f"{who}: {waiting}; start them, {one_process}", file=sys.stderr, flush=True)

    notice = threading.Timer(min(NOTICE_AFTER_S, timeout_s / 2), say_what_is_awaited)
    notice.daemon = True  # the store's wait releases the GIL: this thread speaks while it waits
    if launch.world_size > 1:
        notice.start()
    start = time.monotonic()
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except dist.DistError as err:  # raised from C++, its message names a socket, not the remedy
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if time.monotonic() - start >= timeout_s or "timed out" in detail.lower():
            raise TimeoutError(
                f"{who}: the other ranks did not join at {launch.master} within {timeout_s:g} s ({detail}): start all "
                f"{launch.world_size} processes at once (torchrun --nproc_per_node {launch.world_size} -m ... starts them), {one_process}."
            ) from err
        raise ConnectionError(
            f"{who}: could not form the group at {launch.master} ({detail}): MASTER_PORT must be a free port on the "
            f"MASTER_ADDR machine that every rank can reach; torchrun --standalone picks one itself."
        ) from err
    finally:
        notice.cancel()


def shutdown() -> None:
    """Leave the process group, if this process is in one (appendix A). Safe to call twice."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def global_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over the ranks (a new tensor; `value` itself outside a group) (appendix A)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        value = value.detach().clone()
        dist.all_reduce(value)  # a sum: gloo has no AVG
        value /= dist.get_world_size()
    return value


# ------------------------------------------------------------------ replicate, or shard


def wrap_ddp(model: nn.Module, device: torch.device, bucket_cap_mb: float | None = None) -> DistributedDataParallel:
    """`model` on `device`, wrapped in DDP: a full replica per rank, gradients all-reduced (appendix A).

    DDP all-reduces each bucket of about `bucket_cap_mb` MiB of gradients (in reverse parameter
    order) as soon as the backward has filled it, hiding communication behind the rest of the
    backward. None keeps DDP's defaults: 25 MiB, and a first bucket of 1 MiB that leaves early.
    """
    if bucket_cap_mb is not None:
        finite_number("bucket_cap_mb", bucket_cap_mb, strictly_above=0)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model.to(device), device_ids=device_ids, bucket_cap_mb=bucket_cap_mb)


def shard_fsdp(model: GPT, device: torch.device) -> GPT:
    """`model` sharded by FSDP2's ``fully_shard``: each rank keeps 1/N of every parameter (appendix A).

    Each block's weights are gathered just before it runs and freed after; the root unit holds
    the rest (embeddings, tied head, final norm). FSDP does not broadcast: start every rank from one seed.
    """
    model.to(device)
    for block in model.trf_blocks:
        fully_shard(block)
    fully_shard(model)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (its state has no ``module.`` prefix), or the model itself."""
    return model.module if isinstance(model, DistributedDataParallel) else model


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Inside it, a backward pass all-reduces the gradients (`enabled`) or only adds them locally (appendix A).

    DDP's ``no_sync()`` must cover the forward pass too; FSDP2's switch is ``set_requires_gradient_sync``.
    """
    if enabled:
        yield
    elif isinstance(model, DistributedDataParallel):
        with model.no_sync():
            yield
    elif isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


@dataclass
class AllReduceCounter:
    """What DDP sent: one all-reduce per bucket per synchronised backward pass (appendix A)."""

    calls: int = 0
    bytes: int = 0

    def reset(self) -> None:
        self.calls, self.bytes = 0, 0


def _counting_all_reduce(counter, bucket):  # no annotations: DDP checks them, and these would be strings
    buffer = bucket.buffer()
    counter.calls += 1
    counter.bytes += buffer.numel() * buffer.element_size()
    return default_hooks.allreduce_hook(None, bucket)  # DDP's own: divide by N, all-reduce (sum)


def count_all_reduces(model: DistributedDataParallel) -> AllReduceCounter:
    """Count a DDP model's gradient all-reduces, with a communication hook registered before its first step (appendix A).

    The hook sees every bucket DDP sends; it counts it, then does what DDP does without a hook.
    """
    if not isinstance(model, DistributedDataParallel):
        raise TypeError(f"model must be a DistributedDataParallel (see wrap_ddp), got {type(model).__name__}.")
    counter = AllReduceCounter()
    model.register_comm_hook(counter, _counting_all_reduce)
    return counter


# ------------------------------------------------------------------ one optimizer step


def accumulate_gradients(
    model: nn.Module,
    micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> torch.Tensor:
    """Forward and backward over this rank's micro-batches (appendix A).

    Each micro-step's loss is divided by G = len(micro_batches) and only the last one
    all-reduces (`gradient_sync`): the gradient of the global batch's mean loss, which
    it returns (on every rank).
    """
    if not micro_batches:
        raise ValueError("micro_batches is empty: give (inputs, targets) pairs.")
    device = next(model.parameters()).device
    dtype = dtype or autocast_dtype(device)
    accum = len(micro_batches)
    loss_sum = torch.zeros((), device=device)
    for k, (inputs, targets) in enumerate(micro_batches):
        with gradient_sync(model, enabled=k == accum - 1):  # DDP decides in the forward
            with autocast(device, dtype):
                loss = batch_loss(model, inputs.to(device), targets.to(device))
            scaled = loss / accum  # mean over G micro-steps; DDP averages the N ranks
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        loss_sum += loss.detach()
    return global_mean(loss_sum / accum)


# ------------------------------------------------------------------ weights and measurements


def save_weights(model: nn.Module, path: str | Path) -> Path | None:
    """Save the model's weights as safetensors, without DDP's ``module.`` prefix; call on every rank (appendix A).

    Under FSDP the shards are gathered first (a collective). Rank 0 writes the file
    (atomically: `gptcourse.files`) and returns its path; the others None. GPT's tied head is
    saved once (safetensors refuses one tensor twice): ``safetensors.torch.load_model`` ties it.
    """
    if isinstance(model, FSDPModule):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict  # slow to import: only here

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        state = unwrap(model).state_dict()
    if dist.is_initialized() and dist.get_rank() != 0:
        return None
    first_names = {name for name, _ in unwrap(model).named_parameters()} | {name for name, _ in unwrap(model).named_buffers()}
    tensors = {name: t.detach().cpu().contiguous() for name, t in state.items() if name in first_names}
    data = safetensors.torch.save(tensors, metadata={"format": "pt"})
    return write_atomically(path, lambda f: f.write(data))


def measure_all_reduce(num_elements: int, device: torch.device | str, repeats: int = 5) -> list[float]:
    """Seconds taken by each of `repeats` all-reduces of `num_elements` fp32 numbers, after a warm-up (appendix A). A collective."""
    buffer = torch.ones(positive_int("num_elements", num_elements), device=device)
    dist.barrier()
    return time_calls(lambda: dist.all_reduce(buffer), device, repeats=positive_int("repeats", repeats), warmup=1)


# ------------------------------------------------------------------ an all-reduce written by hand (Exercise A.5)

_EXERCISE = GPTConfig(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2)


def _exercise_model_and_batch() -> tuple[GPT, torch.Tensor, torch.Tensor]:
    """The same small GPT and global batch of 8 sequences in every process."""
    ids = torch.randint(0, _EXERCISE.vocab_size, (8, _EXERCISE.context_length + 1), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    return GPT(_EXERCISE), ids[:, :-1], ids[:, 1:]


def _hand_all_reduce_worker(rank: int, world_size: int, directory: str, source: str, name: str) -> None:
    """One rank: backward on its share of the batch, then the function under test, then save the gradients."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{directory}/store", rank=rank, world_size=world_size, timeout=timedelta(seconds=60))
    try:
        namespace = {"torch": torch, "dist": dist}
        exec(compile(source, f"<{name}>", "exec"), namespace)  # the learner's own function, in this process
        model, inputs, targets = _exercise_model_and_batch()
        share = len(inputs) // world_size
        rows = slice(rank * share, (rank + 1) * share)
        batch_loss(model, inputs[rows], targets[rows]).backward()
        namespace[name](model)
        torch.save({n: p.grad for n, p in model.named_parameters()}, f"{directory}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def check_gradient_all_reduce(average_gradients: Callable[[nn.Module], None], world_size: int = 2, timeout_s: float = 120.0) -> float:
    """Run `average_gradients(model)` after backward on `world_size` gloo processes (Exercise A.5, appendix A).

    Each rank holds the gradient of its 8/N sequences; afterwards every rank must hold the
    gradient of all 8, as one process computes it. Returns the largest relative difference;
    an AssertionError says which rank is wrong, and by what factor. The function travels
    as its source: it may use ``torch`` and ``dist``, and must import anything else itself.
    """
    if not inspect.isfunction(average_gradients) or average_gradients.__name__ == "<lambda>":
        raise TypeError(f"average_gradients must be a function defined with def, got {average_gradients!r}.")
    world_size = positive_int("world_size", world_size)
    if 8 % world_size:
        raise ValueError(f"world_size must divide the 8 sequences of the batch, got {world_size}.")
    source = textwrap.dedent(inspect.getsource(average_gradients))
    with tempfile.TemporaryDirectory(prefix="gptcourse-allreduce-") as directory:
        context = mp.start_processes(
            _hand_all_reduce_worker, args=(world_size, directory, source, average_gradients.__name__),
            nprocs=world_size, join=False, start_method="spawn",
        )  # fmt: skip
        deadline = time.monotonic() + finite_number("timeout_s", timeout_s, strictly_above=0)
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                raise TimeoutError(f"the {world_size} ranks ran past {timeout_s} s: does every rank call the same collectives?")
        grads = [torch.load(f"{directory}/rank{r}.pt") for r in range(world_size)]
    model, inputs, targets = _exercise_model_and_batch()
    batch_loss(model, inputs, targets).backward()  # one process, the whole batch
    reference = {n: p.grad for n, p in model.named_parameters()}
    worst = 0.0
    for rank, mine in enumerate(grads):
        difference = relative_difference(mine, reference)
        ratio = math.sqrt(sum(g.square().sum().item() for g in mine.values()) / sum(g.square().sum().item() for g in reference.values()))
        assert difference < 1e-4, (
            f"rank {rank}: the gradient differs from the whole batch's by {difference:.1e} (relative), "
            f"its norm is {ratio:.2f} × the right one: a sum instead of a mean gives {world_size:.2f} ×, "
            "a rank's own gradient differs in direction"
        )
        worst = max(worst, difference)
    return worst
