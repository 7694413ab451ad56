"""How fast a GPT trains, and how close that is to what the hardware can do (chapter 10).

Model FLOP Utilization (MFU, PaLM appendix B) is the FLOP/s the model's own arithmetic
needs at the measured speed, divided by the device's peak FLOP/s **for the dtype in use**:

    MFU = (FLOPs per training step / seconds per step) / peak FLOP/s

The FLOPs come from the exact count of `gptcourse.flops`; the peak from NVIDIA's datasheets
(dense tensor-core figures, `PEAKS`), or, on a CPU, from a large matmul measured here.

    >>> tokens_per_second, mfu = measure_throughput(model, config, batch_size=32)
    >>> m = measure_training(model, config, batch_size=8)   # everything: times, memory, both peaks
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import math
import re
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .config import GPTConfig
from .device import autocast, autocast_dtype, get_device, needs_grad_scaler
from .flops import count_flops, n_params

# --------------------------------------------------------------------------- peak FLOP/s

TERA = 1e12


@dataclass(frozen=True)
class DevicePeaks:
    """Dense peak FLOP/s of one GPU model, per dtype, with where the figures come from."""

    name: str
    flops: Mapping[str, float]  # "fp32", "tf32", "fp16", "bf16" -> FLOP/s, dense (no 2:4 sparsity)
    source: str
    missing: Mapping[str, str] = dataclasses.field(default_factory=dict)  # dtype -> why there is no figure


_NO_BF16_TURING = (
    "The T4 (Turing) has no bf16 tensor cores: torch.cuda.is_bf16_supported() may say True, but "
    "that is emulation, and slow. Train in fp16 with a gradient scaler (torch.amp.GradScaler) and "
    "measure MFU against the fp16 peak, 65 TFLOP/s."
)
_NO_TF32 = "TF32 arrived with Ampere (A100, A10, L4, H100); on this GPU fp32 matmuls run at the fp32 peak."
_NO_BF16_OLD = "bf16 arrived with Ampere (A100, A10, L4, H100); this GPU has none. Use fp16 with a gradient scaler."

# Every figure is the dense one: datasheets print "with sparsity" figures (2:4 structured
# sparsity) twice as large, marked with an asterisk; those do not apply to training a GPT.
PEAKS: dict[str, DevicePeaks] = {
    "T4": DevicePeaks(
        "NVIDIA T4",
        {"fp16": 65 * TERA, "fp32": 8.1 * TERA},
        # NVIDIA T4 Tensor Core GPU datasheet: "Mixed Precision (FP16/FP32) 65 TFLOPS; Single Precision 8.1 TFLOPS"
        "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/t4-tensor-core-datasheet-951643.pdf",
        {"bf16": _NO_BF16_TURING, "tf32": _NO_TF32},
    ),
    "P100 PCIe": DevicePeaks(
        "NVIDIA Tesla P100 PCIe",
        {"fp16": 18.7 * TERA, "fp32": 9.3 * TERA},
        # Tesla P100 PCIe datasheet: half precision 18.7 TFLOPS, single 9.3. No tensor cores:
        # the fp16 figure is the CUDA cores' packed half2 rate (2× fp32).
        "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-p100/pdf/nvidia-tesla-p100-PCIe-datasheet.pdf",
        {"bf16": _NO_BF16_OLD, "tf32": _NO_TF32},
    ),
    "P100 SXM2": DevicePeaks(
        "NVIDIA Tesla P100 SXM2",
        {"fp16": 21.2 * TERA, "fp32": 10.6 * TERA},
        # Tesla P100 datasheet (NVLink version): half precision 21.2 TFLOPS, single 10.6. No tensor cores.
        "https://images.nvidia.com/content/tesla/pdf/nvidia-tesla-p100-datasheet.pdf",
        {"bf16": _NO_BF16_OLD, "tf32": _NO_TF32},
    ),
    "V100 SXM2": DevicePeaks(
        "NVIDIA V100 SXM2",
        {"fp16": 125 * TERA, "fp32": 15.7 * TERA},
        # Tesla V100 datasheet: SXM2 "Tensor Performance 125 TFLOPS", single precision 15.7
        "https://images.nvidia.com/content/technologies/volta/pdf/tesla-volta-v100-datasheet-letter-fnl-web.pdf",
        {"bf16": _NO_BF16_OLD, "tf32": _NO_TF32},
    ),
    "V100 PCIe": DevicePeaks(
        "NVIDIA V100 PCIe",
        {"fp16": 112 * TERA, "fp32": 14 * TERA},
        # Tesla V100 datasheet: PCIe "Tensor Performance 112 TFLOPS", single precision 14
        "https://images.nvidia.com/content/technologies/volta/pdf/tesla-volta-v100-datasheet-letter-fnl-web.pdf",
        {"bf16": _NO_BF16_OLD, "tf32": _NO_TF32},
    ),
    "V100S PCIe": DevicePeaks(
        "NVIDIA V100S PCIe",
        {"fp16": 130 * TERA, "fp32": 16.4 * TERA},
        # V100S datasheet: "Tensor Performance 130 TFLOPS", single precision 16.4
        "https://images.nvidia.com/content/technologies/volta/pdf/volta-v100-datasheet-update-us-1165301-r5.pdf",
        {"bf16": _NO_BF16_OLD, "tf32": _NO_TF32},
    ),
    "A100 SXM": DevicePeaks(
        "NVIDIA A100 SXM4",
        {"bf16": 312 * TERA, "fp16": 312 * TERA, "tf32": 156 * TERA, "fp32": 19.5 * TERA},
        # A100 datasheet: BF16/FP16 Tensor Core 312 TFLOPS (624* with sparsity), TF32 156 (312*), FP32 19.5
        "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf",
    ),
    "A100 PCIe": DevicePeaks(
        "NVIDIA A100 PCIe",
        {"bf16": 312 * TERA, "fp16": 312 * TERA, "tf32": 156 * TERA, "fp32": 19.5 * TERA},
        # A100 datasheet: the PCIe card has the same peaks as the SXM4 module (it differs in power and memory bandwidth)
        "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf",
    ),
    "A10": DevicePeaks(
        "NVIDIA A10",
        {"bf16": 125 * TERA, "fp16": 125 * TERA, "tf32": 62.5 * TERA, "fp32": 31.2 * TERA},
        # A10 datasheet: BF16/FP16 Tensor Core 125 TFLOPS (250*), TF32 62.5 (125*), FP32 31.2
        "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a10/pdf/a10-datasheet.pdf",
    ),
    "A10G": DevicePeaks(
        "NVIDIA A10G (AWS)",
        {"bf16": 70 * TERA, "fp16": 70 * TERA, "tf32": 35 * TERA, "fp32": 35 * TERA},
        # NVIDIA A10G datasheet for AWS (g5 instances): BF16/FP16 tensor 70 TFLOPS (140*), TF32 35 (70*), FP32 35.
        # Not the A10's figures: the A10G has fewer tensor-core FLOP/s than the A10.
        "https://d1.awsstatic.com/product-marketing/ec2/NVIDIA_AWS_A10G_DataSheet_FINAL_02_17_2022.pdf",
    ),
    "L4": DevicePeaks(
        "NVIDIA L4",
        {"bf16": 121 * TERA, "fp16": 121 * TERA, "tf32": 60 * TERA, "fp32": 30.3 * TERA},
        # L4 datasheet: BF16/FP16 Tensor Core 242* TFLOPS, TF32 120* (* with sparsity: dense is half), FP32 30.3
        "https://resources.nvidia.com/en-us-data-center-overview/l4-gpu-datasheet",
    ),
    "H100 SXM": DevicePeaks(
        "NVIDIA H100 SXM5",
        {"bf16": 989 * TERA, "fp16": 989 * TERA, "tf32": 494 * TERA, "fp32": 67 * TERA},
        # H100 datasheet, SXM column: BF16/FP16 Tensor Core 1,979* TFLOPS, TF32 989* (* with sparsity), FP32 67
        "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet",
    ),
    "H100 PCIe": DevicePeaks(
        "NVIDIA H100 PCIe",
        {"bf16": 756 * TERA, "fp16": 756 * TERA, "tf32": 378 * TERA, "fp32": 51 * TERA},
        # H100 datasheet, PCIe column: BF16/FP16 Tensor Core 1,513* TFLOPS, TF32 756* (* with sparsity), FP32 51
        "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet",
    ),
    "H100 NVL": DevicePeaks(
        "NVIDIA H100 NVL",
        {"bf16": 835 * TERA, "fp16": 835 * TERA, "tf32": 417 * TERA, "fp32": 60 * TERA},
        # H100 datasheet, NVL column (per GPU): BF16/FP16 Tensor Core 1,671* TFLOPS, TF32 835* (* with sparsity), FP32 60
        "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet",
    ),
    "H200 SXM": DevicePeaks(
        "NVIDIA H200 SXM",
        {"bf16": 989 * TERA, "fp16": 989 * TERA, "tf32": 494 * TERA, "fp32": 67 * TERA},
        # H200 datasheet, SXM column: BF16/FP16 Tensor Core 1,979* TFLOPS, TF32 989* (* with sparsity), FP32 67
        "https://www.nvidia.com/en-us/data-center/h200/",
    ),
    "H200 NVL": DevicePeaks(
        "NVIDIA H200 NVL",
        {"bf16": 835 * TERA, "fp16": 835 * TERA, "tf32": 417 * TERA, "fp32": 60 * TERA},
        # H200 datasheet, NVL column: BF16/FP16 Tensor Core 1,671* TFLOPS, TF32 835* (* with sparsity), FP32 60
        "https://www.nvidia.com/en-us/data-center/h200/",
    ),
}

# torch.cuda.get_device_name() strings -> PEAKS keys, most specific first.
# Examples: "Tesla T4", "Tesla P100-PCIE-16GB", "Tesla V100-SXM2-16GB", "NVIDIA A100-SXM4-40GB",
# "NVIDIA A100 80GB PCIe", "NVIDIA A10G", "NVIDIA L4", "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe".
_NAME_PATTERNS: list[tuple[str, str]] = [
    (r"\bT4\b", "T4"),
    (r"P100[- ]?PCIE", "P100 PCIe"),
    (r"P100[- ]?SXM2", "P100 SXM2"),
    (r"V100S", "V100S PCIe"),
    (r"V100[- ]?PCIE", "V100 PCIe"),
    (r"V100[- ]?SXM2", "V100 SXM2"),
    (r"A100.*PCIE", "A100 PCIe"),
    (r"A100[- ]?SXM", "A100 SXM"),
    (r"\bA10G\b", "A10G"),
    (r"\bA10\b", "A10"),
    (r"\bL4\b", "L4"),
    (r"H100.*PCIE", "H100 PCIe"),
    (r"H100.*NVL", "H100 NVL"),
    (r"H100.*(SXM|HBM3)", "H100 SXM"),
    (r"H200.*NVL", "H200 NVL"),
    (r"H200(?!.*NVL)", "H200 SXM"),
]

_DTYPE_KEYS: dict[Any, str] = {
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.float32: "fp32",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "tf32": "tf32",
}


class UnknownDeviceError(ValueError):
    """No datasheet peak is known for this device: pass the peak yourself."""


def dtype_key(dtype: torch.dtype | str) -> str:
    """The peak-table key ("fp16", "bf16", "fp32" or "tf32") of a torch dtype or of one of those names."""
    key = _DTYPE_KEYS.get(dtype.lower() if isinstance(dtype, str) else dtype)
    if key is None:
        raise ValueError(f"No peak FLOP/s for dtype {dtype!r}; use one of fp16, bf16, fp32, tf32.")
    return key


def match_device(device_name: str) -> str | None:
    """The `PEAKS` key for a ``torch.cuda.get_device_name()`` string, or None if unknown."""
    upper = device_name.upper()
    for pattern, key in _NAME_PATTERNS:
        if re.search(pattern, upper):
            return key
    return None


def _device_name(device: torch.device | str) -> str:
    """A GPU's marketing name for a device ("cuda", "cuda:1"); any other string as given."""
    if isinstance(device, torch.device) or re.fullmatch(r"(cuda|cpu|mps)(:\d+)?", str(device)):
        dev = torch.device(device)
        if dev.type == "cuda":
            return torch.cuda.get_device_name(dev)
        return dev.type
    return str(device)


