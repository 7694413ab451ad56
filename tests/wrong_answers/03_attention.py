"""Chapter 3: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "3.1": (
        "reshapes nn.Linear's (out, in) weights to (in, out) instead of transposing them",
        """with torch.no_grad():
    sa_v1.W_query.copy_(sa_v2.W_query.weight.reshape(d_in, d_out))
    sa_v1.W_key.copy_(sa_v2.W_key.weight.reshape(d_in, d_out))
    sa_v1.W_value.copy_(sa_v2.W_value.weight.reshape(d_in, d_out))
""",
    ),
    "3.2": (
        "off by one: hides keys more than w tokens back, so each query sees w + 1 tokens",
        """def window_mask(T, w):
    t = torch.arange(T)
    distance = t[:, None] - t[None, :]
    return (distance < 0) | (distance > w)


def window_weights(scores, w):
    hidden = window_mask(scores.shape[-1], w)
    return torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1)
""",
    ),
    "3.3": (
        "compares every output, the changed positions included, so everything 'leaks'",
        """def leaks(attend, T, d):
    x = torch.randn(T, d)
    for t in range(T - 1):
        changed = x.clone()
        changed[t + 1 :] = torch.randn(T - t - 1, d)
        if not torch.allclose(attend(changed), attend(x)):
            return True
    return False
""",
    ),
}
