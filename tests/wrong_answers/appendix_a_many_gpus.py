"""Appendix A: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "A.1": (
        "2 bytes per gradient, as if autocast's bf16 reached the gradients DDP all-reduces",
        """grad_bytes = 2 * num_parameters("gpt2-medium", "all")
sent_per_gpu = 2 * (8 - 1) / 8 * grad_bytes
sent_per_gpu_64 = 2 * (64 - 1) / 64 * grad_bytes
""",
    ),
    "A.2": (
        "the autocast recipe (4 + 4 + 8) where the fp16 one (2 + 2 + 12) was asked for",
        """psi = num_parameters("gpt2-xl", "all")
state_gib = {stage: model_state_bytes(psi, stage, 4, recipe="autocast").total / 2**30
             for stage in STAGES}
min_gpus = 1
while model_state_bytes(psi, "zero3", min_gpus).total > 10 * 2**30:
    min_gpus += 1
""",
    ),
    "A.3": (
        "the largest number of GPUs that still works, not the first that fails",
        """tokens, T, B = 2**19, 1024, 16
sequences = tokens // T
grad_accum = {n: sequences // (B * n) for n in [1, 2, 4, 8, 16, 32]}
too_many = 32
""",
    ),
    "A.4": (
        "the positions dealt out round-robin over the ranks, like DistributedSampler",
        """owner_17 = (17 % 4, 17 // 4 // 3)
rank1_first = [1, 5, 9]
""",
    ),
    "A.5": (
        "the all-reduced sum left undivided: N times the mean gradient",
        """def average_gradients(model):
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
""",
    ),
}
