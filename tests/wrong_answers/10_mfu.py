"""Chapter 10: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "10.1": (
        "the step's forward FLOPs only, as if training did no backward pass",
        """step_flops = count_flops("gpt2-small", 8, 1024, training=False).total
achieved = step_flops / 0.61
true_mfu = achieved / peak_flops("Tesla T4", "fp16")
claimed_peak = achieved / 1.42
""",
    ),
    "10.2": (
        "the causal mask counted once per sequence, though the whole batch shares it",
        """def manual_layer_bytes(b, t, d, h):
    return 4 * b * t * (16 * d + 4) + 4 * b * h * t * t + b * t * t
""",
    ),
    "10.3": (
        "the mean of the timed calls, which the outliers pull away from the typical call",
        """def robust_time(fn, repeats=7, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.mean(times)
""",
    ),
    "10.4": (
        "the whole of the T4's free memory as the budget, forgetting SAFETY_FRACTION",
        """def fits(batch_size):
    need = estimate_memory("gpt2-medium", batch_size, 1024, dtype=torch.float16,
                           attention="sdpa")
    return need.total <= T4_FREE_BYTES


max_batch = 0
while fits(max_batch + 1):
    max_batch += 1
""",
    ),
}
