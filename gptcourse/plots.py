"""The figures and widgets the chapters show, in one consistent style.

Every function returns the matplotlib ``Figure`` it drew, so a notebook can show it,
save it or test it. Call `use_style()` once at the top of a chapter.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

# One palette for the whole book (colour-blind safe: Okabe & Ito).
COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

STYLE = {
    "figure.figsize": (7.0, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.autolayout": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "legend.frameon": False,
    "axes.prop_cycle": plt.cycler(color=COLORS),
    "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply the book's matplotlib style."""
    plt.rcParams.update(STYLE)


# ---------------------------------------------------------------- chapter 1: tokens


def plot_sliding_window(token_ids: list[int], tokens: list[str], max_length: int, stride: int, n_windows: int = 3) -> Figure:
    """Inputs and their one-token-shifted targets for the first few windows of a text."""
    n_show = min(len(tokens), stride * (n_windows - 1) + max_length + 1)
    fig, ax = plt.subplots(figsize=(min(14, 0.9 * n_show + 2), 0.9 * 2 * n_windows + 0.8))
    for w in range(n_windows):
        start = w * stride
        for row, (offset, label, color) in enumerate([(0, "input", COLORS[0]), (1, "target", COLORS[1])]):
            y = -(2 * w + row)
            for i in range(max_length):
                pos = start + offset + i
                if pos >= n_show:
                    break
                ax.add_patch(plt.Rectangle((pos, y - 0.4), 0.95, 0.8, color=color, alpha=0.25))
                ax.text(pos + 0.47, y, tokens[pos].replace("\n", "⏎"), ha="center", va="center", fontsize=8)
            ax.text(-0.3, y, f"window {w + 1} {label}", ha="right", va="center", fontsize=9, color=color)
    ax.set_xlim(-0.1, n_show)
    ax.set_ylim(-2 * n_windows + 0.4, 0.6)
    ax.set_xticks([i + 0.47 for i in range(n_show)], [str(i) for i in range(n_show)], fontsize=7)
    ax.set_yticks([])
    ax.grid(False)
    ax.set_xlabel("position in the text (tokens)")
    ax.set_title(f"Sliding windows: max_length={max_length}, stride={stride}; each target is its input shifted by one")
    return fig


# ---- chapter 4: multi-head attention


def plot_head_heatmaps(weights, tokens: list[str], head_names: list[str] | None = None, title: str | None = None, ncols: int = 4) -> Figure:
    """One attention heatmap per head, in a grid of `ncols` columns (`plot_attention` draws them).

    `weights` has shape (heads, T, T) (a tensor or an array): row t holds how much token t
    (the query) attends to each token (the keys). Every panel uses the same colour scale, 0 to 1.
    """
    heads = list(torch.as_tensor(weights))
    names = head_names or [f"head {h}" for h in range(len(heads))]
    return plot_attention(heads, tokens, names, annotate=False, ncols=ncols, suptitle=title or "Attention weights, one panel per head")


def plot_attention_timings(seq_lens: list[int], timings: dict[str, dict[str, list[float]]], device_label: str = "") -> Figure:
    """Median time of each attention variant against sequence length, forward and forward+backward.

    `timings[variant][pass_name]` is a list of milliseconds, one per entry of `seq_lens`;
    `pass_name` is e.g. "forward" or "forward + backward" (one panel each).
    """
    passes = list(next(iter(timings.values())))
    fig, axes = plt.subplots(1, len(passes), figsize=(5.2 * len(passes), 4.0), squeeze=False)
    for ax, pass_name in zip(axes[0], passes):
        for i, (variant, by_pass) in enumerate(timings.items()):
            ax.plot(seq_lens, by_pass[pass_name], marker="o", color=COLORS[i % len(COLORS)], label=variant)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(seq_lens, [str(t) for t in seq_lens])
        ax.set_xlabel("sequence length T (tokens)")
        ax.set_ylabel("median time per call (ms, log scale)")
        ax.set_title(pass_name)
        ax.legend()
    fig.suptitle(f"Three multi-head attention modules, same weights{' — ' + device_label if device_label else ''}", fontweight="bold")
    return fig


# ---- chapter 2: embeddings


def _heatmap(ax, values, cmap: str = "viridis", vmin=None, vmax=None, annotate: bool = False, fmt: str = "{:.2f}"):
    """imshow without the grid, optionally with each value written in its cell."""
    values = torch.as_tensor(values).detach().float().cpu()
    image = ax.imshow(values.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.grid(False)
    if annotate:
        lo, hi = image.get_clim()
        for (i, j), v in zip(torch.cartesian_prod(torch.arange(values.shape[0]), torch.arange(values.shape[1])).tolist(), values.flatten().tolist()):
            dark = (v - lo) / (hi - lo + 1e-12) < 0.5
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7, color="white" if dark and cmap == "viridis" else "black")
    return image


