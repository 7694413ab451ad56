"""Chapter 2: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "2.1": (
        "counts the token table only, forgetting the position table",
        """embedding_fraction = {}
for name in ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"]:
    with torch.device("meta"):
        m = GPT(name)
    embedding_fraction[name] = m.tok_emb.weight.numel() / m.num_parameters()
""",
    ),
    "2.2": (
        "takes a zero gradient for a zero update: only step 2's looked-up rows move",
        """def rows_moved(make_optimizer):
    torch.manual_seed(0)
    table = nn.Embedding(6, 3)
    make_optimizer(table.parameters())
    table.weight.grad = None
    table(torch.tensor([5])).pow(2).sum().backward()
    return (table.weight.grad != 0).any(dim=1).nonzero().flatten().tolist()


moved = {
    "SGD": rows_moved(lambda p: torch.optim.SGD(p, lr=0.1)),
    "SGD with momentum": rows_moved(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    "AdamW": rows_moved(lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1)),
}
""",
    ),
    "2.3": (
        "no length check: the class still fails with PyTorch's IndexError",
        """class GPTEmbedding(nn.Module):
    def __init__(self, vocab_size, context_length, emb_dim):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, emb_dim)
        self.pos_emb = nn.Embedding(context_length, emb_dim)

    def forward(self, idx):
        positions = torch.arange(idx.shape[1], device=idx.device)
        return self.tok_emb(idx) + self.pos_emb(positions)
""",
    ),
    "2.4": (
        "frequencies 10000^(-i/d) instead of 10000^(-2i/d)",
        """def rope(x, t):
    d = x.shape[-1]
    theta = 10_000 ** (-torch.arange(d // 2, dtype=x.dtype) / d)
    cos, sin = torch.cos(t * theta), torch.sin(t * theta)
    out = torch.empty_like(x)
    out[0::2] = x[0::2] * cos - x[1::2] * sin
    out[1::2] = x[0::2] * sin + x[1::2] * cos
    return out
""",
    ),
}