def peak_flops(device_name: torch.device | str, dtype: torch.dtype | str, peak: float | None = None) -> float:
    """The dense peak FLOP/s of a GPU for a dtype, from its datasheet.

    ``device_name`` is a ``torch.cuda.get_device_name()`` string ("Tesla T4",
    "NVIDIA A100-SXM4-40GB"), a device ("cuda:0"), or a `PEAKS` key ("A100 SXM"). ``dtype``
    is the precision the matmuls run in: fp16/bf16 under autocast, "tf32" for fp32 with
    TF32 on, fp32 otherwise. Give ``peak`` (FLOP/s) for a device not in the table; it is
    returned as is. A dtype the GPU cannot run natively (bf16 on a T4) raises an error
    that says what to use instead.
    """
    if peak is not None:
        if isinstance(peak, bool) or not isinstance(peak, (int, float)) or not math.isfinite(peak) or peak <= 0:
            raise ValueError(f"peak must be a positive number of FLOP/s (e.g. 65e12), got {peak!r}.")
        return float(peak)
    name = _device_name(device_name)
    key = dtype_key(dtype)
    if name in ("cpu", "mps"):
        raise UnknownDeviceError(
            f"There is no datasheet peak for a {name.upper()} here. Measure the achievable one with "
            f"measure_peak_flops({name!r}, dtype), or pass the figure you trust as peak=... (FLOP/s)."
        )
    device = PEAKS.get(name) or PEAKS.get(match_device(name) or "")
    if device is None:
        raise UnknownDeviceError(
            f"No peak FLOP/s is known for {name!r}. Look up its dense {key} figure on the datasheet (the "
            f"tensor-core one, not the 'with sparsity' one, which is 2× larger) and pass it: "
            f"peak_flops({name!r}, {key!r}, peak=...) or measure_training(..., peak=...). Known: {', '.join(PEAKS)}."
        )
    if key not in device.flops:
        raise ValueError(f"{device.name} has no {key} peak. {device.missing.get(key, '')}".strip())
    return device.flops[key]