def plot_one_hot_lookup(token_ids, weight, token_labels: list[str] | None = None) -> Figure:
    """One-hot rows (T×V) times the embedding matrix W (V×d): the product is rows of W (T×d)."""
    token_ids = torch.as_tensor(token_ids)
    weight = torch.as_tensor(weight).detach().float()
    vocab_size, emb_dim = weight.shape
    one_hot = torch.nn.functional.one_hot(token_ids, vocab_size).float()
    labels = token_labels or [f"id {i}" for i in token_ids.tolist()]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw={"width_ratios": [vocab_size, emb_dim, emb_dim]})
    _heatmap(axes[0], one_hot, cmap="Blues", vmin=0, vmax=1.4, annotate=True, fmt="{:.0f}")
    axes[0].set_title(f"one-hot ids ({len(token_ids)}×{vocab_size})")
    axes[0].set_xlabel("vocabulary id")
    axes[0].set_ylabel("token in the sequence")
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].set_xticks(range(vocab_size))
    lo, hi = weight.min().item(), weight.max().item()
    _heatmap(axes[1], weight, vmin=lo, vmax=hi, annotate=True)
    for row in sorted(set(token_ids.tolist())):
        axes[1].add_patch(plt.Rectangle((-0.5, row - 0.5), emb_dim, 1, fill=False, edgecolor=COLORS[1], linewidth=2.5))
    axes[1].set_title(f"@ W ({vocab_size}×{emb_dim})")
    axes[1].set_xlabel("embedding dimension")
    axes[1].set_ylabel("vocabulary id")
    axes[1].set_xticks(range(emb_dim))
    axes[1].set_yticks(range(vocab_size))
    _heatmap(axes[2], one_hot @ weight, vmin=lo, vmax=hi, annotate=True)
    axes[2].set_title(f"= the rows of W ({len(token_ids)}×{emb_dim})")
    axes[2].set_xlabel("embedding dimension")
    axes[2].set_yticks(range(len(labels)), labels)
    axes[2].set_xticks(range(emb_dim))
    fig.suptitle("An embedding is a matrix product with a one-hot vector, done as a lookup (orange: the rows picked)", fontsize=11)
    return fig


def plot_cosine_histograms(cosines: dict[int, torch.Tensor]) -> Figure:
    """Histograms of cosine similarities between random vectors, one per dimension d."""
    fig, ax = plt.subplots()
    bins = torch.linspace(-1, 1, 81).numpy()
    for d, values in sorted(cosines.items()):
        values = torch.as_tensor(values).detach().flatten().float()
        ax.hist(values.numpy(), bins=bins, density=True, histtype="stepfilled", alpha=0.45, label=f"d = {d} (std {values.std():.3f})")
    ax.set_xlim(-1, 1)
    ax.set_xlabel("cosine similarity between two different token embeddings")
    ax.set_ylabel("density")
    ax.set_title("Random embeddings are nearly orthogonal, more so as d grows")
    ax.legend()
    return fig


