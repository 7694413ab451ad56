"""Chapter 7's training step on many GPUs: PyTorch DDP, launched by torchrun (appendix A).

    torchrun --standalone --nproc_per_node=2 -m gptcourse.distributed --preset gpt-nano \\
        --steps 20 --micro-batch 4 --grad-accum 1 --seed 0 --drop-rate 0 --out runs/ddp

Each rank trains on its share of every global batch (`gptcourse.sharding`), DDP averaging the
gradients once a step; rank 0 alone prints, evaluates and saves (``OUT/model.safetensors``,
``OUT/metrics.json``). ``--fsdp`` shards with FSDP2 instead; ``python -m`` runs one process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import safetensors.torch
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .checkpoint import check_writable
from .checks import finite_number, non_negative_int, one_of, optional_positive_int, positive_int
from .config import PRESETS, GPTConfig
from .data import GPTDataset, create_dataloader, load_corpus, train_val_split
from .device import autocast, autocast_dtype, device_name, needs_grad_scaler
from .files import write_atomically
from .flops import count_flops
from .model import GPT
from .peaks import datasheet_peak, matmul_precision
from .sharding import accumulation_steps, global_batch_indices, local_micro_batches, stack_windows
from .timing import synchronize, time_calls
from .train import TrainConfig, batch_loss, evaluate, lr_at, make_optimizer, optimizer_step

WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
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

    Defined in appendix A. Each rank drives GPU ``LOCAL_RANK`` of its node. A collective that
    waits longer than `timeout_s` (a rank died or hangs) fails instead of waiting for ever.
    """
    device_type, backend = choose_device_and_backend(device, backend)
    timeout = timedelta(seconds=finite_number("timeout_s", timeout_s, strictly_above=0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    where = torch.device("cuda", local_rank) if device_type == "cuda" else torch.device("cpu")
    if where.type == "cuda" and local_rank >= torch.cuda.device_count():
        raise ValueError(f"LOCAL_RANK={local_rank}, but this node has {torch.cuda.device_count()} GPU(s): start at most that many processes per node.")
    if where.type == "cuda":
        torch.cuda.set_device(where)
    if "RANK" in os.environ:  # torchrun set RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
        dist.init_process_group(backend, timeout=timeout)  # init_method="env://"
    else:  # one process, no launcher: a group of one, its store in memory (no port, no file)
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
    return ProcessInfo(dist.get_rank(), local_rank, dist.get_world_size(), where, backend)


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


def wrap_ddp(model: nn.Module, device: torch.device, bucket_cap_mb: float = 25.0) -> DistributedDataParallel:
    """`model` on `device`, wrapped in DDP: a full replica per rank, gradients all-reduced (appendix A).

    DDP all-reduces each bucket of about `bucket_cap_mb` MB of gradients (in reverse parameter order)
    as soon as the backward has filled it: communication hides behind the rest of the backward.
    """
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


# ------------------------------------------------------------------ the run


@dataclass
class DistributedConfig:
    """A run's options, as on the command line, checked by name (appendix A). Global batch = micro_batch × grad_accum × ranks."""

    out: str | Path = "runs/ddp"  # OUT/model.safetensors and OUT/metrics.json; made a Path
    preset: str = "gpt-nano"
    steps: int = 20  # optimizer steps
    micro_batch: int = 4  # sequences per rank per forward pass
    grad_accum: int | None = None  # micro-steps per optimizer step; None: 1, or what global_batch needs
    global_batch: int | None = None  # sequences per optimizer step, all ranks together
    seed: int = 0
    drop_rate: float = 0.0
    lr: float = 6e-4  # the peak: warm-up over a tenth of the steps, cosine decay to a tenth (chapter 7)
    eval_batches: int = 10  # validation micro-batches, before the first step and after the last
    device: str = "auto"
    backend: str = "auto"
    fsdp: bool = False  # shard with FSDP2 instead of replicating with DDP
    bucket_cap_mb: float = 25.0  # DDP's bucket size
    peak_tflops: float | None = None  # one device's peak, for MFU; a GPU in gptcourse.peaks has its datasheet's
    timeout_s: float = 600.0  # a collective waiting longer fails instead of hanging

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        GPTConfig.from_preset(self.preset, drop_rate=self.drop_rate)  # a known preset, a dropout in [0, 1)
        for name in ("steps", "micro_batch", "eval_batches"):
            positive_int(name, getattr(self, name))
        for name in ("grad_accum", "global_batch"):
            optional_positive_int(name, getattr(self, name))
        if non_negative_int("seed", self.seed) >= 2**31:
            raise ValueError(f"seed must be below 2**31, got {self.seed}.")
        for name in ("lr", "bucket_cap_mb", "timeout_s", *(["peak_tflops"] if self.peak_tflops is not None else [])):
            finite_number(name, getattr(self, name), strictly_above=0.0)
        device_type, _ = choose_device_and_backend(self.device, self.backend)
        if self.fsdp and needs_grad_scaler(autocast_dtype(torch.device(device_type))):
            raise ValueError("--fsdp in fp16 (a GPU without native bf16) needs a sharded gradient scaler, which the course does not build: use DDP.")

    def grad_accum_for(self, world_size: int) -> int:
        """The accumulation steps G on `world_size` ranks: given, or what ``global_batch`` needs."""
        if self.global_batch is None:
            return self.grad_accum or 1
        accum = accumulation_steps(self.global_batch, self.micro_batch, world_size)
        if self.grad_accum not in (None, accum):
            raise ValueError(f"grad_accum={self.grad_accum} disagrees with global_batch={self.global_batch}, which needs {accum}: give one of them.")
        return accum


def _prepare(config: DistributedConfig, world_size: int) -> tuple[GPTConfig, int, GPTDataset, DataLoader]:
    """Everything that can fail on bad input, checked before any process waits for another."""
    check_writable(config.out, "--out")
    grad_accum = config.grad_accum_for(world_size)
    model_config = GPTConfig.from_preset(config.preset, drop_rate=config.drop_rate)
    T = model_config.context_length
    val_text, train_text = train_val_split(load_corpus("python_docs"), train_ratio=0.1)  # the first tenth, as in chapter 7
    train_set = GPTDataset(train_text, max_length=T, stride=T)
    val_loader = create_dataloader(val_text, batch_size=config.micro_batch, max_length=T, stride=T, shuffle=False)
    global_batch_indices(len(train_set), config.micro_batch * grad_accum * world_size, 0, config.seed)  # enough windows?
    return model_config, grad_accum, train_set, val_loader


class _RankRun:
    """One rank's share of a run: its model (replicated or sharded), optimizer and data, step by step."""

    def __init__(self, config: DistributedConfig, info: ProcessInfo, model_config: GPTConfig, grad_accum: int, train_set: GPTDataset, val_loader: DataLoader):
        self.config, self.info, self.train_set, self.val_loader, self.grad_accum = config, info, train_set, val_loader, grad_accum
        self.dtype = autocast_dtype(info.device)
        torch.manual_seed(config.seed)  # the same initial weights on every rank: FSDP needs it (DDP broadcasts anyway)
        model = GPT(model_config)
        self.model = shard_fsdp(model, info.device) if config.fsdp else wrap_ddp(model, info.device, config.bucket_cap_mb)
        self.counter = None if config.fsdp else count_all_reduces(self.model)
        torch.manual_seed(config.seed + 1 + info.rank)  # dropout: a different stream on every rank
        self.schedule = TrainConfig(max_steps=config.steps, lr=config.lr, min_lr=config.lr / 10, grad_accum_steps=grad_accum, sample_every=0, progress=False)
        self.optimizer = make_optimizer(unwrap(self.model), self.schedule, info.device)
        self.scaler = torch.amp.GradScaler(info.device.type, enabled=needs_grad_scaler(self.dtype))  # fp16 only
        self.global_batch = config.micro_batch * grad_accum * info.world_size

    def validation_loss(self) -> float:
        """DDP: rank 0 alone evaluates its replica (nan elsewhere). FSDP: every rank takes part, gathering the shards."""
        args = (self.val_loader, self.config.eval_batches, self.info.device, self.dtype)
        if not self.config.fsdp:
            return evaluate(unwrap(self.model), *args) if self.info.is_main else math.nan
        loss = evaluate(self.model, *args)
        self.model.reshard()  # without a backward pass, FSDP would keep the root's weights gathered
        return loss

    def step(self, step: int) -> float:
        """One optimizer step on this rank's share of the global batch; the global batch's mean loss."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, self.schedule)
        indices = global_batch_indices(len(self.train_set), self.global_batch, step, self.config.seed)
        shares = local_micro_batches(indices, self.info.rank, self.info.world_size, self.grad_accum)
        if self.counter is not None:
            self.counter.reset()
        loss = accumulate_gradients(self.model, [stack_windows(self.train_set, ix) for ix in shares], self.dtype, self.scaler)
        optimizer_step(self.model, self.optimizer, self.scaler, self.schedule.grad_clip)
        return loss.item()


def _train(config: DistributedConfig, info: ProcessInfo, model_config: GPTConfig, *prepared) -> dict | None:
    """Train on this rank; rank 0 alone prints, and returns the metrics (`_report`)."""
    say = print if info.is_main else (lambda *args, **kwargs: None)
    run = _RankRun(config, info, model_config, *prepared)
    N, tokens, held = info.world_size, run.global_batch * model_config.context_length, [0] * info.world_size  # parameters on each rank
    dist.all_gather_object(held, sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in run.model.parameters()))
    num_parameters = sum(held) if config.fsdp else held[0]  # FSDP: each rank a shard; DDP: each all of them
    say(f"{'FSDP2' if config.fsdp else 'DDP'} on {N} rank(s) ({info.backend}, {info.device.type}) | {config.preset}, {num_parameters:,} parameters")
    say(f"global batch {run.global_batch} = micro-batch {config.micro_batch} × accumulation {run.grad_accum} × {N} rank(s), {tokens:,} tokens")
    val_losses = [run.validation_loss()]
    say(f"step {0:>5} | val loss {val_losses[0]:.4f}")
    step_times, losses = [], []
    for step in range(config.steps):
        start = time.perf_counter()
        losses.append(run.step(step))
        synchronize(info.device)
        step_times.append(time.perf_counter() - start)
        if (step + 1) % max(1, config.steps // 10) == 0 or step + 1 == config.steps:
            say(f"step {step + 1:>5} | loss {losses[-1]:.4f} | lr {lr_at(step, run.schedule):.1e} | {tokens / step_times[-1]:,.0f} tokens/s")
    val_losses.append(run.validation_loss())
    say(f"step {config.steps:>5} | val loss {val_losses[1]:.4f}")
    all_reduce_seconds = statistics.median(measure_all_reduce(num_parameters, info.device)) if N > 1 and not config.fsdp else None
    path = save_weights(run.model, config.out / WEIGHTS_FILE)  # a collective under FSDP
    if not info.is_main:
        return None
    metrics = _report(run, model_config, held, num_parameters, losses, val_losses, step_times, all_reduce_seconds)
    write_atomically(config.out / METRICS_FILE, lambda f: f.write(json.dumps(metrics, indent=1).encode()))
    print(f"saved {path} and {METRICS_FILE}")
    return metrics


def _report(run: _RankRun, model_config: GPTConfig, held, num_parameters, losses, val_losses, step_times, all_reduce_seconds) -> dict:
    """Rank 0's last lines (speed, MFU, communication), and the run's metrics."""
    config, N, B, T = run.config, run.info.world_size, run.global_batch, model_config.context_length
    step_time = statistics.median(step_times[1:] or step_times)  # the first step warms up (allocations, buckets)
    flops_per_step = count_flops(model_config, batch_size=B, seq_len=T).total  # all ranks together
    peak = config.peak_tflops * 1e12 if config.peak_tflops else None
    if peak is None and run.info.device.type == "cuda":
        peak = datasheet_peak(device_name(run.info.device), matmul_precision(run.info.device, run.dtype))
    mfu = None if peak is None else flops_per_step / step_time / (N * peak)  # aggregate FLOP/s ÷ (N × one device's peak)
    print(f"median step {step_time * 1e3:,.1f} ms: {B * T / step_time:,.0f} tokens/s over {N} rank(s), {flops_per_step / step_time / 1e9:,.2f} GFLOP/s"
          + ("" if mfu is None else f", MFU {mfu:.1%} of {N} × {peak / 1e12:.3g} TFLOP/s"))  # fmt: skip
    if run.counter is not None:
        print(f"DDP all-reduced {run.counter.calls} bucket(s), {run.counter.bytes / 1e6:.2f} MB of gradients, in the last step")
    if all_reduce_seconds is not None:
        print(f"one all-reduce of {4 * num_parameters / 1e6:.2f} MB (fp32, one per parameter): {all_reduce_seconds * 1e3:.1f} ms")
    if config.fsdp:
        print(f"parameters held per rank: {', '.join(f'{n:,}' for n in held)} of {num_parameters:,}")
    return dict(
        kind="FSDP2" if config.fsdp else "DDP", world_size=N, backend=run.info.backend, device=str(run.info.device), preset=config.preset,
        num_parameters=num_parameters, parameters_per_rank=held, micro_batch=config.micro_batch, grad_accum=run.grad_accum, global_batch=B,
        seq_len=T, steps=config.steps, losses=losses, val_loss_start=val_losses[0], val_loss_end=val_losses[1], step_times=step_times,
        step_time=step_time, tokens_per_second=B * T / step_time, flops_per_step=flops_per_step, achieved_flops=flops_per_step / step_time,
        peak_flops_per_device=peak, mfu=mfu, all_reduces_per_step=run.counter and run.counter.calls,
        all_reduce_bytes_per_step=run.counter and run.counter.bytes, all_reduce_seconds=all_reduce_seconds, torch=torch.__version__,
        precision=str(run.dtype).removeprefix("torch."),
    )  # fmt: skip


def train_data_parallel(config: DistributedConfig) -> dict | None:
    """Train as `config` says, on every rank torchrun started, or in this process alone (appendix A).

    Bad input fails before the process group is made; the group is left on the way out,
    on an error too. Rank 0 returns the metrics (also in ``OUT/metrics.json``), others None.
    """
    if not isinstance(config, DistributedConfig):
        raise TypeError(f"config must be a DistributedConfig, got {type(config).__name__}.")
    return _run(config, _prepare(config, int(os.environ.get("WORLD_SIZE", 1))))


def _run(config: DistributedConfig, prepared: tuple) -> dict | None:
    info = init_distributed(config.device, config.backend, config.timeout_s)
    try:
        return _train(config, info, *prepared)
    finally:
        shutdown()


def parse_args(argv: Sequence[str] | None = None) -> DistributedConfig:
    """The command line as a checked `DistributedConfig` (appendix A); a bad option exits with status 2 and its message."""
    defaults = DistributedConfig()
    parser = argparse.ArgumentParser(prog="python -m gptcourse.distributed", description="Data-parallel GPT training (appendix A).")
    parser.add_argument("--out", required=True, help="directory for model.safetensors and metrics.json")
    parser.add_argument("--preset", default=defaults.preset, choices=list(PRESETS))
    for name in ("steps", "micro_batch", "grad_accum", "global_batch", "seed", "eval_batches"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("drop_rate", "lr", "bucket_cap_mb", "peak_tflops", "timeout_s"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--device", default=defaults.device, choices=DEVICES)
    parser.add_argument("--backend", default=defaults.backend, choices=BACKENDS)
    parser.add_argument("--fsdp", action="store_true", help="shard with FSDP2 instead of replicating with DDP")
    try:
        return DistributedConfig(**vars(parser.parse_args(argv)))
    except (TypeError, ValueError) as err:
        parser.error(str(err))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gptcourse.distributed`` (appendix A): 0 on success, 2 on bad input."""
    config = parse_args(argv)
    try:
        prepared = _prepare(config, int(os.environ.get("WORLD_SIZE", 1)))
    except ValueError as err:  # bad input only: an error while training keeps its traceback
        if os.environ.get("RANK", "0") == "0":  # every rank finds the same mistake: say it once
            print(f"python -m gptcourse.distributed: error: {err}", file=sys.stderr)
        return 2
    _run(config, prepared)
    return 0


if __name__ == "__main__":
    sys.exit(main())