def matmul_precision_key(device: torch.device | str, dtype: torch.dtype) -> str:
    """The peak to compare against: the autocast dtype, or tf32 when fp32 matmuls use TF32."""
    device = torch.device(device)
    if dtype == torch.float32 and device.type == "cuda":
        matmul = torch.backends.cuda.matmul
        tf32 = matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest" or getattr(matmul, "fp32_precision", "") == "tf32"
        if tf32 and torch.cuda.get_device_capability(device)[0] >= 8:
            return "tf32"
    return dtype_key(dtype)


# ------------------------------------------------------------------------------ timing


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (GPU kernels run asynchronously; the CPU does not)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_calls(fn: Callable[[], Any], device: torch.device | str, repeats: int = 5, warmup: int = 2) -> list[float]:
    """Seconds taken by each of `repeats` calls of `fn`, after `warmup` untimed calls.

    On a GPU each call is timed by CUDA events recorded around it (the host only queues
    the work; the events mark when the GPU ran it); elsewhere with ``time.perf_counter``.
    """
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    if device.type == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        times = [start.elapsed_time(end) / 1e3 for start, end in events]
    else:
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - start)
    return times


_MEASURED_PEAKS: dict[tuple[str, str, int], float] = {}


def measure_peak_flops(
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    n: int | None = None,
    repeats: int = 7,
    warmup: int = 2,
    refresh: bool = False,
) -> float:
    """The achievable matmul FLOP/s: the median over `repeats` of an (n×n)·(n×n) product.

    ``n`` defaults to 8192 on a GPU and 1024 on a CPU (large enough to be compute-bound,
    small enough to take well under a second). The result is remembered per (device,
    dtype, n) so that a notebook's MFU figures share one denominator; ``refresh=True``
    measures again.
    """
    device = get_device() if device is None else torch.device(device)
    n = n or (8192 if device.type == "cuda" else 1024)
    key = (str(device), str(dtype), n)
    if key in _MEASURED_PEAKS and not refresh:
        return _MEASURED_PEAKS[key]
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    times = time_calls(lambda: a @ b, device, repeats=repeats, warmup=warmup)
    _MEASURED_PEAKS[key] = 2 * n**3 / statistics.median(times)
    return _MEASURED_PEAKS[key]


