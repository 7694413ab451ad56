"""Chapter 10's measuring API in one place: a thin re-export of the modules that hold it.

Each idea has its own module: datasheet peaks (`gptcourse.peaks`), timing
(`gptcourse.timing`), memory (`gptcourse.memory`), tokens/s and MFU (`gptcourse.mfu`),
recorded GPU rows (`gptcourse.results`), and the comparison with other implementations
(`gptcourse.peers`). This module keeps the short spelling working:

    >>> from gptcourse.perf import measure_throughput, peak_flops
    >>> tokens_per_second, mfu = measure_throughput(model, config, batch_size=32)
"""

from .memory import MemoryEstimate, estimate_memory, find_max_batch_size, measure_saved_activations
from .mfu import TrainingMeasurement, measure_throughput, measure_training
from .peaks import PEAKS, DevicePeaks, UnknownDeviceError, autocast_precision, match_device, matmul_precision, peak_flops, precision_key
from .results import RESULT_FIELDS, RESULTS_FILE, load_results, record_result
from .timing import make_train_step, measure_bandwidth, measure_peak_flops, synchronize, time_calls

__all__ = [
    "PEAKS",
    "RESULTS_FILE",
    "RESULT_FIELDS",
    "DevicePeaks",
    "MemoryEstimate",
    "TrainingMeasurement",
    "UnknownDeviceError",
    "autocast_precision",
    "estimate_memory",
    "find_max_batch_size",
    "load_results",
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
    "record_result",
    "synchronize",
    "time_calls",
]
