"""How data parallelism divides the work among N ranks, in numbers: no processes here (appendix A).

Who reads which sequence of a global batch of B × G × N (micro-batch B, G accumulation steps,
N ranks); the bytes a ring all-reduce sends, 2·(N−1)/N × the gradient whatever N; the model
state per GPU, 2 + 2 + 12 bytes per parameter with Adam in mixed precision, which DDP keeps
whole and ZeRO-1/2/3 shard across the N GPUs (ZeRO, Rajbhandari et al. 2020, section 3.1).
`gptcourse.distributed` runs the processes that check these numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from .checks import finite_number, non_negative_int, one_of, positive_int
from .data import GPTDataset

# ------------------------------------------------------------------ which rank reads what


def global_batch_indices(num_windows: int, global_batch: int, step: int, seed: int) -> torch.Tensor:
    """The dataset indices of optimizer step `step`'s global batch (appendix A).

    Epoch e is a permutation of all windows seeded by (seed, e), read `global_batch` at a time
    (an epoch's incomplete rest is skipped). It depends on no rank count, micro-batch or
    accumulation: the same seed gives the same global batches on 1 GPU or 1,000.
    """
    num_windows, global_batch = positive_int("num_windows", num_windows), positive_int("global_batch", global_batch)
    step, seed = non_negative_int("step", step), non_negative_int("seed", seed)
    steps_per_epoch = num_windows // global_batch
    if steps_per_epoch == 0:
        raise ValueError(
            f"The global batch of {global_batch} sequences is more than the {num_windows} windows of the training text: "
            "use a smaller --micro-batch, fewer accumulation steps or processes, or a larger corpus."
        )
    epoch, position = divmod(step, steps_per_epoch)
    # numpy's SeedSequence mixes (seed, epoch) into one stream each; torch's CPU generator keeps only 32 bits of a seed.
    order = torch.from_numpy(np.random.default_rng((seed, epoch)).permutation(num_windows))
    return order[position * global_batch : (position + 1) * global_batch]


def local_micro_batches(global_indices: torch.Tensor, rank: int, world_size: int, grad_accum: int) -> list[torch.Tensor]:
    """Rank `rank`'s contiguous share of a global batch, cut into `grad_accum` micro-batches (appendix A)."""
    world_size, grad_accum = positive_int("world_size", world_size), positive_int("grad_accum", grad_accum)
    if not 0 <= non_negative_int("rank", rank) < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}.")
    if len(global_indices) % (world_size * grad_accum):
        raise ValueError(
            f"A global batch of {len(global_indices)} sequences cannot be split evenly into {world_size} ranks × "
            f"{grad_accum} micro-batches: make it a multiple of {world_size * grad_accum}."
        )
    share = len(global_indices) // world_size
    mine = global_indices[rank * share : (rank + 1) * share]
    return list(mine.view(grad_accum, -1).unbind())  # (G, B): G micro-batches of equal size B


def sequence_owner(position: int, micro_batch: int, grad_accum: int) -> tuple[int, int]:
    """(rank, micro-step) that processes `position` of a global batch: `local_micro_batches`' map (appendix A)."""
    per_rank = positive_int("micro_batch", micro_batch) * positive_int("grad_accum", grad_accum)
    position = non_negative_int("position", position)
    return position // per_rank, (position % per_rank) // micro_batch


def stack_windows(dataset: GPTDataset, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (inputs, targets) batch of the dataset's windows at `indices`, each (len(indices), T)."""
    pairs = [dataset[int(i)] for i in indices]
    return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])


def accumulation_steps(global_batch: int, micro_batch: int, world_size: int) -> int:
    """The accumulation steps G that make `global_batch` = micro_batch × G × world_size (appendix A).

    Equal micro-batches on every rank keep the mean of their mean losses the global batch's mean.
    """
    per_pass = positive_int("micro_batch", micro_batch) * positive_int("world_size", world_size)  # one micro-step, all ranks
    if positive_int("global_batch", global_batch) % per_pass:
        raise ValueError(
            f"global_batch={global_batch} is not divisible by micro_batch × world size = {micro_batch} × {world_size}: "
            f"every rank must run the same number of micro-batches of the same size. Use a multiple of {per_pass}."
        )
    return global_batch // per_pass


