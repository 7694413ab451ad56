"""The SPEC's short spelling of chapter 10's measuring API, re-exported (chapter 10).

Each idea has its own module: peaks (`gptcourse.peaks`), timing (`gptcourse.timing`),
memory (`gptcourse.memory`, `gptcourse.gpu_budget`), tokens/s and MFU (`gptcourse.mfu`).
This one keeps the spelling a reader of the original project expects:

    >>> from gptcourse.perf import measure_throughput
    >>> tokens_per_second, mfu = measure_throughput(model, config, batch_size=32)
"""

from .gpu_budget import find_max_batch_size
from .memory import MemoryEstimate, estimate_memory, measure_saved_activations
from .mfu import TrainingMeasurement, measure_throughput, measure_training
from .peaks import PEAKS, DevicePeaks, UnknownDeviceError, autocast_precision, match_device, matmul_precision, peak_flops, precision_key
from .timing import make_train_step, measure_bandwidth, measure_peak_flops, synchronize, time_calls

__all__ = [
    "PEAKS",
    "DevicePeaks",
    "MemoryEstimate",
    "TrainingMeasurement",
    "UnknownDeviceError",
    "autocast_precision",
    "estimate_memory",
    "find_max_batch_size",
    "make_train_step",
    "match_device",
    "matmul_precision",
    "measure_bandwidth",
    "measure_peak_flops",
    "measure_saved_activations",
    "measure_throughput",
    "measure_training",
    "peak_flops",
    "precision_key",
    "synchronize",
    "time_calls",
]