def plot_position_embeddings(pe: torch.Tensor, name: str = "sinusoidal") -> Figure:
    """A position-embedding matrix (positions × dimensions) and the cosine similarity between positions."""
    pe = torch.as_tensor(pe).detach().float()
    unit = torch.nn.functional.normalize(pe, dim=-1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    image = _heatmap(axes[0], pe, cmap="RdBu_r", vmin=-1, vmax=1)
    fig.colorbar(image, ax=axes[0], label="value")
    axes[0].set_title(f"{name} position embeddings ({pe.shape[0]} positions, d = {pe.shape[1]})")
    axes[0].set_xlabel("embedding dimension")
    axes[0].set_ylabel("position in the sequence")
    image = _heatmap(axes[1], unit @ unit.T, cmap="viridis", vmin=-1, vmax=1)
    fig.colorbar(image, ax=axes[1], label="cosine similarity")
    axes[1].set_title("similarity between positions")
    axes[1].set_xlabel("position")
    axes[1].set_ylabel("position")
    return fig


# ---- chapter 3: attention


def _tick_label(token: str) -> str:
    return token.replace("\n", "⏎")


def plot_attention(
    weights,
    tokens: list[str],
    titles: str | list[str] | None = None,
    annotate: bool | None = None,
    ncols: int | None = None,
    suptitle: str | None = None,
) -> Figure:
    """Heatmaps of attention weights (queries down, keys across), one per matrix, tokens as ticks.

    `weights` is one (T, T) matrix or a list of them; row i is how much token i attends to each
    token. The panels stand in one row, or in a grid of `ncols` columns; all share one 0-1 scale.
    """
    mats = [weights] if isinstance(weights, torch.Tensor) and weights.dim() == 2 else list(weights)
    mats = [torch.as_tensor(m).detach().float().cpu() for m in mats]
    titles = [titles] if isinstance(titles, str) else titles or [None] * len(mats)
    num_tokens = mats[0].shape[0]
    annotate = num_tokens <= 8 if annotate is None else annotate
    ncols = min(ncols or len(mats), len(mats))
    nrows = -(-len(mats) // ncols)
    # Big panels for one or two matrices; smaller ones in a grid of heads.
    side = min(6.5, 1.6 + 0.38 * num_tokens) if len(mats) <= 2 else max(2.6, 0.28 * num_tokens + 1.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols + 1.0, side * nrows + 0.4), squeeze=False, layout="constrained")
    labels = [_tick_label(t) for t in tokens]
    small = {"fontsize": 7} if len(mats) > 2 else {}
    for i, ax in enumerate(axes.flat):
        if i >= len(mats):
            ax.set_visible(False)
            continue
        image = _heatmap(ax, mats[i], vmin=0, vmax=1, annotate=annotate)
        first_column, last_row = i % ncols == 0, i // ncols == nrows - 1
        ax.set_xticks(range(num_tokens), labels, rotation=90, **small)
        ax.set_yticks(range(num_tokens), labels if first_column or nrows == 1 else [], **small)
        if last_row:
            ax.set_xlabel("key: the token attended to")
        if first_column:
            ax.set_ylabel("query: the token attending")
        if titles[i]:
            ax.set_title(titles[i], fontsize=10)
    fig.colorbar(image, ax=axes, label="attention weight", shrink=0.8)
    if suptitle:
        fig.suptitle(suptitle, fontweight="bold")
    return fig


def plot_softmax_saturation(dims: list[int], results: dict[str, dict[str, list[float]]], n_keys: int) -> Figure:
    """Statistics of softmax(q·k) against the width d, one panel per statistic, one line per variant.

    `results` maps a variant ("unscaled", "scaled by 1/√d") to {statistic name: one value per d}.
    """
    stats = list(next(iter(results.values())))
    fig, axes = plt.subplots(1, len(stats), figsize=(4.0 * len(stats), 3.8), squeeze=False)
    for ax, stat in zip(axes[0], stats):
        for variant, values in results.items():
            ax.plot(dims, values[stat], marker="o", label=variant)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width d of queries and keys")
        ax.set_title(stat, fontsize=11)
    axes[0][0].legend()
    fig.suptitle(f"Softmax over {n_keys} keys, with random queries and keys of unit variance", fontsize=12)
    return fig


def _attention_weights(x: torch.Tensor, causal: bool, scale: bool, temperature: float) -> torch.Tensor:
    """softmax(x xᵀ [/ √d] / temperature) with an optional causal mask: the explorer's attention."""
    scores = x @ x.T  # (T, T): queries and keys are the embeddings themselves
    if scale:
        scores = scores / math.sqrt(x.shape[-1])
    scores = scores / temperature
    if causal:
        future = torch.triu(torch.ones_like(scores, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1)


class AttentionExplorer:
    """Attention weights of a sentence, with controls for the mask, the scale and the temperature.

    Shown in a notebook, it draws an ordinary figure of the current state (so a page rendered
    without a kernel still shows it) and, below, ipywidgets controls that redraw that figure
    in place when a kernel is running.
    """

    def __init__(self, sentences: list[str], embedding: torch.nn.Embedding, tokenizer=None, causal: bool = True, scale: bool = True, temperature: float = 1.0):
        import ipywidgets as widgets

        from .tokenizer import get_tokenizer

        if not sentences:
            raise ValueError("Give at least one sentence to explore.")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.tokenizer = tokenizer or get_tokenizer()
        self.embedding = embedding
        self.sentence = widgets.Dropdown(options=list(sentences), value=sentences[0], description="sentence", layout=widgets.Layout(width="95%"))
        self.causal = widgets.Checkbox(value=causal, description="causal mask")
        self.scale = widgets.Checkbox(value=scale, description="scale scores by 1/√d")
        self.temperature = widgets.FloatLogSlider(value=temperature, base=2, min=-3, max=4, step=0.25, description="temperature", readout_format=".3g")
        self.controls = widgets.VBox([self.sentence, widgets.HBox([self.causal, self.scale]), self.temperature])
        for control in (self.sentence, self.causal, self.scale, self.temperature):
            control.observe(self._redraw, names="value")
        self._handle = None

    def weights(self) -> tuple[list[str], torch.Tensor]:
        """The tokens of the chosen sentence and their (T, T) attention weights."""
        ids = self.tokenizer.encode(self.sentence.value)
        with torch.no_grad():
            x = self.embedding(torch.tensor(ids, device=self.embedding.weight.device)).float().cpu()  # (T, d)
        tokens = [self.tokenizer.decode([i]) for i in ids]
        return tokens, _attention_weights(x, self.causal.value, self.scale.value, self.temperature.value)

    def figure(self) -> Figure:
        tokens, weights = self.weights()
        d = self.embedding.embedding_dim
        scale = f"/ √{d}" if self.scale.value else "unscaled"
        mask = "causal" if self.causal.value else "no mask"
        return plot_attention(weights, tokens, f"softmax(x·xᵀ {scale} / {self.temperature.value:.3g}), {mask}")

    def _redraw(self, _change=None) -> None:
        fig = self.figure()
        if self._handle is not None:
            self._handle.update(fig)
        plt.close(fig)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.controls)
        fig = self.figure()
        self._handle = display(fig, display_id=True)  # a plain figure: what a page without a kernel shows
        plt.close(fig)


def attention_explorer(sentences: list[str], embedding: torch.nn.Embedding, tokenizer=None, causal: bool = True, scale: bool = True, temperature: float = 1.0) -> AttentionExplorer:
    """An `AttentionExplorer`: make it the last line of a cell to show the figure and its controls."""
    return AttentionExplorer(sentences, embedding, tokenizer, causal, scale, temperature)


# ---- chapter 5: transformer block


def plot_activations(x, values: dict, derivatives: dict | None = None) -> Figure:
    """Activation functions on the left, their derivatives on the right (when given).

    `values[name]` and `derivatives[name]` are 1-D arrays or tensors over the points `x`.
    """
    import numpy as np

    def arr(t):
        return np.asarray(t.detach().cpu() if hasattr(t, "detach") else t, dtype=float)

    panels = [("activation", values)] + ([("derivative", derivatives)] if derivatives else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, (kind, curves) in zip(axes[0], panels):
        for i, (name, y) in enumerate(curves.items()):
            ax.plot(arr(x), arr(y), styles[i % len(styles)], color=COLORS[i % len(COLORS)], lw=2, label=name)
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="black", lw=0.6)
        ax.set_xlabel("input x")
        ax.set_ylabel("f(x)" if kind == "activation" else "f'(x)")
        ax.set_title("The functions" if kind == "activation" else "Their derivatives (what backprop multiplies by)")
        ax.legend()
    return fig


def plot_residual_gradients(grad_norms: dict, activation_stds: dict | None = None, floor: float = 1e-30) -> Figure:
    """Per-layer gradient norms (and activation sizes) of deep stacks, one line per variant.

    `grad_norms[name]` lists one gradient norm per layer, input side first. Values below
    `floor` (a gradient that underflowed to 0) are drawn at the floor.
    """
    panels = [("grad", grad_norms)] + ([("std", activation_stds)] if activation_stds else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.2), squeeze=False)
    for ax, (kind, series) in zip(axes[0], panels):
        for i, (name, values) in enumerate(series.items()):
            layers = range(1, len(values) + 1)
            ax.plot(layers, [max(float(v), floor) for v in values], marker="o", ms=3, color=COLORS[i % len(COLORS)], label=name)
        ax.set_yscale("log")
        ax.set_xlabel("layer (1 = nearest the input)")
        if kind == "grad":
            ax.set_ylabel("gradient norm of the layer's weight (log scale)")
            ax.set_title("Gradients reaching each layer")
        else:
            ax.set_ylabel("std of the layer's output (log scale)")
            ax.set_title("Size of the activations")
        ax.legend(fontsize=9)
    return fig


