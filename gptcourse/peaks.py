"""What a GPU can do at best: datasheet peak FLOP/s per precision (chapter 10).

MFU divides the model's FLOP/s by the device's peak **for the precision the matmuls run
in**: the dense tensor-core figure for fp16/bf16/tf32, the fp32 one otherwise. Using a
non-tensor-core figure as the "peak" of 16-bit work inflates MFU several times. A CPU has
no entry: its achievable peak is measured (`gptcourse.timing.measure_peak_flops`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .checks import finite_number
from .device import device_name

TERA = 1e12


@dataclass(frozen=True)
class DevicePeaks:
    """Dense peak FLOP/s of one GPU model, per precision, with their datasheet (chapter 10)."""

    name: str
    flops: Mapping[str, float]  # "fp32", "tf32", "fp16", "bf16" -> FLOP/s, dense (no 2:4 sparsity)
    source: str
    missing: Mapping[str, str] = dataclasses.field(default_factory=dict)  # precision -> why there is no figure


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
# Every model number starts at a word boundary (\b): "NVIDIA GH200 480GB" (a Grace Hopper
# superchip) contains "H200" but is not an H200, and gets no figure rather than a wrong one.
_NAME_PATTERNS: list[tuple[str, str]] = [
    (r"\bT4\b", "T4"),
    (r"\bP100[- ]?PCIE", "P100 PCIe"),
    (r"\bP100[- ]?SXM2", "P100 SXM2"),
    (r"\bV100S\b", "V100S PCIe"),
    (r"\bV100[- ]?PCIE", "V100 PCIe"),
    (r"\bV100[- ]?SXM2", "V100 SXM2"),
    (r"\bA100\b.*PCIE", "A100 PCIe"),
    (r"\bA100[- ]?SXM", "A100 SXM"),
    (r"\bA10G\b", "A10G"),
    (r"\bA10\b", "A10"),
    (r"\bL4\b", "L4"),
    (r"\bH100\b.*PCIE", "H100 PCIe"),
    (r"\bH100\b.*NVL", "H100 NVL"),
    (r"\bH100\b.*(SXM|HBM3)", "H100 SXM"),
    (r"\bH200\b.*NVL", "H200 NVL"),
    (r"\bH200\b(?!.*NVL)", "H200 SXM"),
]

_PRECISION_KEYS: dict[Any, str] = {
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
_PRECISION_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32, "tf32": torch.float32}


# A MIG slice (Multi-Instance GPU) is named after its GPU, then its profile: "NVIDIA
# A100-SXM4-40GB MIG 1g.5gb", "NVIDIA H100 80GB HBM3 MIG 3g.40gb". An "Ng" profile has N of
# the GPU's 7 compute slices: NVIDIA's MIG user guide gives its "Fraction of SMs" as N/7 on
# the A100, H100 and H200, the GPUs of PEAKS that MIG runs on. A slice's peak is that
# fraction of the whole GPU's, an upper bound (MIG mode leaves a few SMs unused).
_MIG = re.compile(r"\bMIG\s+(\d+)g\.\d+gb\b", re.IGNORECASE)
_MIG_SLICES = {"A100 SXM": 7, "A100 PCIe": 7, "H100 SXM": 7, "H100 PCIe": 7, "H100 NVL": 7, "H200 SXM": 7, "H200 NVL": 7}
_MIG_SOURCE = "https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html"


class UnknownDeviceError(ValueError):
    """No datasheet peak is known for this device: pass the peak yourself (chapter 10)."""


def precision_key(precision: str | torch.dtype) -> str:
    """The peak-table key, "fp16", "bf16", "fp32" or "tf32", of a precision name or torch dtype.

    Defined in chapter 10. Accepts the keys themselves, their long names ("bfloat16",
    "half", ...) and ``torch.float16``, ``torch.bfloat16``, ``torch.float32``.
    """
    if not isinstance(precision, (str, torch.dtype)):  # a list or a dict is not even hashable
        raise TypeError(
            f"precision must be one name or dtype, got {precision!r} ({type(precision).__name__}): pass one of "
            "'fp16', 'bf16', 'fp32', 'tf32' or torch.float16, torch.bfloat16, torch.float32; for several "
            "precisions, call once per precision."
        )
    key = _PRECISION_KEYS.get(precision.lower() if isinstance(precision, str) else precision)
    if key is None:
        raise ValueError(
            f"precision: there is no peak FLOP/s for {precision!r}; pass one of 'fp16', 'bf16', 'fp32', 'tf32' "
            "or torch.float16, torch.bfloat16, torch.float32."
        )
    return key


def precision_dtype(precision: str | torch.dtype) -> torch.dtype:
    """The torch dtype that tensors have in a precision ("tf32" is fp32 storage); chapter 10."""
    return _PRECISION_DTYPES[precision_key(precision)]


def match_device(device_name: str) -> str | None:
    """The `PEAKS` key for a ``torch.cuda.get_device_name()`` string, or None if unknown (chapter 10)."""
    upper = device_name.upper()
    for pattern, key in _NAME_PATTERNS:
        if re.search(pattern, upper):
            return key
    return None


def _device_name(given: torch.device | str) -> str:
    """A GPU's marketing name for a device ("cuda", "cuda:1"); any other string as given."""
    if isinstance(given, torch.device) or re.fullmatch(r"(cuda|cpu|mps)(:\d+)?", str(given)):
        device = torch.device(given)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device_name={str(given)!r} names a CUDA device, but there is no CUDA GPU here "
                "(torch.cuda.is_available() is False). Pass the GPU's name instead, e.g. "
                "peak_flops('Tesla T4', 'fp16'), or measure this machine's matmul peak with "
                "gptcourse.timing.measure_peak_flops()."
            )
        return device_name(device)
    return str(given)


