"""Chapter 7: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "7.1": (
        "logarithms in base 2: perplexity as 2 to the loss, the loss of 1/1000 in bits",
        """ppl = 2 ** val_loss
loss_1000 = math.log2(1000)
""",
    ),
    "7.2": (
        "lambda on the wrong side: 0.1 for the pair counts, 0.9 for the unigram",
        """from collections import Counter

train_list, val_list = train_ids.tolist(), val_ids.tolist()
pairs = Counter(zip(train_list, train_list[1:]))
firsts = Counter(train_list[:-1])
unigram_p = unigram_log_p.exp().tolist()
lam = 0.9
total = 0.0
for a, b in zip(val_list, val_list[1:]):
    seen = pairs[a, b] / firsts[a] if firsts[a] else 0.0
    total -= math.log((1 - lam) * seen + lam * unigram_p[b])
bigram_loss = total / (len(val_list) - 1)
""",
    ),
    "7.3": (
        "each half's loss not divided by 2: the accumulated gradient is twice too large",
        """torch.manual_seed(0)
net = GPT(dataclasses.replace(model_config, drop_rate=0.0)).to(device)
eight = create_dataloader(train_text, batch_size=8, max_length=T, stride=T, seed=1)
x, y = (t.to(device) for t in next(iter(eight)))
batch_loss(net, x, y).backward()
full_grads = [p.grad.clone() for p in net.parameters()]
net.zero_grad()
for half in (slice(0, 4), slice(4, 8)):
    batch_loss(net, x[half], y[half]).backward()
accumulated_grads = [p.grad for p in net.parameters()]
""",
    ),
    "7.4": (
        "counted through state_dict(), which lists the tied head as well as the embedding",
        """state = model.state_dict()
n_decayed = sum(t.numel() for t in state.values() if t.dim() >= 2)
n_not_decayed = sum(t.numel() for t in state.values() if t.dim() < 2)
""",
    ),
}