# ---- chapter 9: FLOPs


def plot_flop_breakdown(count, title: str | None = None) -> Figure:
    """Each component's share of a pass's FLOPs (a `gptcourse.flops.FlopCount`), as bars."""
    rows = count.rows()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    names = [r["component"] for r in rows][::-1]
    shares = [100 * r["share"] for r in rows][::-1]
    colors = [COLORS[1] if "attention" in n and "projection" not in n else COLORS[0] for n in names]
    colors = [COLORS[3] if n == "LM head" else c for n, c in zip(names, colors)]
    bars = ax.barh(names, shares, color=colors)
    for bar, share in zip(bars, shares):
        ax.text(bar.get_width() + 0.5, bar.get_y() + bar.get_height() / 2, f"{share:.1f}%", va="center", fontsize=9)
    ax.set_xlim(0, max(shares) * 1.18)
    ax.set_xlabel("share of all FLOPs (%)")
    cfg = count.config
    pass_name = "forward + backward" if count.training else "forward"
    ax.set_title(title or f"{count.total / 1e12:.3g} TFLOPs: L={cfg.n_layers}, d={cfg.emb_dim}, B={count.batch_size}, T={count.seq_len}, {pass_name}")
    return fig


def plot_attention_share(context_lengths: list[int], presets: tuple[str, ...] = ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl")) -> Figure:
    """Left: the share of training FLOPs in the T×T attention matrix; right: how far 6N is off."""
    import dataclasses

    from .config import GPTConfig
    from .flops import count_flops, flops_per_token_6n

    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.2))
    for i, preset in enumerate(presets):
        shares, errors = [], []
        for t in context_lengths:
            cfg = dataclasses.replace(GPTConfig.from_preset(preset), context_length=t)
            count = count_flops(cfg, 1, t)
            shares.append(100 * count.attention_share)
            errors.append(100 * (flops_per_token_6n(cfg) / count.per_token - 1))
        cfg = GPTConfig.from_preset(preset)
        crossing = 6 * cfg.emb_dim + cfg.vocab_size / (2 * cfg.n_layers)  # where attention = everything else
        left.plot(context_lengths, shares, marker="o", ms=3, color=COLORS[i], label=f"{preset} (50% at T ≈ {crossing:,.0f})")
        right.plot(context_lengths, errors, marker="o", ms=3, color=COLORS[i], label=preset)
    left.axhline(50, color="grey", ls="--", lw=1)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context length T (tokens)")
        ax.axvline(1024, color="grey", ls=":", lw=1)
        ax.legend(fontsize=8)
    left.set_ylabel("attention matrix share of FLOPs (%)")
    left.set_title("Where attention starts to dominate")
    right.set_ylabel("6N ÷ exact − 1 (%)")
    right.set_title("The 6N rule's error (N: nanoGPT's, no position emb.)")
    return fig


