"""Where a training step's time goes, op class by op class (appendix C, §1).

`torch.profiler` records every op; forward hooks open a named scope around each module
(``gptcourse::qkv``, ``gptcourse::mlp``, ...), so a forward op belongs to its innermost
scope. A backward op carries the `sequence_nr` of the forward op that made it, which
leads back to that op's scope. Each op's *self* time is counted once: the classes add
up to everything the profiler saw, with nothing counted twice.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity

from .checks import non_negative_int, one_of, positive_int
from .device import autocast, needs_grad_scaler, profiler_quietly
from .timing import synchronize
from .train import cross_entropy_loss

# The op classes, by role, in the order a token meets them.
OP_CLASSES: dict[str, str] = {
    "embedding": "embeddings",
    "layer_norm": "layer norm",
    "qkv": "QKV projection",
    "attn_matmul": "attention matmuls (Q·Kᵀ, ·V)",
    "softmax": "softmax",
    "attn_kernel": "attention kernel (SDPA)",
    "out_proj": "output projection",
    "mlp": "MLP matmuls",
    "gelu": "GELU",
    "lm_head": "LM head",
    "loss": "loss (cross-entropy)",
    "optimizer": "AdamW",
    "data": "data",
    "other": "other (adds, dropout, masks, copies)",
}
MATMUL_CLASSES: tuple[str, ...] = ("qkv", "attn_matmul", "attn_kernel", "out_proj", "mlp", "lm_head")
# Chapter 9's count components (`flops.COMPONENTS`, and appendix B's Llama's) -> op class.
FLOP_CLASSES: dict[str, str] = {
    "qkv_proj": "qkv",
    "q_proj": "qkv",
    "kv_proj": "qkv",
    "attn_scores": "attn_matmul",
    "attn_values": "attn_matmul",
    "out_proj": "out_proj",
    "ff_gate": "mlp",
    "ff_up": "mlp",
    "ff_down": "mlp",
    "lm_head": "lm_head",
}
ATTENTION_SCOPE = "attention"  # its ops are told apart by name: matmuls, softmax, SDPA
SCOPE_PREFIX = "gptcourse::"
EVALUATE = "autograd::engine::evaluate_function: "  # the backward of one autograd node
STEP_SCOPES = ("data", "loss", "optimizer")  # opened by the step itself, not by hooks

Predicate = Callable[[str, nn.Module], bool]  # (qualified name, module) -> in this scope?


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _in_feed_forward(model: nn.Module) -> Predicate:
    def test(name: str, module: nn.Module) -> bool:
        if not isinstance(module, nn.Linear):
            return False
        parents = [name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)]
        kinds = {type(model.get_submodule(p)).__name__ for p in parents}
        return any("FeedForward" in k or k in ("SwiGLU", "MLP") for k in kinds)

    return test


def default_scopes(model: nn.Module) -> dict[str, Predicate]:
    """Which modules open which scope in a GPT (and appendix B's Llama); the first match wins."""
    return {
        "qkv": lambda n, m: _leaf(n) in ("W_query", "W_key", "W_value", "q_proj", "k_proj", "v_proj"),
        "out_proj": lambda n, m: _leaf(n) in ("out_proj", "o_proj"),
        "lm_head": lambda n, m: _leaf(n) in ("out_head", "lm_head"),
        "embedding": lambda n, m: isinstance(m, nn.Embedding),
        "layer_norm": lambda n, m: type(m).__name__.endswith("Norm"),
        "gelu": lambda n, m: type(m).__name__ == "GELU",
        "mlp": _in_feed_forward(model),
        ATTENTION_SCOPE: lambda n, m: "Attention" in type(m).__name__,
    }


def flops_by_class(count: Any, attention: str = "sdpa") -> dict[str, int]:
    """A `flops.count_flops(...)` result summed into op classes (only those with FLOPs).

    With ``attention="sdpa"`` the attention matmuls' FLOPs are the SDPA kernel's
    (``"attn_kernel"``); with ``"manual"`` they are ``"attn_matmul"``.
    """
    one_of("attention", attention, ("sdpa", "manual"))
    totals: dict[str, int] = {}
    for component, flops in count.components().items():
        key = FLOP_CLASSES[one_of("count component", component, FLOP_CLASSES)]
        if key == "attn_matmul" and attention == "sdpa":
            key = "attn_kernel"
        totals[key] = totals.get(key, 0) + flops
    return {key: totals[key] for key in MATMUL_CLASSES if key in totals}


@dataclass(frozen=True)
class OpProfile:
    """A profiled call's time per op class, per call (appendix C).

    `seconds` has every key of `OP_CLASSES`; `ops` every op seen (self time per call);
    `wall_seconds` the median wall time of a call, measured while profiling.
    """

    seconds: dict[str, float]
    wall_seconds: float
    device: str
    timer: str
    ops: dict[str, float]
    attention_kernel: str | None
    trace_path: Path | None

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    @property
    def matmul_seconds(self) -> float:
        return sum(self.seconds[key] for key in MATMUL_CLASSES)

    def share(self, key: str) -> float:
        """`key`'s fraction of `total`."""
        one_of("op class", key, OP_CLASSES)
        return self.seconds[key] / self.total if self.total else 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One row per class with time, in `OP_CLASSES` order: key, label, seconds, share."""
        return [
            {"key": key, "label": label, "seconds": self.seconds[key], "share": self.share(key)}
            for key, label in OP_CLASSES.items()
            if self.seconds[key] > 0
        ]


class _Scopes:
    """Forward hooks that open ``gptcourse::<key>`` around modules; removed by `close`."""

    def __init__(self, model: nn.Module, scopes: Mapping[str, Predicate]):
        for key in scopes:
            one_of("scope", key, [*OP_CLASSES, ATTENTION_SCOPE])
        self.open: list[tuple[nn.Module, Any]] = []  # a stack: modules nest
        self.handles = []
        try:
            for name, module in model.named_modules():
                key = next((k for k, test in scopes.items() if name and test(name, module)), None)
                if key is not None:
                    self.handles.append(module.register_forward_pre_hook(self._opener(key)))
                    self.handles.append(module.register_forward_hook(self._close_hook, always_call=True))
        except BaseException:
            self.close()
            raise

    def _opener(self, key: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            scope = record_function(SCOPE_PREFIX + key)
            scope.__enter__()
            self.open.append((module, scope))

        return hook

    def _close_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        while self.open:  # after an error inside, the inner scopes close here too
            opened, scope = self.open.pop()
            scope.__exit__(None, None, None)
            if opened is module:
                break

    def close(self) -> None:
        while self.open:
            self.open.pop()[1].__exit__(None, None, None)
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


_KERNEL = re.compile(r"scaled_?dot_?product|flash_?attention|efficient_?attention|cudnn_?attention")
_MATMULS = {"mm", "bmm", "matmul", "addmm", "baddbmm", "addbmm", "linear"}


def _name_class(name: str) -> str | None:
    """The class an op inside the attention module belongs to by its name, if any."""
    base = name.removeprefix(EVALUATE).removeprefix("aten::").lower()
    if _KERNEL.search(base):
        return "attn_kernel"
    if "softmax" in base:
        return "softmax"
    if base.removesuffix("backward0").strip("_") in _MATMULS:
        return "attn_matmul"
    return None


def _scope_of(event: Any, forward: Mapping[tuple[int, int], str | None]) -> tuple[str | None, Any]:
    """The innermost scope around `event` (or its forward op's, in the backward), and its event."""
    node = event
    while node is not None:
        name = node.name
        if name.startswith(SCOPE_PREFIX):
            return name[len(SCOPE_PREFIX) :], node
        if name.startswith("Optimizer."):  # PyTorch's own "Optimizer.step#AdamW.step"
            return "optimizer", node
        if name.startswith(EVALUATE):
            return forward.get((node.fwd_thread or node.thread, node.sequence_nr)), node
        node = node.cpu_parent
    return None, None


def _forward_scopes(events: list[Any]) -> dict[tuple[int, int], str | None]:
    """(thread, sequence_nr) -> scope of the forward op that made that autograd node."""
    forward: dict[tuple[int, int], str | None] = {}
    # An op that makes no node shows the next op's number: the later op is the one.
    for event in sorted(events, key=lambda e: e.time_range.start):
        if event.sequence_nr < 0 or event.device_type != torch.autograd.DeviceType.CPU:
            continue
        scope, boundary = _scope_of(event, {})
        if boundary is None or not boundary.name.startswith(EVALUATE):
            forward[(event.thread, event.sequence_nr)] = scope
    return forward


def _classify(event: Any, forward: Mapping[tuple[int, int], str | None]) -> str:
    scope, boundary = _scope_of(event, forward)
    if event is boundary and event.name.startswith(SCOPE_PREFIX):
        # A scope's own time is Python: the hooks' and the module's (other), or the step's
        return scope if scope in STEP_SCOPES else "other"
    if scope == ATTENTION_SCOPE:  # the nearest op with a telling name decides
        node = event
        while node is not None:
            if (key := _name_class(node.name)) is not None:
                return key
            if node is boundary:
                break
            node = node.cpu_parent
        return "other"
    return scope if scope in OP_CLASSES else "other"


def _attention_kernel(events: list[Any]) -> str | None:
    """The SDPA kernel op that ran (not the dispatcher), the forward one by preference."""
    times: dict[str, float] = {}
    for event in events:
        if event.name.startswith("aten::_scaled_dot_product"):
            times[event.name] = times.get(event.name, 0.0) + event.cpu_time_total
    if not times:
        return None
    return max(times, key=lambda name: (not name.endswith("_backward"), times[name]))


def _summarise(events: list[Any], on_cuda: bool, calls: int) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per class and per op name, per call: CPU self time, or GPU kernel time."""
    cpu = torch.autograd.DeviceType.CPU
    forward = _forward_scopes(events)
    seconds = dict.fromkeys(OP_CLASSES, 0.0)
    ops: dict[str, float] = {}
    if on_cuda:
        launchers = {e.id: e for e in events if e.device_type == cpu and not e.is_async and e.linked_correlation_id == 0}
        timed = []
        for event in events:
            if event.device_type == cpu or event.is_async or event.is_user_annotation:
                continue
            launcher = launchers.get(event.linked_correlation_id)
            timed.append((launcher, event.name if launcher is None else launcher.name, event.self_device_time_total))
    else:
        timed = [(e, e.name, e.self_cpu_time_total) for e in events if e.device_type == cpu and not e.is_async]
    for event, name, micros in timed:
        key = "other" if event is None else _classify(event, forward)
        seconds[key] += micros / 1e6 / calls
        ops[name] = ops.get(name, 0.0) + micros / 1e6 / calls
    return seconds, ops


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def profile_call(
    model: nn.Module,
    fn: Callable[[], Any],
    *,
    repeats: int = 2,
    warmup: int = 2,
    trace_path: str | Path | None = None,
    scopes: Mapping[str, Predicate] | None = None,
) -> OpProfile:
    """Profile ``fn()`` `repeats` times after `warmup` unprofiled calls, time by op class.

    `scopes` maps a class key (or ``"attention"``) to ``(name, module) -> bool``, the
    modules whose forward opens it (default: `default_scopes`). The hooks live on `model`
    only while profiling, removed even if `fn` raises. A trace is written to `trace_path`.
    """
    repeats, warmup = positive_int("repeats", repeats), non_negative_int("warmup", warmup)
    if not callable(fn):
        raise TypeError(f"fn must be a function of no arguments, e.g. lambda: model(ids); got {type(fn).__name__}.")
    device = _device_of(model)
    on_cuda = device.type == "cuda" and torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    hooks = _Scopes(model, default_scopes(model) if scopes is None else scopes)
    walls = []
    try:
        for _ in range(warmup):  # first calls allocate, pick kernels, build AdamW's state
            fn()
        synchronize(device)
        with profiler_quietly(activities=activities) as prof:
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                synchronize(device)
                walls.append(time.perf_counter() - start)
    finally:
        hooks.close()
    events = list(prof.events())
    seconds, ops = _summarise(events, on_cuda, repeats)
    path = None
    if trace_path is not None:
        path = Path(trace_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(path))
    return OpProfile(
        seconds=seconds,
        wall_seconds=statistics.median(walls),
        device="cuda" if on_cuda else "cpu",
        timer="GPU kernel time" if on_cuda else "CPU time of each op (self)",
        ops=dict(sorted(ops.items(), key=lambda item: -item[1])),
        attention_kernel=_attention_kernel(events),
        trace_path=path,
    )


def profile_training_step(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    dtype: torch.dtype = torch.float32,
    repeats: int = 2,
    warmup: int = 2,
    trace_path: str | Path | None = None,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None,
    scopes: Mapping[str, Predicate] | None = None,
) -> OpProfile:
    """`profile_call` of one training step, in train mode, as `timing.make_train_step` runs it.

    AdamW with lr=0 (the weights stay), autocast in `dtype`, a GradScaler for fp16. Each
    step copies its batch from the host to the model's device under ``"data"`` (the next
    of `batches` if given, else `inputs`, `targets`); the loss runs under ``"loss"``, the
    optimizer under ``"optimizer"``.
    """
    device = _device_of(model)
    if inputs.shape != targets.shape or inputs.dim() != 2:
        raise ValueError(
            f"inputs and targets must both be (batch, tokens), got {tuple(inputs.shape)} and {tuple(targets.shape)}."
        )
    pin = device.type == "cuda"  # a pinned host batch copies asynchronously, as a loader's
    host = (inputs.cpu().pin_memory(), targets.cpu().pin_memory()) if pin else (inputs.cpu(), targets.cpu())
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler(device.type) if needs_grad_scaler(dtype) else None
    steps = [0]

    def fetch() -> tuple[torch.Tensor, torch.Tensor]:
        if batches is None:
            x, y = host
        else:
            try:
                x, y = next(batches)
            except StopIteration:
                raise ValueError(
                    f"batches ran out after {steps[0]} steps; give at least warmup + repeats = "
                    f"{warmup + repeats} batches (or an endless iterator, e.g. itertools.cycle)."
                ) from None
        steps[0] += 1
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def step() -> None:
        with record_function(SCOPE_PREFIX + "data"):
            x, y = fetch()
        with autocast(device, dtype):
            logits = model(x)
            with record_function(SCOPE_PREFIX + "loss"):
                loss = cross_entropy_loss(logits, y)
                if scaler is not None:
                    loss = scaler.scale(loss)
        with record_function(SCOPE_PREFIX + "optimizer"):
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with record_function(SCOPE_PREFIX + "optimizer"):
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)
                scaler.update()

    try:
        return profile_call(model, step, repeats=repeats, warmup=warmup, trace_path=trace_path, scopes=scopes)
    finally:
        model.zero_grad(set_to_none=True)
