"""How data parallelism divides the work among N ranks, in numbers: no processes here (appendix A).

Three questions, each answered with a pencil (and checked by `gptcourse.distributed`, which
runs the processes):

* **Which rank reads which sequence?** A step's global batch is B × G × N sequences
  (micro-batch B, G accumulation steps, N ranks), read from the epoch's shuffled order
  (`global_batch_indices`), the same whatever B, G and N are. Position i goes to rank
  ``i // (B·G)`` and there to micro-step ``(i % (B·G)) // B`` (`sequence_owner`): each rank
  takes a contiguous share and cuts it into G micro-batches of B (`local_micro_batches`).
  To keep a global batch on any N, G follows (`accumulation_steps`), if it divides evenly.
* **How many bytes does each rank send per step?** The gradients of all N ranks are summed
  at every step by an *all-reduce*. A ring all-reduce cuts the gradient into N chunks and
  passes them round the ring twice: once to add them up (reduce-scatter), once to hand the
  sums out (all-gather). Each rank sends, and receives, ``2·(N−1)/N`` times the gradient's
  bytes: nearly twice the gradient, however large N grows (`ring_all_reduce_bytes`).
* **How much memory does each rank need for the model's state?** Mixed precision with Adam
  keeps, per parameter, 2 bytes of 16-bit weight, 2 of 16-bit gradient and 12 of fp32
  optimizer state (a master copy of the weight, Adam's m and v): 16 bytes (Rajbhandari et
  al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models",
  section 3.1). DDP keeps all 16 on every GPU; ZeRO's stages shard more and more of them
  across the N GPUs (`model_state_bytes`):

  =========  =====================================  ============================
  stage      sharded across the N GPUs               bytes per parameter per GPU
  =========  =====================================  ============================
  DDP        nothing                                 2 + 2 + 12
  ZeRO-1     the optimizer state                     2 + 2 + 12/N
  ZeRO-2     and the gradients                       2 + (2 + 12)/N
  ZeRO-3     and the weights (PyTorch's FSDP)        (2 + 2 + 12)/N
  =========  =====================================  ============================

  Activations, temporary buffers and fragmentation come on top of the model state.

And one answer to check a run by: how far apart two runs' weights are (`relative_difference`).
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

    Epoch e is one shuffled order of all windows, from a generator seeded by (seed, e);
    each step reads the next `global_batch` indices of it (the incomplete rest of an epoch
    is skipped). Nothing here depends on the number of ranks, the micro-batch or the
    accumulation, so the same seed gives the same global batches on 1 or 1,000 GPUs.
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

    Every rank must run the same number of micro-batches of the same size (so that the mean
    of their mean losses is the global batch's mean): the global batch must divide evenly.
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

    One vector, not tensor by tensor: a parameter whose gradient is 0 in exact arithmetic
    (the key bias: adding it to every key shifts all of a query's scores alike, and softmax
    ignores that) gets float rounding noise as its gradient, which Adam scales up to full
    steps, in directions that depend on the order of the sums. Its tiny values then differ
    a lot, relatively, between two correct runs; the model as a whole does not.
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

    Defined in appendix A. The buffer is cut into N chunks. In N − 1 steps of a
    reduce-scatter, each rank passes one chunk to its neighbour, which adds its own: every
    rank ends up with the full sum of one chunk. In N − 1 more steps (an all-gather) the
    summed chunks go round the ring. Each step sends num_bytes/N, so each rank sends
    ``2·(N−1)/N · num_bytes``. One rank sends nothing.
    """
    num_bytes = finite_number("num_bytes", num_bytes, minimum=0)
    n = positive_int("world_size", world_size)
    return 2 * (n - 1) / n * num_bytes


@dataclass(frozen=True)
class ModelStateBytes:
    """The model state one GPU holds, in bytes, part by part (appendix A)."""

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

    ``stage`` is "ddp", "zero1", "zero2" or "zero3" (`STAGES` says what each shards). The
    defaults are mixed precision with Adam, 2 + 2 + 12 bytes per parameter; for fp32
    training without a master copy, pass ``weight_bytes=4, grad_bytes=4, optimizer_bytes=8``.
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

    DDP, ZeRO-1 and ZeRO-2 move the gradient once through a ring all-reduce (or its two
    halves, a reduce-scatter and an all-gather): ``2·(N−1)/N`` × the gradient's bytes.
    ZeRO-3 also gathers the sharded weights twice (for the forward, and again for the
    backward, having freed them in between): 1.5× as much, ``3·(N−1)/N`` × (Rajbhandari
    et al. 2020, section 7). Weights and gradients are taken to be of the same size.
    """
    one_of("stage", stage, STAGES)
    gradient = positive_int("num_parameters", num_parameters) * positive_int("grad_bytes", grad_bytes)
    all_reduce = ring_all_reduce_bytes(gradient, world_size)
    return 1.5 * all_reduce if stage == "zero3" else all_reduce