def device_peaks(device_name: torch.device | str) -> DevicePeaks:
    """The `PEAKS` entry of a GPU: by ``torch.cuda.get_device_name()`` string, device or key.

    Defined in chapter 10. A CPU, or a GPU not in the table, is an `UnknownDeviceError`
    that says what to pass instead. A MIG slice's entry is its share of its GPU's.
    """
    name = _device_name(device_name)
    if name in ("cpu", "mps"):
        raise UnknownDeviceError(
            f"device_name={name!r}: there is no datasheet peak for a {name.upper()} here. Measure the achievable "
            f"one with measure_peak_flops({name!r}, dtype), or pass the figure you trust as peak=... (FLOP/s)."
        )
    key = name if name in PEAKS else match_device(name)
    peaks = PEAKS.get(key or "")
    if peaks is not None and (mig := _MIG.search(name)):
        return _mig_peaks(name, key, peaks, int(mig[1]))
    if peaks is None:
        raise UnknownDeviceError(
            f"device_name={name!r}: no peak FLOP/s is known for this GPU. Look up its dense figure for your "
            "precision on the datasheet (the tensor-core one, not the 'with sparsity' one, which is 2× larger) "
            f"and pass it: peak_flops({name!r}, precision, peak=...) or measure_training(..., peak=...). "
            f"Known: {', '.join(PEAKS)}."
        )
    return peaks


def _mig_peaks(name: str, key: str, peaks: DevicePeaks, used: int) -> DevicePeaks:
    """The peaks of a MIG slice with `used` of its GPU's compute slices: that share of the whole's."""
    slices = _MIG_SLICES.get(key)
    if slices is None or not 1 <= used <= slices:
        raise UnknownDeviceError(
            f"device_name={name!r}: a MIG slice of {used} compute slice{'s' * (used != 1)}, which {peaks.name} does not have "
            f"({'no MIG' if slices is None else f'MIG profiles 1g to {slices}g'}). Pass the peak you trust "
            f"as peak=... (FLOP/s), e.g. peak_flops({name!r}, precision, peak=...)."
        )
    return DevicePeaks(
        f"{peaks.name}, MIG slice {used}g ({used}/{slices} of its SMs)",
        {precision: flops * used / slices for precision, flops in peaks.flops.items()},
        f"{peaks.source} × {used}/{slices} ({_MIG_SOURCE})",
        peaks.missing,
    )


