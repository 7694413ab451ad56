"""Chapter 8: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "8.1": (
        "the tied head counted as a second matrix beside the token embedding",
        """import math

n_in_file = sum(math.prod(shape) for name, shape in shapes.items()
                if not name.endswith((".attn.bias", ".attn.masked_bias")))
n_in_file += math.prod(shapes["wte.weight"])  # "lm_head", as if it were stored
""",
    ),
    "8.2": (
        "the three blocks split but left in Conv1D's (in, out) layout, not transposed",
        """def split_qkv(weight, bias):
    d = weight.shape[0]
    return list(zip(weight.split(d, dim=1), bias.split(d)))
""",
    ),
    "8.3": (
        "the keys counted, the values forgotten",
        """def kv_cache_bytes(config, n_tokens, batch_size=1, bytes_per_number=4):
    numbers = config.n_layers * batch_size * n_tokens * config.emb_dim
    return numbers * bytes_per_number
""",
    ),
    "8.4": (
        "the head counted on every position run, as if last_only changed nothing",
        """def step_flops(config, context, use_cache, last_only):
    d, V = config.emb_dim, config.vocab_size
    tokens = 1 if use_cache else context
    linear = 2 * tokens * (3 * d * d + d * d + 2 * 4 * d * d)
    attention = 2 * (2 * tokens * context * d)
    return config.n_layers * (linear + attention) + 2 * d * V * tokens
""",
    ),
}
