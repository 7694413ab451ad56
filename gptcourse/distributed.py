"""Chapter 7's training step on many GPUs: PyTorch DDP, launched by torchrun (appendix A).

    torchrun --standalone --nproc_per_node=2 -m gptcourse.distributed --preset gpt-nano \\
        --steps 20 --micro-batch 4 --grad-accum 1 --seed 0 --drop-rate 0 --out runs/ddp

Each rank trains on its share of every global batch (`gptcourse.sharding`) with the steps of
`gptcourse.data_parallel`; rank 0 alone prints, evaluates and saves (``OUT/model.safetensors``,
``OUT/metrics.json``). ``--fsdp`` shards with FSDP2; ``--checkpoint-every K`` saves
``OUT/checkpoint.pt`` and resumes from it (``torchrun --max-restarts``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from .checkpoint import check_writable, has_checkpoint, load_checkpoint, save_checkpoint
from .checks import finite_number, non_negative_int, optional_positive_int, positive_int
from .config import PRESETS, GPTConfig
from .data import CORPORA, GPTDataset, create_dataloader, load_corpus, train_val_split
from .data_parallel import (  # noqa: F401  (re-exported: appendix A imports them from here)
    BACKENDS,
    DEVICES,
    AllReduceCounter,
    LaunchEnvironment,
    ProcessInfo,
    accumulate_gradients,
    choose_device_and_backend,
    count_all_reduces,
    global_mean,
    gradient_sync,
    init_distributed,
    launch_environment,
    measure_all_reduce,
    save_weights,
    shard_fsdp,
    shutdown,
    unwrap,
    wrap_ddp,
)
from .device import autocast_dtype, device_name, needs_grad_scaler
from .files import write_atomically
from .flops import count_flops
from .model import GPT
from .peaks import datasheet_peak, matmul_precision
from .sharding import accumulation_steps, global_batch_indices, local_micro_batches, stack_windows
from .timing import synchronize
from .train import TrainConfig, evaluate, lr_at, make_optimizer, optimizer_step

WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"

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
    bucket_cap_mb: float | None = None  # DDP's bucket size in MiB; None: DDP's default (25, the first bucket 1)
    peak_tflops: float | None = None  # one device's peak, for MFU; a GPU in gptcourse.peaks has its datasheet's
    timeout_s: float = 600.0  # a collective waiting longer fails instead of hanging
    corpus: str = "python_docs"  # a name in gptcourse.data.CORPORA, or the path of a UTF-8 text file
    checkpoint_every: int = 0  # save OUT/checkpoint.pt every this many steps, and resume from it; 0: never

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        GPTConfig.from_preset(self.preset, drop_rate=self.drop_rate)  # a known preset, a dropout in [0, 1)
        non_negative_int("checkpoint_every", self.checkpoint_every)
        if self.corpus not in CORPORA and not Path(self.corpus).is_file():
            raise ValueError(f"corpus must be one of {sorted(CORPORA)} or the path of a text file, got {self.corpus!r}.")
        if self.fsdp and self.checkpoint_every:
            raise ValueError("--checkpoint-every with --fsdp: a sharded checkpoint needs torch.distributed.checkpoint, which the course does not build: use DDP.")
        for name in ("steps", "micro_batch", "eval_batches"):
            positive_int(name, getattr(self, name))
        for name in ("grad_accum", "global_batch"):
            optional_positive_int(name, getattr(self, name))
        if non_negative_int("seed", self.seed) >= 2**31:
            raise ValueError(f"seed must be below 2**31, got {self.seed}.")
        for name in ("lr", "timeout_s", *(name for name in ("peak_tflops", "bucket_cap_mb") if getattr(self, name) is not None)):
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
    text = load_corpus(config.corpus) if config.corpus in CORPORA else Path(config.corpus).read_text(encoding="utf-8")
    val_text, train_text = train_val_split(text, train_ratio=0.1)  # the first tenth held out
    train_set = GPTDataset(train_text, max_length=T, stride=T)
    global_batch_indices(len(train_set), config.micro_batch * grad_accum * world_size, 0, config.seed)  # enough windows?
    # The held-out tenth may have fewer windows than a micro-batch: evaluate them all, in one smaller batch.
    val_batch = min(config.micro_batch, len(GPTDataset(val_text, max_length=T, stride=T)))
    val_loader = create_dataloader(val_text, batch_size=val_batch, max_length=T, stride=T, shuffle=False)
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
        self.resumed = self.resume()  # {} on a fresh start

    def resume(self) -> dict:
        """The state of OUT/checkpoint.pt, loaded into the model, optimizer and scaler; {} if none.

        Every rank reads the file (several machines need OUT on a filesystem they share), and
        they must agree on the step. Dropout's random streams start afresh.
        """
        found = bool(self.config.checkpoint_every) and has_checkpoint(self.config.out)
        state = load_checkpoint(self.config.out, unwrap(self.model), self.optimizer, self.scaler) if found else {}
        steps = [0] * self.info.world_size
        dist.all_gather_object(steps, state.get("step", 0))
        if len(set(steps)) > 1:
            raise RuntimeError(f"The ranks found checkpoints of different steps {steps}: put --out on a filesystem all machines share.")
        return state

    def save(self, step: int, losses: list[float], grad_norms: list[float], val_loss_start: float) -> None:
        """Rank 0 saves the run after `step` steps: DDP's replicas are identical."""
        if self.info.is_main:
            state = {"step": step, "losses": losses, "grad_norms": grad_norms, "val_loss_start": val_loss_start}
            save_checkpoint(self.config.out, unwrap(self.model), self.optimizer, self.scaler, state)

    def validation_loss(self) -> float:
        """DDP: rank 0 alone evaluates its replica (nan elsewhere). FSDP: every rank takes part, gathering the shards."""
        args = (self.val_loader, self.config.eval_batches, self.info.device, self.dtype)
        if not self.config.fsdp:
            return evaluate(unwrap(self.model), *args) if self.info.is_main else math.nan
        loss = evaluate(self.model, *args)
        self.model.reshard()  # without a backward pass, FSDP would keep the root's weights gathered
        return loss

    def step(self, step: int) -> tuple[float, float]:
        """One optimizer step on this rank's share of the global batch: its mean loss, its gradient's norm before clipping."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, self.schedule)
        indices = global_batch_indices(len(self.train_set), self.global_batch, step, self.config.seed)
        shares = local_micro_batches(indices, self.info.rank, self.info.world_size, self.grad_accum)
        if self.counter is not None:
            self.counter.reset()
        loss = accumulate_gradients(self.model, [stack_windows(self.train_set, ix) for ix in shares], self.dtype, self.scaler)
        grad_norm = optimizer_step(self.model, self.optimizer, self.scaler, self.schedule.grad_clip)
        return loss.item(), grad_norm


def _train(config: DistributedConfig, info: ProcessInfo, model_config: GPTConfig, *prepared) -> dict | None:
    """Train on this rank; rank 0 alone prints, and returns the metrics (`_report`)."""
    say = print if info.is_main else (lambda *args, **kwargs: None)
    run = _RankRun(config, info, model_config, *prepared)
    N, tokens, held = info.world_size, run.global_batch * model_config.context_length, [0] * info.world_size  # parameters on each rank
    dist.all_gather_object(held, sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in run.model.parameters()))
    num_parameters = sum(held) if config.fsdp else held[0]  # FSDP: each rank a shard; DDP: each all of them
    say(f"{'FSDP2' if config.fsdp else 'DDP'} on {N} rank(s) ({info.backend}, {info.device.type}) | {config.preset}, {num_parameters:,} parameters")
    say(f"global batch {run.global_batch} = micro-batch {config.micro_batch} × accumulation {run.grad_accum} × {N} rank(s), {tokens:,} tokens")
    first = run.resumed.get("step", 0)
    losses, grad_norms = list(run.resumed.get("losses", [])), list(run.resumed.get("grad_norms", []))
    val_losses = [run.resumed["val_loss_start"] if first else run.validation_loss()]
    say(f"resumed from {config.out / 'checkpoint.pt'} after step {first}" if first else f"step {0:>5} | val loss {val_losses[0]:.4f}")
    step_times = []
    for step in range(first, config.steps):
        start = time.perf_counter()
        loss, grad_norm = run.step(step)
        losses.append(loss)
        grad_norms.append(grad_norm)
        synchronize(info.device)
        step_times.append(time.perf_counter() - start)
        if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
            run.save(step + 1, losses, grad_norms, val_losses[0])
        if (step + 1) % max(1, config.steps // 10) == 0 or step + 1 == config.steps:
            say(f"step {step + 1:>5} | loss {losses[-1]:.4f} | grad norm {grad_norm:.3f} | lr {lr_at(step, run.schedule):.1e} | {tokens / step_times[-1]:,.0f} tokens/s")
    val_losses.append(run.validation_loss())
    say(f"step {config.steps:>5} | val loss {val_losses[1]:.4f}")
    all_reduce_seconds = statistics.median(measure_all_reduce(num_parameters, info.device)) if N > 1 and not config.fsdp else None
    path = save_weights(run.model, config.out / WEIGHTS_FILE)  # a collective under FSDP
    if not info.is_main:
        return None
    metrics = _report(run, model_config, held, num_parameters, (losses, grad_norms), val_losses, step_times, all_reduce_seconds)
    write_atomically(config.out / METRICS_FILE, lambda f: f.write(json.dumps(metrics, indent=1).encode()))
    print(f"saved {path} and {METRICS_FILE}")
    return metrics


def _report(run: _RankRun, model_config: GPTConfig, held, num_parameters, curves, val_losses, step_times, all_reduce_seconds) -> dict:
    """Rank 0's last lines (speed, MFU, communication), and the run's metrics."""
    losses, grad_norms = curves
    config, N, B, T = run.config, run.info.world_size, run.global_batch, model_config.context_length
    step_time = statistics.median(step_times[1:] or step_times or [math.nan])  # the first step warms up (allocations, buckets)
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
        seq_len=T, steps=config.steps, losses=losses, grad_norms=grad_norms, val_loss_start=val_losses[0], val_loss_end=val_losses[1], step_times=step_times,
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
    launch = launch_environment()  # a half-set environment fails here, before anything waits
    return _run(config, _prepare(config, launch.world_size if launch else 1))


def _run(config: DistributedConfig, prepared: tuple, info: ProcessInfo | None = None) -> dict | None:
    """Train in the process group `info` joined (or join it now), and leave it on the way out."""
    info = info or init_distributed(config.device, config.backend, config.timeout_s)
    try:
        return _train(config, info, *prepared)
    finally:
        shutdown()


def parse_args(argv: Sequence[str] | None = None) -> DistributedConfig:
    """The command line as a checked `DistributedConfig` (appendix A); a bad option exits with status 2 and its message."""
    defaults = DistributedConfig()
    parser = _RankZeroParser(prog="python -m gptcourse.distributed", description="Data-parallel GPT training (appendix A).")
    parser.add_argument("--out", required=True, help="directory for model.safetensors and metrics.json")
    parser.add_argument("--preset", default=defaults.preset, choices=list(PRESETS))
    parser.add_argument("--corpus", default=defaults.corpus, help=f"one of {', '.join(CORPORA)}, or the path of a UTF-8 text file")
    for name in ("steps", "micro_batch", "grad_accum", "global_batch", "seed", "eval_batches", "checkpoint_every"):
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


def _says_it() -> bool:
    """Whether this process prints what every rank finds wrong: rank 0, or a process outside a launch.

    A process whose launch environment is itself wrong says so: nobody else will.
    """
    try:
        launch = launch_environment()
    except ValueError:
        return True
    return launch is None or launch.rank == 0


class _RankZeroParser(argparse.ArgumentParser):
    """Under torchrun every rank parses the same command line: rank 0 alone prints, all exit 2 on a mistake."""

    def error(self, message: str) -> NoReturn:
        if _says_it():
            super().error(message)  # the usage and the message, exit status 2
        self.exit(2)

    def print_help(self, file=None) -> None:
        if _says_it():
            super().print_help(file)


def _error(err: Exception, status: int, say: bool = True) -> int:
    if say:
        print(f"python -m gptcourse.distributed: error: {err}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gptcourse.distributed`` (appendix A): 0 on success, 2 on bad input, 1 if the group never forms."""
    config = parse_args(argv)
    try:
        launch = launch_environment()
    except ValueError as err:  # this process's own environment: each process says what is wrong with it
        return _error(err, 2)
    try:
        prepared = _prepare(config, launch.world_size if launch else 1)
    except ValueError as err:  # bad input only: an error while training keeps its traceback
        return _error(err, 2, say=launch is None or launch.rank == 0)  # every rank finds it: say it once
    try:
        info = init_distributed(config.device, config.backend, config.timeout_s)
    except ValueError as err:  # LOCAL_RANK beyond this node's GPUs: this process's own mistake
        return _error(err, 2)
    except (TimeoutError, ConnectionError) as err:  # ranks missing, or no place to meet: the message says which
        return _error(err, 1)
    _run(config, prepared, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
