"""The chapters' interactive figures: a figure with controls that redraw it (chapters 3 and 9).

`AttentionExplorer` (chapter 3) and `FlopCalculator` (chapter 9) are `LiveFigure`s. As a cell's
last line, one shows its ipywidgets controls, then its figure as an image (all a page without a
kernel shows, e.g. the book online) and an optional Markdown table; with a kernel running,
moving a control redraws them in place.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from .alt_text import describe
from .attention import causal_mask
from .checks import finite_number, one_of
from .config import PRESETS, GPTConfig
from .flops import count_flops, flops_per_token_6n
from .memory import estimate_memory
from .peaks import autocast_precision, device_peaks, peak_flops, precision_dtype
from .plots import COLORS, PAGE_WIDTH, plot_attention
from .tokenizer import get_tokenizer

# Labels at their natural width: ipywidgets' default box for a description is 80 px, which
# cuts "temperature" to "temperat…".
LABEL = {"description_width": "initial"}


def _responsive_grid(children):
    """Controls side by side where the page is wide enough (two in the book's desktop column), one
    under another on a phone, instead of a row that runs off the screen."""
    import ipywidgets as widgets

    for child in children:
        child.layout.width = "auto"  # fill the grid's cell instead of a fixed 300 px
    layout = widgets.Layout(grid_template_columns="repeat(auto-fill, minmax(18rem, 1fr))", grid_gap="0 1.5rem")
    return widgets.GridBox(children, layout=layout)


def _checkbox(value: bool, description: str):
    """A checkbox whose label is as long as its text (the default box cuts it at 300 px)."""
    import ipywidgets as widgets

    return widgets.Checkbox(value=value, description=description, indent=False, layout=widgets.Layout(width="auto"))


class LiveFigure:
    """A figure, and an optional Markdown table, redrawn in place when a control changes.

    Defined in chapter 3. A subclass builds its ipywidgets ``controls`` (one widget, e.g. a
    ``VBox``), passes them with the widgets to ``watch`` to ``__init__``, and defines
    `figure` (and `markdown`, for a table under the figure).
    """

    def __init__(self, controls, watch: Sequence) -> None:
        self.controls = controls
        self._handles: list = []  # IPython display handles: the figure's, then the table's
        for widget in watch:
            widget.observe(self._redraw, names="value")

    def figure(self) -> Figure:
        """The figure of the current state of the controls."""
        raise NotImplementedError

    def markdown(self) -> str:
        """A Markdown table shown under the figure ("" for none)."""
        return ""

    def _redraw(self, _change=None) -> None:
        if not self._handles:  # not shown yet: nothing to redraw
            return
        from IPython.display import Markdown

        fig = self.figure()
        self._handles[0].update(fig)
        if len(self._handles) > 1:
            self._handles[1].update(Markdown(self.markdown()))
        plt.close(fig)

    def _ipython_display_(self) -> None:
        from IPython.display import Markdown, display

        display(self.controls)
        fig = self.figure()
        self._handles = [display(fig, display_id=True)]  # a plain figure: what a page without a kernel shows
        plt.close(fig)
        table = self.markdown()
        if table:
            self._handles.append(display(Markdown(table), display_id=True))


# ---- chapter 3: attention


def _attention_weights(x: torch.Tensor, causal: bool, scale: bool, temperature: float) -> torch.Tensor:
    """softmax(x xᵀ [/ √d] / temperature) with an optional causal mask: the explorer's attention."""
    scores = x @ x.T  # (T, T): queries and keys are the embeddings themselves
    if scale:
        scores = scores / math.sqrt(x.shape[-1])
    scores = scores / temperature
    if causal:
        scores = scores.masked_fill(causal_mask(scores.shape[0], scores.device), float("-inf"))
    return torch.softmax(scores, dim=-1)


class AttentionExplorer(LiveFigure):
    """Attention weights of a sentence, with controls for the mask, the scale and the temperature.

    Defined in chapter 3. The queries and keys are the tokens' embeddings themselves
    (chapter 3's simplified self-attention), so what changes the picture is only the mask,
    the 1/√d scale and the softmax's temperature.
    """

    def __init__(
        self,
        sentences: list[str],
        embedding: torch.nn.Embedding,
        tokenizer=None,
        causal: bool = True,
        scale: bool = True,
        temperature: float = 1.0,
    ):
        import ipywidgets as widgets

        if not sentences:
            raise ValueError("sentences: give at least one sentence to explore.")
        finite_number("temperature", temperature, strictly_above=0)
        self.tokenizer = tokenizer or get_tokenizer()
        self.embedding = embedding
        self.sentence = widgets.Dropdown(
            options=list(sentences), value=sentences[0], description="sentence", style=LABEL, layout=widgets.Layout(width="auto")
        )
        self.causal = _checkbox(causal, "causal mask")
        self.scale = _checkbox(scale, "scale scores by 1/√d")
        self.temperature = widgets.FloatLogSlider(
            value=temperature, base=2, min=-3, max=4, step=0.25, description="temperature", readout_format=".3g", style=LABEL
        )
        controls = widgets.VBox([self.sentence, _responsive_grid([self.causal, self.scale, self.temperature])])
        super().__init__(controls, [self.sentence, self.causal, self.scale, self.temperature])

    def weights(self) -> tuple[list[str], torch.Tensor]:
        """The tokens of the chosen sentence and their (T, T) attention weights."""
        ids = self.tokenizer.encode(self.sentence.value)
        with torch.no_grad():
            x = self.embedding(torch.tensor(ids, device=self.embedding.weight.device)).float().cpu()  # (T, d)
        tokens = [self.tokenizer.decode([i]) for i in ids]
        return tokens, _attention_weights(x, self.causal.value, self.scale.value, self.temperature.value)

    def figure(self) -> Figure:
        tokens, weights = self.weights()
        scale = f"/ √{self.embedding.embedding_dim}" if self.scale.value else "unscaled"
        mask = "causal" if self.causal.value else "no mask"
        title = f"softmax(x·xᵀ {scale} / {self.temperature.value:.3g}), {mask}"
        fig = plot_attention(weights, tokens, title)
        last, peak = tokens[-1].strip(), weights[-1].max().item()
        favourite = tokens[weights[-1].argmax().item()].strip()
        mean_peak = weights.max(dim=-1).values.mean().item()
        return describe(fig, f"Heatmap of the attention weights among the {len(tokens)} tokens "
                        f"of “{self.sentence.value}”, {title}: the last token, “{last}”, gives "
                        f"its largest weight, {peak:.2f}, to “{favourite}”; a token's largest "
                        f"weight is {mean_peak:.2f} on average.")



# ---- chapter 9: FLOPs


def _short(device_name: str) -> str:
    return device_name.replace("NVIDIA ", "").replace("Tesla ", "")


class FlopCalculator(LiveFigure):
    """FLOPs, time and memory of a training step, with controls for size, context and batch.

    Defined in chapter 9. Time per step = FLOPs ÷ (the device's peak × an assumed MFU), mixed
    precision in each GPU's 16-bit format (`gptcourse.peaks`: fp16 on a T4, which has no bf16;
    bf16 on an A100). Memory is `gptcourse.memory.estimate_memory`.
    """

    DEVICES = (("Tesla T4", 16), ("NVIDIA A100-SXM4-80GB", 80))  # name, GB of memory

    def __init__(
        self,
        preset: str = "gpt2-small",
        context_length: int = 1024,
        batch_size: int = 8,
        mixed_precision: bool = True,
        mfu: float = 0.4,
    ):
        import ipywidgets as widgets

        one_of("preset", preset, PRESETS)
        contexts = [2**k for k in range(6, 15)]
        one_of("context_length", context_length, contexts)
        finite_number("mfu", mfu, strictly_above=0)
        self.preset = widgets.Dropdown(options=list(PRESETS), value=preset, description="size", style=LABEL)
        self.context = widgets.SelectionSlider(options=contexts, value=context_length, description="context T", style=LABEL)
        self.batch = widgets.IntSlider(value=batch_size, min=1, max=64, description="batch B", style=LABEL)
        mixed = ", ".join(f"{autocast_precision(name)} on the {_short(name).split('-')[0]}" for name, _ in self.DEVICES)
        self.mixed = _checkbox(mixed_precision, f"mixed precision ({mixed})")
        self.mfu = widgets.FloatSlider(
            value=mfu, min=0.05, max=0.8, step=0.05, description="assumed MFU", readout_format=".0%", style=LABEL
        )
        controls = widgets.VBox([_responsive_grid([self.preset, self.context, self.batch, self.mfu]), self.mixed])
        super().__init__(controls, [self.preset, self.context, self.batch, self.mixed, self.mfu])

    def config(self) -> GPTConfig:
        """The chosen size, at the chosen context length."""
        return dataclasses.replace(GPTConfig.from_preset(self.preset.value), context_length=self.context.value)

    def numbers(self) -> dict:
        """The state: FLOP count, 6N estimate, and per device its precision, peak, time and memory."""
        cfg, b = self.config(), self.batch.value
        count = count_flops(cfg, b, cfg.context_length)
        devices = {}
        for name, gb in self.DEVICES:
            precision = autocast_precision(name) if self.mixed.value else "fp32"
            peak = peak_flops(name, precision)
            step = count.total / (peak * self.mfu.value)
            memory = estimate_memory(cfg, b, dtype=precision_dtype(precision))
            devices[name] = {"precision": precision, "peak": peak, "step_s": step, "tokens_per_s": count.tokens / step}
            devices[name].update(memory=memory, memory_gb=gb, label=device_peaks(name).name)
        return {"config": cfg, "count": count, "devices": devices, "six_n": flops_per_token_6n(cfg) * count.tokens}

    def figure(self) -> Figure:
        state = self.numbers()
        count, devices = state["count"], list(state["devices"].values())
        # One panel above the other, each as wide as the column: legible on a phone.
        fig, (top, bottom) = plt.subplots(
            2, 1, figsize=(PAGE_WIDTH, 6.8), height_ratios=[2.2, 1], layout="constrained"
        )
        rows = count.rows()
        top.barh([r["component"] for r in rows][::-1], [r["total"] / 1e12 for r in rows][::-1], color=COLORS[0])
        top.set_xlabel("TFLOPs per training step")
        top.set_title(f"{count.total / 1e12:,.1f} TFLOPs per step ({count.per_token / 1e9:.2f} GFLOP/token)", fontsize=11)
        parts = ["weights", "gradients", "optimizer", "activations", "logits"]
        names = [f"{_short(d['label'])}, {d['precision']}" for d in devices]
        widest = 0.0
        for y, d in enumerate(devices):
            end, sizes = 0.0, d["memory"].to_dict()  # the parts, one after another
            for i, part in enumerate(parts):
                bottom.barh(y, sizes[part] / 1e9, 0.6, left=end, color=COLORS[i], label=part if y == 0 else None)
                end += sizes[part] / 1e9
            bottom.vlines(d["memory_gb"], y - 0.45, y + 0.45, color="black", ls="--", lw=1)
            bottom.text(d["memory_gb"], y, f" {d['memory_gb']} GB", va="center", fontsize=10)
            widest = max(widest, end, d["memory_gb"])
        bottom.set_xlim(0, 1.2 * widest)  # room for the GPU's label right of its line
        bottom.set_yticks(range(len(devices)), names)
        bottom.invert_yaxis()
        bottom.set_xlabel("GB")
        bottom.set_title("Estimated memory of a step; dashed: the GPU's", fontsize=11)
        fig.legend(loc="outside lower center", ncol=3, fontsize=10)
        cfg = state["config"]
        memory = "; ".join(
            f"on the {_short(d['label'])} in {d['precision']}, {d['memory'].total / 1e9:,.1f} GB "
            f"of its {d['memory_gb']} GB" for d in devices
        )
        top_row = max(rows, key=lambda r: r["total"])
        describe(fig, f"Two bar charts for {self.preset.value} at context {cfg.context_length} "
                 f"and batch {self.batch.value}. Top: the {count.total / 1e12:,.1f} TFLOPs of a "
                 f"training step by component, the largest the {top_row['component']} "
                 f"({top_row['total'] / 1e12:,.2f} TFLOPs). Bottom: the estimated memory of a "
                 f"step, {memory}.")
        return fig

    def markdown(self) -> str:
        """The state as two Markdown tables, each with a header row: the step's FLOPs, then each GPU."""
        state = self.numbers()
        count = state["count"]
        lines = [
            "| FLOPs per step (forward + backward) | 6N estimate | attention matrix share |",
            "| --- | --- | --- |",
            f"| {count.total:.3e} ({count.forward_total:.3e} + {count.backward_total:.3e}) "
            f"| {state['six_n']:.3e} ({state['six_n'] / count.total - 1:+.1%}) | {count.attention_share:.1%} |",
            "",
            f"| GPU, precision (peak) | time per step at {self.mfu.value:.0%} MFU | tokens/s | memory of a step |",
            "| --- | --- | --- | --- |",
        ]
        for d in state["devices"].values():
            total = d["memory"].total
            fits = "fits" if total <= d["memory_gb"] * 1e9 else "does **not** fit"
            lines.append(
                f"| {d['label']}, {d['precision']} ({d['peak'] / 1e12:g} TFLOP/s) | {d['step_s'] * 1e3:,.0f} ms "
                f"| {d['tokens_per_s']:,.0f} | ≈ {total / 1e9:,.1f} GB: {fits} in {d['memory_gb']} GB |"
            )
        return "\n".join(lines)
