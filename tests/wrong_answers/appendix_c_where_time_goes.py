"""Appendix C: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "C.1": (
        "the weights' bytes only, as if the activations moved for free",
        """d = 768
intensity_1 = 2 * 1 * d * 4 * d / (2 * d * 4 * d)
intensity_64 = 2 * 64 * d * 4 * d / (2 * d * 4 * d)
""",
    ),
    "C.2": (
        "the weights only: the KV cache, read in full every step, forgotten",
        """t4_tokens_per_second = 320e9 / (2 * num_parameters(gpt2, "all"))
""",
    ),
    "C.3": (
        "the ridge taken as the batch (I = B FLOP/byte): the KV cache's bytes left out",
        """largest_b = round(65e12 / 320e9)
""",
    ),
}
