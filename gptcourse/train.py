"""Training: AdamW, warm-up and cosine decay, clipping, mixed precision (chapter 7).

    model = GPT("gpt-nano")
    history = train(model, train_loader, val_loader, TrainConfig(max_steps=200))

Every ``eval_every`` steps the losses are measured and a text sampled into a `History`;
with a ``checkpoint_dir`` the run is saved, and ``resume=True`` continues it exactly.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import (
    check_writable,
    checkpoint_path,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .checks import (
    finite_number,
    non_negative_int,
    one_of,
    optional_positive_int,
    positive_int,
)
from .device import autocast, autocast_dtype, needs_grad_scaler


@dataclass
class TrainConfig:
    """The knobs of the training loop (chapter 7). Steps are optimizer steps.

    Every field is checked when the config is made: a nan learning rate or an
    unknown dtype fails here, by name, not as a nan loss a thousand steps later. It
    cannot change afterwards: ``dataclasses.replace(config, lr=...)``, a checked copy.
    """

    max_steps: int = 1000
    lr: float = 6e-4  # the peak learning rate, reached at the end of warm-up
    min_lr: float = 6e-5  # the cosine decay's end: a tenth of the peak, as for GPT-3
    # linear warm-up, as Adam's first updates are large and noisy; None: max_steps // 10
    warmup_steps: int | None = None
    weight_decay: float = 0.1  # on matrices and embeddings, not biases or LayerNorm
    # 0.95 rather than PyTorch's 0.999: steadier for transformers
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0  # the largest global gradient norm; None to not clip
    grad_accum_steps: int = 1  # micro-batches per step (batch = this × the loader's)
    eval_every: int = 100  # steps between evaluations, plus one before and one after
    eval_batches: int | None = 20  # batches per evaluation; None: the whole loader
    # steps between text samples; None: at every evaluation; 0: never
    sample_every: int | None = None
    sample_prompt: str = "The"
    sample_tokens: int = 30
    sample_temperature: float = 0.8
    sample_top_k: int | None = 40
    # where to save (and resume from); None: no checkpoints. Made a Path
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int | None = None  # steps between checkpoints; None: at the end
    # None: the device's choice (bf16 where native, fp16 on other GPUs, fp32 on CPU)
    dtype: torch.dtype | None = None
    progress: bool = True  # a tqdm progress bar
    log: bool = True  # print one line per evaluation
    seed: int = 123  # for the text samples

    def __post_init__(self) -> None:
        for name in ("max_steps", "grad_accum_steps", "eval_every", "sample_tokens"):
            positive_int(f"TrainConfig.{name}", getattr(self, name))
        for name in ("eval_batches", "checkpoint_every", "sample_top_k"):
            optional_positive_int(f"TrainConfig.{name}", getattr(self, name))
        if self.sample_every is not None:
            non_negative_int("TrainConfig.sample_every", self.sample_every)
        if self.warmup_steps is None:
            self.warmup_steps = self.max_steps // 10
        warmup = non_negative_int("TrainConfig.warmup_steps", self.warmup_steps)
        if warmup > self.max_steps:
            raise ValueError(
                f"TrainConfig.warmup_steps must be <= max_steps={self.max_steps}, "
                f"got {self.warmup_steps}; give fewer, or None (max_steps // 10)."
            )
        # nan > 0 and nan < 0 are both False, so only finite_number catches nan.
        self.lr = finite_number("TrainConfig.lr", self.lr, strictly_above=0.0)
        self.min_lr = finite_number("TrainConfig.min_lr", self.min_lr, minimum=0.0)
        if self.min_lr > self.lr:
            raise ValueError(
                f"TrainConfig.min_lr must be <= lr={self.lr} "
                f"(the decay ends below the peak), got {self.min_lr}."
            )
        self.weight_decay = finite_number(
            "TrainConfig.weight_decay", self.weight_decay, minimum=0.0
        )
        if self.grad_clip is not None:
            self.grad_clip = finite_number(
                "TrainConfig.grad_clip", self.grad_clip, strictly_above=0.0
            )
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise TypeError(
                f"TrainConfig.betas must be a pair (beta1, beta2), got {self.betas!r}."
            )
        for i, beta in enumerate(self.betas):
            if finite_number(f"TrainConfig.betas[{i}]", beta, minimum=0.0) >= 1.0:
                raise ValueError(
                    f"TrainConfig.betas[{i}] must be in [0, 1), got {beta!r}."
                )
        self.sample_temperature = finite_number(
            "TrainConfig.sample_temperature", self.sample_temperature, minimum=0.0
        )
        if not isinstance(self.sample_prompt, str):
            raise TypeError(
                "TrainConfig.sample_prompt must be a str, "
                f"got {type(self.sample_prompt).__name__}."
            )
        if self.checkpoint_dir is not None:
            if not isinstance(self.checkpoint_dir, (str, Path)):
                raise TypeError(
                    "TrainConfig.checkpoint_dir must be a path (str or Path) or None, "
                    f"got {self.checkpoint_dir!r}."
                )
            self.checkpoint_dir = Path(self.checkpoint_dir)
        dtypes = (None, torch.float32, torch.float16, torch.bfloat16)
        one_of("TrainConfig.dtype", self.dtype, dtypes)
        non_negative_int("TrainConfig.seed", self.seed)
        self._checked = True  # frozen from now: a change would skip these checks

    def __setattr__(self, name: str, value: object) -> None:
        if "_checked" in self.__dict__:
            raise dataclasses.FrozenInstanceError(
                f"TrainConfig.{name} cannot change once checked: make a checked copy, "
                f"dataclasses.replace(config, {name}=...)."
            )
        super().__setattr__(name, value)


@dataclass
class History:
    """What a run measured (chapter 7); the first six lists: an entry per evaluation."""

    step: list[int] = field(default_factory=list)  # optimizer steps done
    tokens_seen: list[int] = field(default_factory=list)  # training tokens so far
    train_loss: list[float] = field(default_factory=list)  # mean over eval_batches
    val_loss: list[float] = field(default_factory=list)  # on validation (nan without)
    lr: list[float] = field(default_factory=list)  # the learning rate of the last step
    tokens_per_second: list[float] = field(default_factory=list)  # since the last eval
    step_loss: list[float] = field(default_factory=list)  # every step's loss (noisy)
    grad_norm: list[float] = field(default_factory=list)  # each step's, unclipped
    samples: list[tuple[int, str]] = field(default_factory=list)  # (step, sampled text)

    def to_dict(self) -> dict[str, list]:
        """The lists by name, e.g. to save them (chapter 7)."""
        return dataclasses.asdict(self)


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate of step `step` (from 0): warm-up, cosine decay (chapter 7)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    decay_steps = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)  # 0 → 1
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 → 0
    return config.min_lr + cosine * (config.lr - config.min_lr)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups for AdamW: the 2-D matrices and embeddings decay, the rest not.

    Shrinking a bias or a LayerNorm gain towards 0 only hurts. Defined in chapter 7.
    """
    decay, no_decay = [], []
    for param in model.parameters():  # the tied head is the token embedding: once
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(
    model: nn.Module, config: TrainConfig, device: torch.device | str = "cpu"
) -> torch.optim.AdamW:
    """AdamW with weight decay on the 2-D weights only (`param_groups`) (chapter 7)."""
    groups = param_groups(model, config.weight_decay)
    # one kernel for all parameters: faster on a GPU
    fused = torch.device(device).type == "cuda" or None
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=fused)


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    grad_clip: float | None,
) -> float:
    """Clip, step, zero the gradients; return their norm before clipping (chapter 7).

    fp16's `scaler` unscales the gradients first, so the true ones are clipped, and
    skips the step on overflow; disabled (fp32, bf16), it does nothing (appendix A too).
    """
    scaler.unscale_(optimizer)
    max_norm = grad_clip if grad_clip is not None else math.inf
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    # FSDP: a sharded norm, made whole
    return (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item()


def cross_entropy_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of every next-token prediction (chapter 7).

    `logits` (B, T, vocab) against `targets` (B, T); the course's one loss. Under
    autocast the logits may be fp16/bf16: the softmax is taken in fp32, to be stable.
    """
    # (B·T, vocab) against (B·T,)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def batch_loss(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of the model's predictions for one batch (chapter 7)."""
    return cross_entropy_loss(model(inputs), targets)


def _check_loader(loader: DataLoader, name: str) -> None:
    try:
        n = len(loader)
    except TypeError as err:
        raise TypeError(
            f"{name} must be a DataLoader (or any iterable with a length) "
            "of (inputs, targets) batches."
        ) from err
    if n == 0:
        dataset = getattr(loader, "dataset", None)
        windows = "too few windows" if dataset is None else f"{len(dataset)} windows"
        batch_size = getattr(loader, "batch_size", "?")
        raise ValueError(
            f"{name} yields no batches: its dataset has {windows} and "
            f"batch_size={batch_size}, and drop_last drops an incomplete batch. "
            "Use more text, a smaller batch_size or max_length, or drop_last=False."
        )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    max_batches: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> float:
    """The mean loss over `max_batches` batches of `loader`, or all (chapter 7).

    In eval mode (no dropout), then back. The loader's generator is restored, so
    evaluating never changes which batches training sees next.
    """
    _check_loader(loader, "loader")
    optional_positive_int("max_batches", max_batches)
    device = (
        torch.device(device) if device is not None else next(model.parameters()).device
    )
    dtype = dtype or autocast_dtype(device)
    generator = getattr(loader, "generator", None)
    saved = generator.get_state() if generator is not None else None
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    try:
        for inputs, targets in loader:
            if max_batches is not None and n >= max_batches:
                break
            with autocast(device, dtype):
                total += batch_loss(model, inputs.to(device), targets.to(device)).item()
            n += 1
    finally:
        model.train(was_training)
        if generator is not None:
            generator.set_state(saved)
    return total / n


class _Batches:
    """Batches from a loader forever, epoch after epoch, at a position one can save.

    The position is the generator's state when the epoch began and the batches taken
    since: enough to draw the same shuffled order again and skip to the spot.
    """

    def __init__(self, loader: DataLoader):
        self.loader = loader
        self.generator = getattr(loader, "generator", None)
        self.iterator = None
        self.epoch_start = None
        self.taken = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.iterator is not None:
            batch = next(self.iterator, None)
            if batch is not None:
                self.taken += 1
                return batch
        generator = self.generator
        self.epoch_start = generator.get_state() if generator is not None else None
        self.iterator, self.taken = iter(self.loader), 1
        return next(self.iterator)

    def state(self) -> dict:
        return {"epoch_start": self.epoch_start, "taken": self.taken}

    def restore(self, state: dict) -> None:
        # Without a generator, a shuffled loader draws a new order: only an unshuffled
        # one resumes exactly.
        if state["epoch_start"] is not None and self.generator is not None:
            self.generator.set_state(state["epoch_start"])
        self.epoch_start = state["epoch_start"]
        self.iterator = iter(self.loader)
        for _ in range(state["taken"]):  # cheap: our batches are slices of one tensor
            next(self.iterator)
        self.taken = state["taken"]


def _trainer_state(
    step: int, tokens_seen: int, history: History, batches: _Batches
) -> dict:
    """What a checkpoint needs beyond the weights and optimizer to continue exactly."""
    return {
        "step": step,
        "tokens_seen": tokens_seen,
        "history": history.to_dict(),
        "data": batches.state(),
        "torch_rng": torch.get_rng_state(),  # dropout's random numbers
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _restore(state: dict, batches: _Batches) -> History:
    """Put a checkpoint's data position and random state back; return its history."""
    if state["data"] is not None:
        batches.restore(state["data"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return History(**state["history"])


def train(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    config: TrainConfig | None = None,
    device: torch.device | str | None = None,
    resume: bool = False,
) -> History:
    """Train `model` for ``config.max_steps`` steps; return the `History` (chapter 7).

    With ``checkpoint_dir`` (checked writable before the first step), the run is saved
    every ``checkpoint_every`` steps and at the end. ``resume=True`` continues it with
    the same weights, moments, data position and random state: as if uninterrupted.
    """
    cfg = config or TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(cfg).__name__}.")
    _check_loader(train_loader, "train_loader")
    if val_loader is not None:
        _check_loader(val_loader, "val_loader")
    if resume and cfg.checkpoint_dir is None:
        raise ValueError(
            "resume=True needs TrainConfig.checkpoint_dir: "
            "the directory to resume from."
        )
    if resume and not has_checkpoint(cfg.checkpoint_dir):
        raise FileNotFoundError(
            "resume=True, but "
            f"TrainConfig.checkpoint_dir={str(cfg.checkpoint_dir)!r} holds no "
            f"checkpoint ({checkpoint_path(cfg.checkpoint_dir).name}). "
            "To start a new run, leave resume=False; "
            "to continue one, give the checkpoint_dir it saved to."
        )
    if cfg.checkpoint_dir is not None:  # now, not after the last step
        alternative = ", or None to save no checkpoints"
        check_writable(cfg.checkpoint_dir, "TrainConfig.checkpoint_dir", alternative)
    device = (
        torch.device(device) if device is not None else next(model.parameters()).device
    )
    model.to(device)
    dtype = cfg.dtype or autocast_dtype(device)
    sample_every = cfg.eval_every if cfg.sample_every is None else cfg.sample_every
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", 0)
    if sample_every and vocab_size < 50257:
        raise ValueError(
            "Text samples need a GPT with GPT-2's vocabulary; "
            "set TrainConfig(sample_every=0) for other models."
        )

    optimizer = make_optimizer(model, cfg, device)
    # fp16 only: see chapter 7
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(dtype))
    history, start, tokens_seen, batches = History(), 0, 0, _Batches(train_loader)
    if resume:
        state = load_checkpoint(cfg.checkpoint_dir, model, optimizer, scaler)
        start, tokens_seen = state["step"], state["tokens_seen"]
        history = _restore(state, batches)
        if start >= cfg.max_steps:
            return history

    def measure(step: int, tokens_per_second: float) -> None:
        train_loss = evaluate(model, train_loader, cfg.eval_batches, device, dtype)
        val_loss = math.nan
        if val_loader is not None:
            val_loss = evaluate(model, val_loader, cfg.eval_batches, device, dtype)
        history.step.append(step)
        history.tokens_seen.append(tokens_seen)
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        history.lr.append(lr_at(max(step - 1, 0), cfg))
        history.tokens_per_second.append(tokens_per_second)
        if cfg.log:
            tqdm.write(
                f"step {step:>5} | tokens {tokens_seen:>10,} | "
                f"train loss {train_loss:6.3f} | val loss {val_loss:6.3f} | "
                f"lr {history.lr[-1]:.1e}"
            )

    def sample(step: int) -> None:
        # the same draw each time: only the model changes
        generator = torch.Generator(device).manual_seed(cfg.seed)
        text = model.generate(
            cfg.sample_prompt,
            max_new_tokens=cfg.sample_tokens,
            temperature=cfg.sample_temperature,
            top_k=cfg.sample_top_k,
            generator=generator,
        )
        history.samples.append((step, text))

    if start == 0:
        measure(0, math.nan)  # before any training: the loss of random weights
        if sample_every:
            sample(0)
    model.train()
    options = dict(desc="training", unit="step", dynamic_ncols=True)
    bar = tqdm(total=cfg.max_steps, initial=start, disable=not cfg.progress, **options)
    timer, timed_tokens = time.perf_counter(), 0
    try:
        for step in range(start, cfg.max_steps):
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss = torch.zeros((), device=device)
            for _ in range(cfg.grad_accum_steps):
                inputs, targets = (
                    t.to(device, non_blocking=True) for t in batches.next()
                )
                with autocast(device, dtype):
                    loss = batch_loss(model, inputs, targets)
                # Divide, so the summed gradient is that of the mean over micro-batches.
                scaler.scale(loss / cfg.grad_accum_steps).backward()
                step_loss += loss.detach() / cfg.grad_accum_steps
                timed_tokens += targets.numel()
                tokens_seen += targets.numel()
            grad_norm = optimizer_step(model, optimizer, scaler, cfg.grad_clip)

            done = step + 1
            history.step_loss.append(step_loss.item())
            history.grad_norm.append(grad_norm)
            tokens_per_second = timed_tokens / (time.perf_counter() - timer)
            shown, rate = f"{history.step_loss[-1]:.3f}", f"{tokens_per_second:,.0f}"
            bar.set_postfix(loss=shown, tok_s=rate, refresh=False)
            bar.update(1)
            last = done == cfg.max_steps
            do_eval = done % cfg.eval_every == 0 or last
            do_sample = bool(sample_every) and (done % sample_every == 0 or last)
            do_save = cfg.checkpoint_dir is not None and (
                last or bool(cfg.checkpoint_every) and done % cfg.checkpoint_every == 0
            )
            if do_eval:
                measure(done, tokens_per_second)
            if do_sample:
                sample(done)
            if do_save:
                state = _trainer_state(done, tokens_seen, history, batches)
                save_checkpoint(cfg.checkpoint_dir, model, optimizer, scaler, state)
            # time training only, not evaluation, sampling or saving
            if do_eval or do_sample or do_save:
                timer, timed_tokens = time.perf_counter(), 0
    finally:
        bar.close()
    return history
