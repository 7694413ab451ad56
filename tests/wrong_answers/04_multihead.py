"""Chapter 4: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "4.1": (
        "forgets the output projection's bias",
        """def mha_num_params(d_in, d_out, qkv_bias):
    qkv = 3 * (d_in * d_out + (d_out if qkv_bias else 0))
    return qkv + d_out * d_out
""",
    ),
    "4.2": (
        "repeat instead of repeat_interleave: key heads (k0, k1, k0, k1), groups interleaved",
        """class GroupedQueryAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, n_heads, n_groups):
        super().__init__()
        self.d_out, self.n_heads, self.n_groups = d_out, n_heads, n_groups
        self.head_dim = d_out // n_heads
        self.W_query = nn.Linear(d_in, d_out, bias=False)
        self.W_key = nn.Linear(d_in, n_groups * self.head_dim, bias=False)
        self.W_value = nn.Linear(d_in, n_groups * self.head_dim, bias=False)
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x):
        b, t, _ = x.shape
        def split(z, heads):
            return z.view(b, t, heads, self.head_dim).transpose(1, 2)
        q = split(self.W_query(x), self.n_heads)
        per_group = self.n_heads // self.n_groups
        k = split(self.W_key(x), self.n_groups).repeat(1, per_group, 1, 1)
        v = split(self.W_value(x), self.n_groups).repeat(1, per_group, 1, 1)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        scores = (q @ k.transpose(2, 3)).masked_fill(future, float("-inf"))
        weights = torch.softmax(scores / math.sqrt(self.head_dim), dim=-1)
        return self.out_proj((weights @ v).transpose(1, 2).reshape(b, t, self.d_out))
""",
    ),
    "4.3": (
        "is_causal=True with fewer queries than keys: the mask is aligned top-left",
        """def attend_newest(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)
""",
    ),
    "4.4": (
        "shifts the keys the wrong way (k_s = e_{s-2}): the head looks two tokens ahead",
        """import copy

two_back = copy.deepcopy(wired)
with torch.no_grad():
    two_back.W_key.weight[0:16, :n_pos] = torch.diag(torch.ones(14), diagonal=2)
""",
    ),
}