def measure_bandwidth(device: torch.device | str | None = None, n_bytes: int = 256 * 2**20, repeats: int = 7) -> float:
    """Memory bandwidth in bytes/s: a copy of `n_bytes` reads and writes each byte once."""
    device = get_device() if device is None else torch.device(device)
    src = torch.ones(n_bytes // 4, device=device)
    dst = torch.empty_like(src)
    times = time_calls(lambda: dst.copy_(src), device, repeats=repeats)
    return 2 * n_bytes / statistics.median(times)


# ---------------------------------------------------------------------------- training


def _logits(output: Any) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output  # Hugging Face models return an object


def make_train_step(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    dtype: torch.dtype,
    lr: float = 0.0,
) -> Callable[[], None]:
    """One training step (forward, loss, backward, AdamW) as a function of no arguments.

    ``lr=0`` by default: the optimizer does all its work, but measuring does not change
    the model's weights. fp16 gets a gradient scaler, as it would in training.
    """
    device = inputs.device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler(device.type) if needs_grad_scaler(dtype) else None

    def step() -> None:
        with autocast(device, dtype):
            logits = _logits(model(inputs))
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    step.optimizer = optimizer  # type: ignore[attr-defined]
    return step


@dataclass(frozen=True)
class TrainingMeasurement:
    """What `measure_training` measured. Times in seconds, memory in bytes, FLOPs exact."""

    device: str  # the GPU's name, or "cpu"
    dtype: str  # the matmuls' precision: fp32, tf32, bf16 or fp16
    batch_size: int
    seq_len: int
    step_times: tuple[float, ...]
    flops_per_step: int  # exact, from gptcourse.flops.count_flops (forward + backward)
    peak_flops: float  # the denominator of `mfu`
    peak_source: str  # "datasheet", "measured matmul" or "given"
    measured_peak_flops: float | None  # a large matmul's FLOP/s on this device, when measured
    peak_memory: int | None  # torch.cuda.max_memory_allocated() during the steps (GPU only)
    estimated_memory: int  # estimate_memory(...).total

    @property
    def step_time(self) -> float:
        """The median step time."""
        return statistics.median(self.step_times)

    @property
    def spread(self) -> float:
        """(slowest − fastest) / median: how noisy the steps were."""
        return (max(self.step_times) - min(self.step_times)) / self.step_time

    @property
    def tokens_per_second(self) -> float:
        return self.batch_size * self.seq_len / self.step_time

    @property
    def flops_per_token(self) -> float:
        return self.flops_per_step / (self.batch_size * self.seq_len)

    @property
    def achieved_flops(self) -> float:
        """Model FLOP/s: the exact FLOPs of a step divided by its median time."""
        return self.flops_per_step / self.step_time

    @property
    def mfu(self) -> float:
        return self.achieved_flops / self.peak_flops

    @property
    def mfu_vs_measured(self) -> float | None:
        """MFU against the measured matmul peak (what this device can actually reach)."""
        return None if self.measured_peak_flops is None else self.achieved_flops / self.measured_peak_flops

    def summary(self) -> str:
        lines = [
            f"{self.device}, {self.dtype}, batch {self.batch_size} × {self.seq_len} tokens",
            f"  step {self.step_time * 1e3:.1f} ms (median of {len(self.step_times)}, spread {self.spread:.0%}), "
            f"{self.tokens_per_second:,.0f} tokens/s",
            f"  {self.flops_per_token / 1e6:.1f} MFLOP/token -> {self.achieved_flops / 1e9:,.1f} GFLOP/s achieved",
            f"  MFU {self.mfu:.1%} of {self.peak_flops / 1e12:.3g} TFLOP/s ({self.peak_source})",
        ]
        if self.measured_peak_flops is not None and self.peak_source != "measured matmul":
            lines.append(f"  MFU {self.mfu_vs_measured:.1%} of the measured matmul peak, {self.measured_peak_flops / 1e12:.3g} TFLOP/s")
        if self.mfu > 1 or (self.mfu_vs_measured or 0) > 1:
            lines.append(
                "  (above 100%: the peak was measured while the machine was busier, or at a size that runs slower "
                "than these matmuls; measure_peak_flops(..., refresh=True) measures it again)"
            )
        if self.peak_memory is not None:
            lines.append(f"  peak memory {self.peak_memory / 2**30:.2f} GiB (estimate {self.estimated_memory / 2**30:.2f} GiB)")
        return "\n".join(lines)


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _attention_kind(model: torch.nn.Module) -> str:
    return getattr(model, "attention", getattr(getattr(model, "_orig_mod", None), "attention", "sdpa"))


def measure_training(
    model: torch.nn.Module,
    config: GPTConfig | Mapping[str, Any] | str | None = None,
    batch_size: int = 8,
    seq_len: int | None = None,
    steps: int = 10,
    warmup: int = 3,
    dtype: torch.dtype | None = None,
    peak: float | None = None,
    measure_peak: bool | None = None,
    seed: int = 0,
) -> TrainingMeasurement:
    """Time `steps` training steps after `warmup` untimed ones; report speed, MFU and memory.

    ``dtype`` is the autocast precision (default: `gptcourse.device.autocast_dtype`, i.e.
    bf16 on Ampere and newer, fp16 on older GPUs, fp32 on a CPU). MFU is taken against
    ``peak`` when given, else the datasheet peak for that dtype (GPU), else a measured
    matmul peak (CPU). ``measure_peak`` (default: on CPU only) also measures the matmul
    peak, so that both MFUs are reported. The model's weights are left unchanged (the
    optimizer runs with lr=0) and its training mode restored.
    """
    cfg = _resolve_config(model, config)
    seq_len = cfg.context_length if seq_len is None else seq_len
    device = _model_device(model)
    dtype = autocast_dtype(device) if dtype is None else dtype
    precision = matmul_precision_key(device, dtype)
    name = _device_name(device)

    measured = None
    if measure_peak or (measure_peak is None and device.type != "cuda"):
        measured = measure_peak_flops(device, dtype)
    if peak is not None:
        denominator, source = peak_flops(name, precision, peak=peak), "given"
    elif device.type == "cuda":
        denominator, source = peak_flops(name, precision), "datasheet"
    else:
        denominator, source = measured, "measured matmul"

    generator = torch.Generator(device="cpu").manual_seed(seed)
    inputs = torch.randint(0, cfg.vocab_size, (batch_size, seq_len), generator=generator).to(device)
    targets = torch.randint(0, cfg.vocab_size, (batch_size, seq_len), generator=generator).to(device)
    was_training = model.training
    model.train()
    step = make_train_step(model, inputs, targets, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        times = time_calls(step, device, repeats=steps, warmup=warmup)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    peak_memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    estimate = estimate_memory(cfg, batch_size, seq_len, dtype=dtype, attention=_attention_kind(model), device_type=device.type)
    return TrainingMeasurement(
        device=name,
        dtype=precision,
        batch_size=batch_size,
        seq_len=seq_len,
        step_times=tuple(times),
        flops_per_step=count_flops(cfg, batch_size, seq_len, training=True).total,
        peak_flops=denominator,
        peak_source=source,
        measured_peak_flops=measured,
        peak_memory=peak_memory,
        estimated_memory=estimate.total,
    )


def measure_throughput(
    model: torch.nn.Module, config: GPTConfig | Mapping[str, Any] | str | None = None, batch_size: int = 32, **kwargs: Any
) -> tuple[float, float]:
    """``(tokens_per_second, mfu)`` of training `model` (the SPEC's call).

    A thin wrapper of `measure_training` (same keyword arguments: ``seq_len``, ``steps``,
    ``warmup``, ``dtype``, ``peak``): on a GPU, MFU against the datasheet peak for the
    dtype in use; on a CPU, against the measured matmul peak.
    """
    m = measure_training(model, config, batch_size=batch_size, **kwargs)
    return m.tokens_per_second, m.mfu


def _resolve_config(model: torch.nn.Module, config: Any) -> GPTConfig:
    if config is None:
        config = getattr(model, "config", None)
        if not isinstance(config, GPTConfig):
            raise ValueError("Pass the model's GPTConfig (or dict, or preset name) as config.")
    return GPTConfig.coerce(config)


# ------------------------------------------------------------------------------ memory


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs, part by part (an estimate: see `estimate_memory`)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int  # the tensors autograd saves for the backward pass
    logits: int  # the logits and their gradient, alive together when the backward starts

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits

    def as_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "total": self.total}


def _bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def estimate_memory(
    config: GPTConfig | Mapping[str, Any] | str,
    batch_size: int,
    seq_len: int | None = None,
    dtype: torch.dtype = torch.float32,
    attention: str = "sdpa",
    device_type: str = "cuda",
    training: bool = True,
) -> MemoryEstimate:
    """The memory of one training step: weights + gradients + AdamW state + activations.

    Weights, gradients and AdamW's two moments are fp32: 4 + 4 + 8 bytes per parameter.
    Activations are what autograd saves for the backward pass, counted from our model's
    code (a test checks the count against the tensors really saved, on CPU): per layer,
    16 tensors of B·T·d (the layer norms' inputs and outputs, Q, K, V, the attention output,
    the feed-forward's 4d-wide input and output of GELU), plus the (T×T) attention weights
    with ``attention="manual"`` (B·h·T² numbers; SDPA keeps only a B·h·T log-sum-exp).
    Under autocast (fp16/bf16) the matmuls' inputs are kept in half precision, beside
    half-precision copies of the weights; the residual stream stays fp32; on a GPU the
    softmax runs (and is saved) in fp32. Then the logits: the log-softmax's fp32 output is
    saved, and when the backward starts the logits and their gradient are alive too.

    The CUDA caching allocator, cuBLAS workspaces and fragmentation add to this; compare
    with ``torch.cuda.max_memory_allocated()`` (`measure_training` reports both).
    """
    cfg = GPTConfig.coerce(config)
    t = cfg.context_length if seq_len is None else seq_len
    b, d, h, v, layers = batch_size, cfg.emb_dim, cfg.n_heads, cfg.vocab_size, cfg.n_layers
    params = n_params(cfg, "all")
    fp32 = 4
    half = _bytes(dtype)  # == 4 in fp32
    btd = b * t * d
    weights = fp32 * params
    if not training:
        return MemoryEstimate(weights, 0, 0, 0, b * t * v * half)
    per_layer = 2 * btd * fp32  # the residual stream entering each layer norm (fp32 always)
    per_layer += 14 * btd * half  # LN outputs, Q, K, V, attention output, FF 4d in and 4d out
    per_layer += 2 * 2 * b * t * fp32  # the layer norms' means and 1/std
    if attention == "manual":
        softmax_bytes = fp32 if (half != fp32 and device_type == "cuda") else 0  # CUDA autocast: softmax in fp32
        per_layer += b * h * t * t * (half + softmax_bytes)
    else:
        per_layer += b * h * t * fp32  # SDPA keeps only the softmax's log-sum-exp per row
    activations = layers * per_layer + 2 * btd * fp32 + 2 * b * t * fp32  # final layer norm
    activations += b * t * v * fp32  # the log-softmax output, saved by cross_entropy
    if half != fp32:
        activations += half * (layers * 12 * d * d + d * v)  # autocast's copies of the weight matrices
    logits = b * t * v * (half + fp32)  # the logits, and the gradient of the fp32 loss input
    return MemoryEstimate(weights, fp32 * params, 2 * fp32 * params, activations, logits)


def measure_saved_activations(model: torch.nn.Module, batch_size: int, seq_len: int | None = None, dtype: torch.dtype | None = None) -> int:
    """Bytes of the tensors autograd saves for backward during one forward + loss (each storage once).

    Measured with ``torch.autograd.graph.saved_tensors_hooks``, so it works on a CPU, where
    there is no ``max_memory_allocated``. Parameters are left out (they are counted as
    weights); autocast's half-precision weight copies are included.
    """
    cfg: GPTConfig = model.config
    seq_len = cfg.context_length if seq_len is None else seq_len
    device = _model_device(model)
    dtype = autocast_dtype(device) if dtype is None else dtype
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    idx = torch.zeros(batch_size, seq_len, dtype=torch.long, device=device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(device, dtype):
        logits = _logits(model(idx))
        F.cross_entropy(logits.flatten(0, 1).float(), idx.flatten())
    return sum(saved.values())


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def find_max_batch_size(
    model: torch.nn.Module,
    config: GPTConfig | Mapping[str, Any] | str | None = None,
    seq_len: int | None = None,
    dtype: torch.dtype | None = None,
    memory_budget: int | None = None,
    max_batch_size: int = 4096,
) -> int:
    """The largest batch whose training step fits in memory (0 if not even 1 fits).

    On a GPU (and no ``memory_budget``): real training steps, batch 1, 2, 4, ... until one
    runs out of memory, then a binary search between the last that fit and the first that
    did not; each out-of-memory error is caught and its memory freed. Elsewhere, or with a
    ``memory_budget`` in bytes: the largest batch whose `estimate_memory` fits the budget
    (default on a CPU: half the memory now available), found by the same search.
    """
    cfg = _resolve_config(model, config)
    seq_len = cfg.context_length if seq_len is None else seq_len
    device = _model_device(model)
    dtype = autocast_dtype(device) if dtype is None else dtype

    if device.type == "cuda" and memory_budget is None:

        def fits(batch: int) -> bool:
            return _fits_on_gpu(model, cfg, batch, seq_len, dtype)

    else:
        budget = memory_budget if memory_budget is not None else _available_memory() // 2
        attention = _attention_kind(model)

        def fits(batch: int) -> bool:
            return estimate_memory(cfg, batch, seq_len, dtype, attention, device.type).total <= budget

    if not fits(1):
        return 0
    good, bad = 1, None
    while bad is None and good < max_batch_size:  # grow: 1, 2, 4, ...
        trial = min(2 * good, max_batch_size)
        if fits(trial):
            good = trial
        else:
            bad = trial
    while bad is not None and bad - good > 1:  # then halve the gap
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good


def _fits_on_gpu(model: torch.nn.Module, cfg: GPTConfig, batch: int, seq_len: int, dtype: torch.dtype) -> bool:
    device = _model_device(model)
    inputs = torch.zeros(batch, seq_len, dtype=torch.long, device=device)
    step = None
    try:
        step = make_train_step(model, inputs, inputs, dtype)
        step()
        synchronize(device)
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        del inputs, step
        model.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()


# -------------------------------------------------------------------- recorded results

RESULTS_FILE = Path(__file__).parent / "results" / "gpu_mfu.csv"
RESULT_FIELDS = [
    "date",
    "device",
    "model",
    "dtype",
    "batch_size",
    "seq_len",
    "config",
    "attention",
    "compiled",
    "tokens_per_second",
    "mfu",
    "peak_tflops",
    "peak_memory_gib",
    "torch",
    "command",
]


def load_results(path: str | Path | None = None) -> list[dict[str, str]]:
    """The measurements recorded by ``benchmarks/mfu.py --record`` (an empty list if none yet)."""
    path = Path(path) if path is not None else RESULTS_FILE
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if any(row.values())]


def record_result(row: Mapping[str, Any], path: str | Path | None = None) -> Path:
    """Append one measurement to the results file (with a header if the file is new)."""
    path = Path(path) if path is not None else RESULTS_FILE
    unknown = set(row) - set(RESULT_FIELDS)
    if unknown:
        raise ValueError(f"Unknown result field(s) {sorted(unknown)}; the file has: {RESULT_FIELDS}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in RESULT_FIELDS})
    return path