class FlopCalculator:
    """FLOPs, time and memory of a training step, with controls for size, context and batch.

    Shown in a notebook it draws an ordinary figure and table of the current state (what a
    page rendered without a kernel shows) and, above them, ipywidgets controls that redraw
    both in place when a kernel is running.
    """

    DEVICES = (("Tesla T4", 16), ("NVIDIA A100-SXM4-80GB", 80))  # name, GB of memory

    def __init__(self, preset: str = "gpt2-small", context_length: int = 1024, batch_size: int = 8, mixed_precision: bool = True, mfu: float = 0.4):
        import ipywidgets as widgets

        from .config import PRESETS

        self.preset = widgets.Dropdown(options=list(PRESETS), value=preset, description="size")
        self.context = widgets.SelectionSlider(options=[2**k for k in range(6, 15)], value=context_length, description="context T")
        self.batch = widgets.IntSlider(value=batch_size, min=1, max=64, description="batch B")
        self.mixed = widgets.Checkbox(value=mixed_precision, description="mixed precision (fp16 on a T4, bf16 on an A100)")
        self.mfu = widgets.FloatSlider(value=mfu, min=0.05, max=0.8, step=0.05, description="assumed MFU", readout_format=".0%")
        self.controls = widgets.VBox([widgets.HBox([self.preset, self.context]), widgets.HBox([self.batch, self.mfu]), self.mixed])
        for control in (self.preset, self.context, self.batch, self.mixed, self.mfu):
            control.observe(self._redraw, names="value")
        self._handles = None

    def config(self):
        import dataclasses

        from .config import GPTConfig

        return dataclasses.replace(GPTConfig.from_preset(self.preset.value), context_length=self.context.value)

    def numbers(self) -> dict:
        """The calculator's state: FLOP count, memory estimate, and time per step per device."""
        from .flops import count_flops, flops_per_token_6n
        from .perf import estimate_memory, peak_flops

        cfg, b = self.config(), self.batch.value
        count = count_flops(cfg, b, cfg.context_length)
        dtype = torch.float16 if self.mixed.value else torch.float32
        memory = estimate_memory(cfg, b, dtype=dtype)
        devices = {}
        for name, gb in self.DEVICES:
            precision = ("fp16" if "T4" in name else "bf16") if self.mixed.value else "fp32"
            peak = peak_flops(name, precision)
            step = count.total / (peak * self.mfu.value)
            devices[name] = {"precision": precision, "peak": peak, "step_s": step, "tokens_per_s": count.tokens / step, "memory_gb": gb}
        return {"config": cfg, "count": count, "memory": memory, "devices": devices, "six_n": flops_per_token_6n(cfg) * count.tokens}

    def figure(self) -> Figure:
        state = self.numbers()
        count, memory = state["count"], state["memory"]
        fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 3.8), gridspec_kw={"width_ratios": [1.4, 1]})
        rows = count.rows()
        left.barh([r["component"] for r in rows][::-1], [r["total"] / 1e12 for r in rows][::-1], color=COLORS[0])
        left.set_xlabel("TFLOPs per training step")
        left.set_title(f"{count.total / 1e12:,.1f} TFLOPs per step ({count.per_token / 1e9:.2f} GFLOP/token)", fontsize=11)
        bottom = 0.0
        parts = memory.as_dict()
        for i, name in enumerate(["weights", "gradients", "optimizer", "activations", "logits"]):
            gib = parts[name] / 1e9
            right.bar(["estimate"], [gib], bottom=bottom, color=COLORS[i], label=name)
            bottom += gib
        top = 1.3 * max(bottom, min(gb for _, gb in self.DEVICES))
        for name, gb in self.DEVICES:
            if gb <= top:  # a line per GPU whose memory is on the scale
                right.axhline(gb, color="grey", ls="--", lw=1)
                right.text(-0.55, gb, f"{name.replace('NVIDIA ', '').replace('Tesla ', '')}: {gb} GB", va="bottom", fontsize=8)
        right.set_ylim(0, top)
        right.set_ylabel("GB")
        right.set_xlim(-0.6, 0.6)
        right.set_title(f"memory of a training step ≈ {memory.total / 1e9:,.1f} GB", fontsize=11)
        right.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
        return fig

    def table(self) -> str:
        """The state as a Markdown table."""
        state = self.numbers()
        count, memory = state["count"], state["memory"]
        lines = [
            "| | |",
            "| --- | --- |",
            f"| FLOPs per step (forward + backward) | {count.total:.3e} ({count.forward_total:.3e} + {count.backward_total:.3e}) |",
            f"| 6N estimate | {state['six_n']:.3e} ({state['six_n'] / count.total - 1:+.1%}) |",
            f"| attention matrix share | {count.attention_share:.1%} |",
            f"| memory estimate | {memory.total / 1e9:.1f} GB |",
        ]
        for name, d in state["devices"].items():
            fits = "fits" if memory.total <= d["memory_gb"] * 1e9 else "does **not** fit"
            lines.append(
                f"| {name}, {d['precision']} ({d['peak'] / 1e12:g} TFLOP/s) at {self.mfu.value:.0%} MFU | "
                f"{d['step_s'] * 1e3:,.0f} ms/step, {d['tokens_per_s']:,.0f} tokens/s; {fits} in {d['memory_gb']} GB |"
            )
        return "\n".join(lines)

    def _redraw(self, _change=None) -> None:
        from IPython.display import Markdown

        fig = self.figure()
        if self._handles is not None:
            self._handles[0].update(fig)
            self._handles[1].update(Markdown(self.table()))
        plt.close(fig)

    def _ipython_display_(self) -> None:
        from IPython.display import Markdown, display

        display(self.controls)
        fig = self.figure()
        self._handles = (display(fig, display_id=True), display(Markdown(self.table()), display_id=True))
        plt.close(fig)