def relative_difference(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """‖a − b‖ / ‖b‖ over all the tensors of two state dicts with the same names, as one vector (appendix A).

    Not tensor by tensor: a parameter whose exact gradient is 0 (the key bias, which softmax
    ignores) gets rounding noise that Adam scales up to full steps, so its tiny values differ a
    lot between two correct runs; the model as a whole does not.
    """
    if set(a) != set(b):
        raise ValueError(f"The two state dicts name different tensors: {sorted(set(a) ^ set(b))}.")
    diff = sum((a[k].double() - b[k].double()).square().sum() for k in a)
    norm = sum(b[k].double().square().sum() for k in a)
    return (diff / norm).sqrt().item()


# ------------------------------------------------------------------ what each rank sends, and holds

# Bytes per parameter in mixed-precision training with Adam (the ZeRO paper's accounting):
WEIGHT_BYTES = 2  # the fp16/bf16 weights the forward and backward passes read
GRAD_BYTES = 2  # the fp16/bf16 gradients
OPTIMIZER_BYTES = 12  # fp32 master weights, Adam's first moment m, second moment v: 4 + 4 + 4

# What each stage shards across the GPUs; the rest every GPU keeps whole.
STAGES: dict[str, tuple[str, ...]] = {
    "ddp": (),
    "zero1": ("optimizer",),
    "zero2": ("optimizer", "gradients"),
    "zero3": ("optimizer", "gradients", "weights"),
}
STAGE_NAMES = {"ddp": "DDP", "zero1": "ZeRO-1", "zero2": "ZeRO-2", "zero3": "ZeRO-3 / FSDP"}


def ring_all_reduce_bytes(num_bytes: float, world_size: int) -> float:
    """Bytes each of `world_size` ranks sends (and receives) to all-reduce `num_bytes` in a ring.

    Defined in appendix A: a reduce-scatter and an all-gather of N − 1 steps each, each step
    num_bytes/N, so ``2·(N−1)/N · num_bytes``. One rank sends nothing.
    """
    num_bytes = finite_number("num_bytes", num_bytes, minimum=0)
    n = positive_int("world_size", world_size)
    return 2 * (n - 1) / n * num_bytes


@dataclass(frozen=True)
class ModelStateBytes:
    """The model state one GPU holds, in bytes, part by part; activations and buffers come on top (appendix A)."""

    stage: str  # a `STAGES` key
    world_size: int
    num_parameters: int
    weights: float
    gradients: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer

    @property
    def per_parameter(self) -> float:
        """Bytes per parameter of the model, on one GPU: 16 for DDP, 16/N for ZeRO-3."""
        return self.total / self.num_parameters


def model_state_bytes(
    num_parameters: int,
    stage: str,
    world_size: int,
    weight_bytes: int = WEIGHT_BYTES,
    grad_bytes: int = GRAD_BYTES,
    optimizer_bytes: int = OPTIMIZER_BYTES,
) -> ModelStateBytes:
    """Bytes of weights, gradients and optimizer state on each of `world_size` GPUs (appendix A).

    ``stage`` is a `STAGES` key. The defaults are mixed precision with Adam, 2 + 2 + 12 bytes per
    parameter; for fp32 without a master copy, ``weight_bytes=4, grad_bytes=4, optimizer_bytes=8``.
    """
    n_params, n = positive_int("num_parameters", num_parameters), positive_int("world_size", world_size)
    sharded = STAGES[one_of("stage", stage, STAGES)]
    sizes = {
        "weights": positive_int("weight_bytes", weight_bytes),
        "gradients": positive_int("grad_bytes", grad_bytes),
        "optimizer": positive_int("optimizer_bytes", optimizer_bytes),
    }
    parts = {part: n_params * size / (n if part in sharded else 1) for part, size in sizes.items()}
    return ModelStateBytes(stage=stage, world_size=n, num_parameters=n_params, **parts)


def bytes_sent_per_step(num_parameters: int, stage: str, world_size: int, grad_bytes: int = GRAD_BYTES) -> float:
    """Bytes each GPU sends per optimizer step to keep its replica or shard in step (appendix A).

    DDP, ZeRO-1 and ZeRO-2 move the gradient once, by a ring all-reduce or its two halves:
    ``2·(N−1)/N`` × its bytes. ZeRO-3 gathers the weights again for the backward, 1.5× as much
    (ZeRO paper, section 7). Weights and gradients are taken to be of the same size.
    """
    one_of("stage", stage, STAGES)
    gradient = positive_int("num_parameters", num_parameters) * positive_int("grad_bytes", grad_bytes)
    all_reduce = ring_all_reduce_bytes(gradient, world_size)
    return 1.5 * all_reduce if stage == "zero3" else all_reduce
