"""Chapter 6: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "6.1": (
        "the token embedding only, forgetting the position table",
        """embedding_share = {}
for name in sizes:
    c = GPTConfig.from_preset(name)
    embedding_share[name] = c.vocab_size * c.emb_dim / gpt_num_params(c)
""",
    ),
    "6.2": (
        "4 bytes per parameter: the weights only, no gradients or AdamW state",
        """max_params_16gb = 16 * 10**9 // 4
fits_16gb = {name for name in sizes
             if 4 * gpt_num_params(GPTConfig.from_preset(name)) <= 16 * 10**9}
""",
    ),
    "6.3": (
        "drops the token that crosses p (keeps only tokens whose cumulative sum is below p)",
        """def top_p_filter(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative > p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))
""",
    ),
    "6.4": (
        "samples at temperature 1 instead of 1e-3",
        """greedy_ids = my_generate(tiny, prompt, 10, tiny.config.context_length, temperature=0.0)
cold_ids = my_generate(tiny, prompt, 10, tiny.config.context_length, temperature=1.0,
                       generator=torch.Generator().manual_seed(0))
""",
    ),
}