def flop_calculator(preset: str = "gpt2-small", context_length: int = 1024, batch_size: int = 8, mixed_precision: bool = True, mfu: float = 0.4) -> FlopCalculator:
    """A `FlopCalculator`: make it the last line of a cell to show its figure, table and controls."""
    return FlopCalculator(preset, context_length, batch_size, mixed_precision, mfu)


# ---- chapter 10: MFU


def plot_step_times(series: dict[str, list[float]], title: str = "Training step times") -> Figure:
    """Each step's time (seconds in, milliseconds on the plot), one line per series, with its median."""
    import statistics

    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for i, (label, times) in enumerate(series.items()):
        ms = [1e3 * t for t in times]
        ax.plot(range(1, len(ms) + 1), ms, marker="o", color=COLORS[i], label=f"{label} (median {statistics.median(ms):.0f} ms)")
        ax.axhline(statistics.median(ms), color=COLORS[i], ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("time (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend()
    return fig


def plot_mfu_sweep(xs: list, measurements: dict[str, list], xlabel: str, title: str = "", log_x: bool = True) -> Figure:
    """Tokens/s (left) and MFU (right) of `gptcourse.perf.TrainingMeasurement` lists against `xs`."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 3.8))
    for i, (label, ms) in enumerate(measurements.items()):
        left.plot(xs, [m.tokens_per_second for m in ms], marker="o", color=COLORS[i], label=label)
        right.plot(xs, [100 * m.mfu for m in ms], marker="o", color=COLORS[i], label=label)
    for ax in (left, right):
        if log_x:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylim(bottom=0)
        if len(measurements) > 1:
            ax.legend()
    left.set_ylabel("tokens / s")
    right.set_ylabel("MFU (%)")
    first = next(iter(measurements.values()))[0]
    right.set_title(f"MFU against {first.peak_flops / 1e12:.3g} TFLOP/s ({first.peak_source})", fontsize=11)
    left.set_title(title or "Training throughput", fontsize=11)
    return fig


def plot_roofline(peak: float, bandwidth: float, squares: dict[int, tuple[float, float]], others: list[tuple[str, float, float]], title: str = "") -> Figure:
    """The roofline min(peak, intensity × bandwidth), with measured matmuls under it.

    ``squares`` maps n to (FLOP/byte, FLOP/s) of an (n×n)·(n×n) product; ``others`` are
    (label, FLOP/byte, FLOP/s) of any other matmuls (drawn with their own markers).
    """
    fig, ax = plt.subplots(figsize=(8.0, 4.6))
    intensities = [x for x, _ in squares.values()] + [p[1] for p in others] + [peak / bandwidth]
    lo, hi = min(intensities) / 4, max(intensities) * 4
    grid = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    ax.plot(grid, [min(peak, x * bandwidth) / 1e9 for x in grid], color="black", lw=2, label="roofline: min(peak, intensity × bandwidth)")
    ax.axvline(peak / bandwidth, color="grey", ls=":", lw=1)
    ax.text(peak / bandwidth, peak / 1e9 * 1.15, f" ridge: {peak / bandwidth:.1f} FLOP/byte", fontsize=8)
    xs, ys = [x for x, _ in squares.values()], [y / 1e9 for _, y in squares.values()]
    ax.plot(xs, ys, marker="o", ls="-", lw=0.8, color=COLORS[0], label="square matmuls (n×n)·(n×n)", zorder=3)
    for n, (x, y) in squares.items():
        ax.annotate(f"n={n}", (x, y / 1e9), textcoords="offset points", xytext=(4, -10), fontsize=7, color=COLORS[0])
    for i, (label, x, y) in enumerate(others):
        ax.scatter([x], [y / 1e9], marker="^sDvP*"[i % 6], s=50, color=COLORS[(i + 1) % (len(COLORS) - 1)], zorder=4, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte moved)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(title or "Roofline")
    ax.legend(fontsize=7, loc="lower right")
    return fig


# ---- chapter 6: GPT


def plot_param_breakdown(names: list[str], parts: dict[str, list[int]]) -> Figure:
    """Stacked bars: where each model's parameters are (in millions), with the total written at the end.

    `parts[part][i]` is the number of parameters of `part` in model `names[i]`.
    """
    fig, ax = plt.subplots(figsize=(8.0, 0.7 * len(names) + 1.8))
    left = [0.0] * len(names)
    for i, (part, counts) in enumerate(parts.items()):
        millions = [c / 1e6 for c in counts]
        ax.barh(names, millions, left=left, color=COLORS[i % len(COLORS)], label=part)
        left = [a + b for a, b in zip(left, millions)]
    for y, total in enumerate(left):
        ax.text(total, y, f"  {total:,.0f}M", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(left) * 1.15)
    ax.set_xlabel("parameters (millions)")
    ax.set_title("Where the parameters are")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=9)
    ax.grid(axis="y", visible=False)
    return fig


def plot_training_memory(names: list[str], memory_gb: dict[str, list[float]], limits: dict[str, float] | None = None) -> Figure:
    """Grouped bars of memory (GB) per model and regime, with horizontal lines for device memory sizes."""
    import numpy as np

    n = len(memory_gb)
    width = 0.8 / n
    pos = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for i, (regime, values) in enumerate(memory_gb.items()):
        ax.bar(pos + (i - (n - 1) / 2) * width, values, width, color=COLORS[i % len(COLORS)], label=regime)
    for j, (label, gb) in enumerate((limits or {}).items()):
        ax.axhline(gb, color="black", ls=["--", ":", "-."][j % 3], lw=1)
        ax.text(-0.45, gb, label, va="bottom", ha="left", fontsize=9)
    ax.set_xticks(pos, names)
    ax.set_ylabel("memory (GB, 10^9 bytes)")
    ax.set_title("Memory for weights, gradients and optimizer states (activations not included)")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.92), fontsize=9)
    ax.grid(axis="x", visible=False)
    return fig


def plot_next_token_probs(words: list[str], probs: dict[str, list[float]]) -> Figure:
    """Grouped bars: a next-token distribution over a few words, one colour per setting (e.g. temperature)."""
    import numpy as np

    n = len(probs)
    width = 0.8 / n
    pos = np.arange(len(words))
    fig, ax = plt.subplots(figsize=(8.0, 4.0))
    for i, (label, p) in enumerate(probs.items()):
        p = np.asarray(p.detach().cpu() if hasattr(p, "detach") else p, dtype=float)
        ax.bar(pos + (i - (n - 1) / 2) * width, p, width, color=COLORS[i % len(COLORS)], label=label)
    ax.set_xticks(pos, words)
    ax.set_xlabel("next token")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title("The same logits, different sampling settings")
    ax.legend()
    ax.grid(axis="x", visible=False)
    return fig


# ---- chapter 7: training


def _history_dict(history) -> dict:
    return history.to_dict() if hasattr(history, "to_dict") else dict(history)


def plot_losses(history, baseline: float | None = None, title: str = "Training and validation loss") -> Figure:
    """Loss against optimizer steps (bottom axis) and tokens seen (top axis).

    `history` is a `gptcourse.train.History` (or its `to_dict()`): the faint line is every
    step's batch loss, the markers the evaluations. `baseline` draws a dashed line, e.g.
    the loss of a uniform guess, ln(vocabulary size).
    """
    h = _history_dict(history)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    if h.get("step_loss"):
        ax.plot(range(1, len(h["step_loss"]) + 1), h["step_loss"], color=COLORS[0], alpha=0.25, lw=1, label="batch loss (each step)")
    ax.plot(h["step"], h["train_loss"], "o-", color=COLORS[0], ms=4, label="training loss")
    if any(not math.isnan(v) for v in h["val_loss"]):
        ax.plot(h["step"], h["val_loss"], "s-", color=COLORS[1], ms=4, label="validation loss")
    if baseline is not None:
        ax.axhline(baseline, color=COLORS[7], ls="--", lw=1)
        ax.annotate(f"uniform guess: {baseline:.2f}", (1, baseline), xycoords=("axes fraction", "data"), xytext=(-4, -3), textcoords="offset points", ha="right", va="top", fontsize=9)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.87))
    steps, tokens = h["step"][-1], h["tokens_seen"][-1]
    if steps > 0 and tokens > 0:
        per_step = tokens / steps
        top = ax.secondary_xaxis("top", functions=(lambda s: s * per_step / 1000, lambda t: t * 1000 / per_step))
        top.set_xlabel("tokens seen (thousands)")
    return fig


def plot_lr_schedule(steps: list[int], lrs: list[float], warmup_steps: int | None = None, title: str = "Learning rate: linear warm-up, then cosine decay") -> Figure:
    """The learning rate of every step, with the end of warm-up marked."""
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    ax.plot(steps, lrs, color=COLORS[2])
    if warmup_steps:
        ax.axvline(warmup_steps, color=COLORS[7], ls=":", lw=1)
        ax.text(warmup_steps, max(lrs), " end of warm-up", va="top", fontsize=9)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set_title(title)
    return fig


# ---- chapter 8: pretrained


def plot_kv_cache_idea(prompt_tokens: int = 3, new_tokens: int = 4) -> Figure:
    """What each generation step computes, without and with a KV cache.

    Rows are steps, columns token positions. Without a cache every step runs the model on
    the whole sequence again; with one, only the newest token is computed, and the keys and
    values of the earlier ones are read from the cache.
    """
    from matplotlib.patches import Patch

    n = prompt_tokens + new_tokens
    colors = {"computed": COLORS[3], "cached": COLORS[5], "none": "#f2f2f2"}
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 0.55 * new_tokens + 2.0), sharey=True, layout="constrained")
    for ax, cached in zip(axes, (False, True), strict=True):
        work = 0
        for step in range(new_tokens):
            length = prompt_tokens + step  # tokens the model reads at this step
            for pos in range(n):
                if pos >= length:
                    kind = "none"
                elif cached and step > 0 and pos < length - 1:
                    kind = "cached"
                else:
                    kind = "computed"
                work += kind == "computed"
                ax.add_patch(plt.Rectangle((pos, -step - 0.45), 0.92, 0.9, color=colors[kind]))
            ax.text(n + 0.1, -step, f"predicts token {length + 1}", va="center", fontsize=8)
        ax.set_xlim(-0.1, n + 2.2)
        ax.set_ylim(-new_tokens + 0.4, 0.6)
        ax.set_xticks([p + 0.46 for p in range(n)], [str(p + 1) for p in range(n)])
        ax.set_yticks([-s for s in range(new_tokens)], [f"step {s + 1}" for s in range(new_tokens)])
        ax.set_xlabel("token position")
        ax.grid(False)
        ax.set_title(f"{'With' if cached else 'Without'} a KV cache: {work} token computations")
    handles = [Patch(color=colors["computed"], label="run through every layer"), Patch(color=colors["cached"], label="keys and values read from the cache")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2)
    return fig


def plot_kv_speedup(lengths: list[int], seconds: dict[str, list[float]], title: str = "Generation time, with and without a KV cache") -> Figure:
    """Left: seconds to generate `lengths` new tokens, per method. Right: the speed-up of the cache."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    for i, (label, ys) in enumerate(seconds.items()):
        ax.plot(lengths, ys, "o-", color=COLORS[i], label=label)
    ax.set_xlabel("new tokens generated")
    ax.set_ylabel("seconds")
    ax.set_title(title)
    ax.legend()
    (slow, slow_s), (fast, fast_s) = list(seconds.items())[:2]
    ratios = [a / b for a, b in zip(slow_s, fast_s, strict=True)]
    ax2.plot(lengths, ratios, "o-", color=COLORS[2])
    ax2.axhline(1.0, color=COLORS[7], lw=1, ls=":")
    ax2.set_xlabel("new tokens generated")
    ax2.set_ylabel(f"speed-up ({slow} ÷ {fast})")
    ax2.set_title("The cache's speed-up grows with the length")
    ax2.set_ylim(bottom=0)
    return fig