def peak_flops(device_name: torch.device | str, precision: str | torch.dtype, peak: float | None = None) -> float:
    """The dense peak FLOP/s of a GPU for a precision, from its datasheet. Defined in chapter 10.

    ``device_name`` is a ``torch.cuda.get_device_name()`` string ("Tesla T4", "NVIDIA
    A100-SXM4-40GB"; a MIG slice's, "... MIG 1g.5gb", gets N/7 of the GPU's peak for "Ng"),
    a CUDA device ("cuda:0"), or a `PEAKS` key ("A100 SXM"). ``precision`` is what the
    matmuls run in: "fp16"/"bf16" (or the torch dtype) under autocast, "tf32" for fp32
    with TF32 on, "fp32" otherwise (`matmul_precision` tells).
    Give ``peak`` (FLOP/s) for a device not in the table; it is returned as is. A precision
    the GPU cannot run natively (bf16 on a T4) raises an error that says what to use instead.
    """
    if peak is not None:
        return finite_number("peak", peak, strictly_above=0)
    key = precision_key(precision)
    peaks = device_peaks(device_name)
    if key not in peaks.flops:
        raise ValueError(f"precision={key!r}: {peaks.name} has no {key} peak. {peaks.missing.get(key, '')}".strip())
    return peaks.flops[key]


def autocast_precision(device_name: torch.device | str) -> str:
    """The 16-bit precision a GPU trains in under autocast: "bf16" where it has bf16 tensor
    cores (by its `PEAKS` entry), else "fp16" with a gradient scaler (a T4, a V100).

    Defined in chapter 10; for the GPU in this machine, `gptcourse.device.autocast_dtype`
    asks the hardware itself.
    """
    return "bf16" if "bf16" in device_peaks(device_name).flops else "fp16"


def datasheet_peak(device_name: torch.device | str, precision: str | torch.dtype) -> float | None:
    """The datasheet peak of a GPU for a precision, or None where `PEAKS` has no entry for it.

    Defined in chapter 10. None for a CPU and for a GPU the table does not know (an RTX
    4090, a GH200): MFU is then taken against a measured matmul peak (`gptcourse.mfu.
    choose_peak`). A precision a known GPU cannot run natively (bf16 on a T4) still raises.
    """
    try:
        device_peaks(device_name)
    except UnknownDeviceError:
        return None
    return peak_flops(device_name, precision)


def tf32_enabled() -> bool:
    """True when CUDA fp32 matmuls may run on TF32 tensor cores, by this process's settings.

    Defined in chapter 10. PyTorch's default is False: fp32 matmuls stay fp32 ("ieee")
    until ``torch.set_float32_matmul_precision("high")`` (or "medium") turns TF32 on.
    """
    matmul = torch.backends.cuda.matmul
    # PyTorch >= 2.9 has a new API, and reading the old flag raises once the new one was set:
    # ask the new one first. "none" means "as the global setting says".
    setting = getattr(matmul, "fp32_precision", None)
    if setting == "none":
        setting = getattr(torch.backends, "fp32_precision", None)
    if setting in ("tf32", "ieee"):
        return setting == "tf32"
    return bool(matmul.allow_tf32)


def matmul_precision(device: torch.device | str, dtype: torch.dtype) -> str:
    """The peak to compare against for work in `dtype` on `device`: its `precision_key`,
    or "tf32" when fp32 matmuls run on TF32 tensor cores (an Ampere or newer GPU, with
    `tf32_enabled`).

    Defined in chapter 10.
    """
    device = torch.device(device)
    if dtype == torch.float32 and device.type == "cuda" and tf32_enabled():
        if torch.cuda.get_device_capability(device)[0] >= 8:  # TF32 units arrived with Ampere (8.0)
            return "tf32"
    return precision_key(dtype)
