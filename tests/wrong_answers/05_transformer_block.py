"""Chapter 5: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "5.1": (
        "no epsilon: divides by the root mean square itself",
        """class MyRMSNorm(nn.Module):
    def __init__(self, emb_dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(emb_dim))

    def forward(self, x):
        return self.weight * x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True))
""",
    ),
    "5.2": (
        "uses 2 / d_in, the variance, as the standard deviation",
        """def init_kaiming(stack):
    for module in stack.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=2 / module.in_features)
            nn.init.zeros_(module.bias)


torch.manual_seed(0)
stack = DeepStack(width, depth, residual=False, norm=False)
init_kaiming(stack)
out, stds = stack(inputs)
(out - targets).pow(2).mean().backward()
kaiming_grads = [layer[0].weight.grad.norm().item() for layer in stack.layers]
""",
    ),
    "5.3": (
        "the rate keeps climbing after the warm-up instead of staying at the peak",
        """def warmup_lr(step, peak, warmup_steps):
    return peak * (step + 1) / warmup_steps


warmup_losses = train_lm(PostNormBlock, lambda step: warmup_lr(step, 1e-2, 20))
""",
    ),
    "5.4": (
        "forgets the product rule: the derivative of x * Phi(x) taken as Phi(x)",
        """def gelu_grad(x):
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


gelu_argmin = -0.5
""",
    ),
}
