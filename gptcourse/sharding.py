"""How data parallelism divides the work among N ranks, in numbers: no processes here (appendix A).

Who reads which sequence of a global batch of B × G × N (micro-batch B, G accumulation steps,
N ranks); the bytes a ring all-reduce sends, 2·(N−1)/N × the gradient whatever N; the model
state per GPU with Adam, which DDP keeps whole and ZeRO-1/2/3 shard across the N GPUs, in two
recipes: the ZeRO paper's fp16 training, 2 + 2 + 12 bytes per parameter (Rajbhandari et al.
2020, section 3.1), and autocast over fp32 weights, as the course trains, 4 + 4 + 8.
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


def assert_same_training(
    weights: Mapping[str, torch.Tensor], metrics: Mapping, reference_weights: Mapping[str, torch.Tensor], reference_metrics: Mapping, rtol: float = 1e-4
) -> dict[str, float]:
    """Fail unless two runs trained alike: final weights, and each step's loss and gradient norm (appendix A).

    The weights alone cannot tell: AdamW divides each gradient by its running size (and
    clipping rescales it), so a gradient G times too large, a loss not divided by G, moves
    them hardly at all. The norm before clipping is then G times too large. Returns the
    three relative differences; an AssertionError names those above `rtol`.
    """
    differences = {"weights": relative_difference(weights, reference_weights)}
    for key in ("losses", "grad_norms"):
        mine, theirs = (torch.tensor(m[key], dtype=torch.float64) for m in (metrics, reference_metrics))
        if mine.shape != theirs.shape:
            raise ValueError(f"The runs logged {len(mine)} and {len(theirs)} {key}: compare runs of as many steps.")
        differences[key] = ((mine - theirs).abs() / theirs.abs()).max().item()
    wrong = {key: value for key, value in differences.items() if not value <= finite_number("rtol", rtol, strictly_above=0)}
    assert not wrong, "the runs trained differently: " + ", ".join(f"{key} differ by {value:.1e} (relative)" for key, value in wrong.items()) + (
        f"; gradient norms {metrics['grad_norms'][0]:.4g} vs {reference_metrics['grad_norms'][0]:.4g} at step 1" if "grad_norms" in wrong else ""
    )
    return differences


# ------------------------------------------------------------------ what each rank sends, and holds

# Bytes per parameter with Adam: (weights, gradients, optimizer state), in two recipes.
RECIPES: dict[str, tuple[int, int, int]] = {
    # The ZeRO paper's mixed precision: fp16 weights and gradients; fp32 master copy, m, v.
    "fp16": (2, 2, 4 + 4 + 4),
    # torch.autocast (the course, chapter 7): the fp32 weights are the master copy, the
    # gradients are fp32 (so is what DDP all-reduces), Adam's m and v: 4 + 4 + 4 + 4.
    "autocast": (4, 4, 4 + 4),
}

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
        """Bytes per parameter of the model, on one GPU: 16 for DDP, 16/N for ZeRO-3, in both recipes."""
        return self.total / self.num_parameters


def model_state_bytes(num_parameters: int, stage: str, world_size: int, recipe: str = "autocast") -> ModelStateBytes:
    """Bytes of weights, gradients and optimizer state on each of `world_size` GPUs (appendix A).

    ``stage`` is a `STAGES` key, ``recipe`` a `RECIPES` key: 2 + 2 + 12 bytes per parameter
    in the ZeRO paper's fp16 training, 4 + 4 + 8 under autocast with fp32 weights. Both are
    16 in DDP; sharding only the optimizer state (ZeRO-1) saves more of the first.
    """
    n_params, n = positive_int("num_parameters", num_parameters), positive_int("world_size", world_size)
    sharded = STAGES[one_of("stage", stage, STAGES)]
    sizes = dict(zip(("weights", "gradients", "optimizer"), RECIPES[one_of("recipe", recipe, RECIPES)]))
    parts = {part: n_params * size / (n if part in sharded else 1) for part, size in sizes.items()}
    return ModelStateBytes(stage=stage, world_size=n, num_parameters=n_params, **parts)


def bytes_sent_per_step(num_parameters: int, stage: str, world_size: int, recipe: str = "autocast") -> float:
    """Bytes each GPU sends per optimizer step to keep its replica or shard in step (appendix A).

    DDP, ZeRO-1 and ZeRO-2 move the gradient once, by a ring all-reduce or its two halves:
    ``2·(N−1)/N`` × its bytes. ZeRO-3 gathers the weights again for the backward, 1.5× as much
    (ZeRO paper, section 7). The gradients are 2 bytes each in `recipe` "fp16", 4 under autocast.
    """
    one_of("stage", stage, STAGES)
    gradient = positive_int("num_parameters", num_parameters) * RECIPES[one_of("recipe", recipe, RECIPES)][1]
    all_reduce = ring_all_reduce_bytes(gradient, world_size)
    return 1.5 * all_reduce if stage == "zero3" else all_reduce
