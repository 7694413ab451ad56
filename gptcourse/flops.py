"""FLOPs of a GPT, counted matmul by matmul (chapter 9).

An (m×k)·(k×n) product is 2·m·k·n FLOPs. Layer norm, GELU, softmax, biases and the
embedding lookup are left out, as `torch.utils.flop_counter.FlopCounterMode` and the
papers (Kaplan et al., PaLM, nanoGPT's MFU) leave them out: `count_flops` equals what
`FlopCounterMode` counts for ``GPT(config, attention="manual")``, FLOP for FLOP (tested).
On CPU, SDPA's kernel has no `FlopCounterMode` formula (torch 2.13) and counts 0:
`cpu_sdpa_flop_formulas` supplies one. Other families plug in with `register_family`
(appendix B's Llama), so that this core never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from .checks import one_of, positive_int
from .config import ALIASES, PRESETS, GPTConfig
from .model import GPT
from .train import cross_entropy_loss

# The components of the count, in the order a token meets them, with readable names.
LAYER_COMPONENTS: dict[str, str] = {
    "qkv_proj": "QKV projection",
    "attn_scores": "attention scores Q·Kᵀ",
    "attn_values": "attention × values",
    "out_proj": "output projection",
    "ff_up": "feed-forward up",
    "ff_down": "feed-forward down",
}
COMPONENTS: dict[str, str] = {**LAYER_COMPONENTS, "lm_head": "LM head"}

ConfigLike = GPTConfig | Mapping[str, Any] | str  # or the config of a registered family


@dataclass(frozen=True)
class ModelFamily:
    """Another kind of model the counts here take, described by its own module (appendix B).

    Its config class, the model class `meta_model` builds, its presets by name, the key
    that marks a dict as its config, and its two counts: `count_flops`'s
    ``flop_count(config, batch_size, seq_len, training)`` and `num_parameters`'s
    ``parameter_counts(config)`` (a dict over `PARAMETER_COUNTS`).
    """

    config_class: type
    model_class: type
    presets: Mapping[str, Any]
    mapping_key: str
    flop_count: Callable[[Any, int, int, bool], PassTotals]
    parameter_counts: Callable[[Any], dict[str, int]]


FAMILIES: dict[type, ModelFamily] = {}  # config class -> its family; GPT's is built in


def register_family(family: ModelFamily) -> ModelFamily:
    """Let every function here take `family`'s configs, models and preset names (appendix B)."""
    FAMILIES[family.config_class] = family
    return family


def coerce_config(config: ConfigLike) -> Any:
    """A `GPTConfig`, or a registered family's config, from a config, a preset name or a dict.

    A dict holding a family's `ModelFamily.mapping_key` is that family's; any other a GPT's.
    """
    if isinstance(config, (GPTConfig, *FAMILIES)):
        return config
    if isinstance(config, str):
        for family in FAMILIES.values():
            if config in family.presets:
                return family.config_class.from_preset(config)
        others = [name for family in FAMILIES.values() for name in family.presets]
        return GPTConfig.from_preset(one_of("preset", config, [*PRESETS, *ALIASES, *others]))
    if isinstance(config, Mapping):
        for family in FAMILIES.values():
            if family.mapping_key in config:
                return family.config_class.coerce(config)
    return GPTConfig.coerce(config)


def model_config(model: torch.nn.Module | None, config: ConfigLike | None = None) -> Any:
    """`config` as a `GPTConfig` (or a registered family's), or else ``model.config``.

    Defined in chapter 9; the measuring functions of chapter 10 take their config this way.
    """
    if config is None:
        config = getattr(model, "config", None)
        if not isinstance(config, (GPTConfig, *FAMILIES)):
            raise ValueError(
                f"config: {type(model).__name__} has no GPTConfig as .config; pass the model's config "
                "(a GPTConfig, a dict or a preset name) as config=..."
            )
    return coerce_config(config)


def batch_shape(config: ConfigLike, batch_size: int, seq_len: int | None = None) -> tuple[int, int]:
    """``(batch_size, seq_len)`` checked against the model: both positive, seq_len ≤ its context.

    ``seq_len`` defaults to the context length. Defined in chapter 9.
    """
    cfg = coerce_config(config)
    batch_size = positive_int("batch_size", batch_size)
    seq_len = cfg.context_length if seq_len is None else positive_int("seq_len", seq_len)
    if seq_len > cfg.context_length:
        raise ValueError(
            f"seq_len must be at most the context length, {cfg.context_length}, got {seq_len}: the model cannot "
            "read longer sequences. Pass a shorter seq_len, or a config with a longer context_length."
        )
    return batch_size, seq_len


def matmul_flops(m: int, k: int, n: int) -> int:
    """FLOPs of one (m×k)·(k×n) matrix product: m·n outputs, each k multiplies and k adds (chapter 9)."""
    return 2 * m * k * n


class PassTotals:
    """What every pass's count shares: totals, shares and rows from the per-layer components.

    A subclass is a dataclass with ``config``, ``batch_size``, ``seq_len``, ``training``,
    one field per name of `layer_components`, ``lm_head``, and `matmul_shapes`.
    """

    layer_components: ClassVar[dict[str, str]] = LAYER_COMPONENTS

    @property
    def n_layers(self) -> int:
        return self.config.n_layers

    @property
    def tokens(self) -> int:
        """Tokens processed in this pass: batch_size × seq_len."""
        return self.batch_size * self.seq_len

    @property
    def per_layer(self) -> int:
        """FLOPs of one transformer block."""
        return sum(getattr(self, name) for name in self.layer_components)

    @property
    def total(self) -> int:
        """FLOPs of the whole pass: every block, plus the LM head."""
        return self.n_layers * self.per_layer + self.lm_head

    @property
    def forward_total(self) -> int:
        """The forward pass alone (a third of `total` when training)."""
        return self.total // 3 if self.training else self.total

    @property
    def backward_total(self) -> int:
        """The backward pass alone (twice the forward; 0 when not training)."""
        return self.total - self.forward_total

    @property
    def per_token(self) -> float:
        return self.total / self.tokens

    @property
    def attention_matrix(self) -> int:
        """FLOPs that grow with seq_len²: Q·Kᵀ and weights·V, over all layers."""
        return self.n_layers * (self.attn_scores + self.attn_values)

    @property
    def attention_share(self) -> float:
        """The fraction of all FLOPs spent on the (T×T) attention matrix."""
        return self.attention_matrix / self.total

    def components(self) -> dict[str, int]:
        """Each component's FLOPs summed over all layers (keys: `layer_components`, then ``lm_head``)."""
        totals = {name: self.n_layers * getattr(self, name) for name in self.layer_components}
        totals["lm_head"] = self.lm_head
        return totals

    def rows(self) -> list[dict[str, Any]]:
        """One row per component: its matmul, FLOPs per layer, over all layers, and share."""
        shapes, totals = self.matmul_shapes(), self.components()
        names = {**self.layer_components, "lm_head": "LM head"}
        return [
            {
                "component": names[name],
                "matmul": shapes[name],
                "per_layer": getattr(self, name) if name in self.layer_components else None,
                "total": totals[name],
                "share": totals[name] / self.total,
            }
            for name in names
        ]


@dataclass(frozen=True)
class FlopCount(PassTotals):
    """FLOPs of one pass of a GPT, component by component. Defined in chapter 9.

    The six layer components (``qkv_proj`` ... ``ff_down``) are **per layer**; ``lm_head``
    happens once. With ``training=True`` every figure is forward + backward (3× forward).
    ``total`` is what `FlopCounterMode` reports for the same pass.
    """

    config: GPTConfig
    batch_size: int
    seq_len: int
    training: bool
    qkv_proj: int  # x (B·T×d) @ W_query, W_key, W_value (each d×d)
    attn_scores: int  # Q (T×hd) @ Kᵀ (hd×T), for each of B·n_heads heads
    attn_values: int  # weights (T×T) @ V (T×hd), for each of B·n_heads heads
    out_proj: int  # context (B·T×d) @ W_out (d×d)
    ff_up: int  # (B·T×d) @ (d×4d)
    ff_down: int  # (B·T×4d) @ (4d×d)
    lm_head: int  # (B·T×d) @ (d×vocab): the tied output head

    def matmul_shapes(self) -> dict[str, str]:
        """Each component's matmul, written out with this pass's sizes."""
        c, b, t = self.config, self.batch_size, self.seq_len
        d, hd, h, v = c.emb_dim, c.head_dim, c.n_heads, c.vocab_size
        return {
            "qkv_proj": f"3 × ({b * t}×{d})·({d}×{d})",
            "attn_scores": f"{b * h} × ({t}×{hd})·({hd}×{t})",
            "attn_values": f"{b * h} × ({t}×{t})·({t}×{hd})",
            "out_proj": f"({b * t}×{d})·({d}×{d})",
            "ff_up": f"({b * t}×{d})·({d}×{4 * d})",
            "ff_down": f"({b * t}×{4 * d})·({4 * d}×{d})",
            "lm_head": f"({b * t}×{d})·({d}×{v})",
        }


def count_flops(config: ConfigLike, batch_size: int = 1, seq_len: int | None = None, training: bool = True) -> PassTotals:
    """The exact matmul FLOPs of a GPT pass over `batch_size` sequences of `seq_len` tokens.

    Defined in chapter 9 (its table lists every matmul). Forward: per layer
    24·BT·d² + 4·B·T²·d, then 2·BT·d·V for the LM head. ``training=True`` adds the
    backward, 2× forward: each y = x·W needs dL/dx = dL/dy·Wᵀ and dL/dW = xᵀ·dL/dy.
    ``seq_len`` defaults to the context length. The T×T attention matrix is counted in
    full, as `FlopCounterMode`, PaLM and nanoGPT do, though the causal mask zeroes half
    of it (`causal_flops`). A registered family's config gets its own count (appendix B).
    """
    cfg = coerce_config(config)
    batch_size, seq_len = batch_shape(cfg, batch_size, seq_len)
    if type(cfg) in FAMILIES:
        return FAMILIES[type(cfg)].flop_count(cfg, batch_size, seq_len, training)
    passes = 3 if training else 1  # backward = 2 × forward, matmul by matmul
    bt, d, heads, hd = batch_size * seq_len, cfg.emb_dim, batch_size * cfg.n_heads, cfg.head_dim
    return FlopCount(
        config=cfg,
        batch_size=batch_size,
        seq_len=seq_len,
        training=training,
        qkv_proj=passes * 3 * matmul_flops(bt, d, d),
        attn_scores=passes * heads * matmul_flops(seq_len, hd, seq_len),
        attn_values=passes * heads * matmul_flops(seq_len, seq_len, hd),
        out_proj=passes * matmul_flops(bt, d, d),
        ff_up=passes * matmul_flops(bt, d, 4 * d),
        ff_down=passes * matmul_flops(bt, 4 * d, d),
        lm_head=passes * matmul_flops(bt, d, cfg.vocab_size),
    )


def calculate_flops(model: torch.nn.Module | None, config: ConfigLike | None = None) -> int:
    """FLOPs of one forward + backward pass of one full-length sequence (the SPEC's call).

    Defined in chapter 9. ``config`` defaults to ``model.config``. The count depends only
    on the shapes, so the model itself is not run.
    """
    return count_flops(model_config(model, config), batch_size=1, training=True).total


# ------------------------------------------------------------------ the rules of thumb

PARAMETER_COUNTS = ("all", "no_position", "non_embedding", "matmul")


def num_parameters(config: ConfigLike, which: str = "no_position") -> int:
    """The parameter count N, in the four senses the literature uses (tied head counted once).

    Defined in chapter 9. ``"all"``: every parameter. ``"no_position"``: nanoGPT's
    ``get_num_params()``, the N for 6N in a weight-tied GPT: the token embedding *is* the
    LM head's matrix (2·d·V FLOPs a token), a position embedding is only looked up.
    ``"non_embedding"``: Kaplan et al. (2020)'s N, which leaves out the LM head's matmul.
    ``"matmul"``: the matrices that multiply activations, 12·L·d² + d·V; with it,
    ``6N + 12·L·d·T`` is exact. A registered family's config gets its own counts.
    """
    cfg = coerce_config(config)
    one_of("which", which, PARAMETER_COUNTS)
    if type(cfg) in FAMILIES:
        return FAMILIES[type(cfg)].parameter_counts(cfg)[which]
    d, layers, v = cfg.emb_dim, cfg.n_layers, cfg.vocab_size
    matmul = layers * 12 * d * d + d * v
    # per block: biases of QKV (3d, when qkv_bias), out_proj (d), ff up (4d), ff down (d);
    # two layer norms (2·2d); then the final layer norm (2d)
    small = layers * ((3 * d if cfg.qkv_bias else 0) + d + 4 * d + d + 4 * d) + 2 * d
    counts = {
        "matmul": matmul,
        "non_embedding": matmul - d * v + small,
        "no_position": matmul + small,
        "all": matmul + small + cfg.context_length * d,
    }
    return counts[which]


def flops_per_token_6n(config: ConfigLike, which: str = "no_position") -> int:
    """Training FLOPs per token by the 6N rule (Kaplan et al. 2020, section 2.1); chapter 9.

    Each parameter is in one multiply-add (2 FLOPs) per token forward, and twice that
    backward: 2N + 4N. It ignores attention's T×T work, so it undercounts more as the
    context grows; see `num_parameters` for which N to use (nanoGPT's, the default).
    """
    return 6 * num_parameters(config, which)


def flops_per_token_palm(config: ConfigLike, seq_len: int | None = None, which: str = "matmul") -> int:
    """Training FLOPs per token as ``6N + 12·L·H·Q·T`` (PaLM, Chowdhery et al. 2022, appendix B).

    Defined in chapter 9. L layers, H heads of Q dimensions (H·Q = d), T tokens of context:
    the second term is the attention matrix, 4·T·d per layer forward (scores and
    weights·V), ×3 for training. nanoGPT's ``estimate_mfu`` uses it with its N
    (``which="no_position"``). With ``which="matmul"`` (the default) it equals
    ``count_flops(...).per_token`` exactly.
    """
    cfg = coerce_config(config)
    _, t = batch_shape(cfg, 1, seq_len)
    return 6 * num_parameters(cfg, which) + 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * t


def causal_flops(config: ConfigLike, batch_size: int = 1, seq_len: int | None = None, training: bool = True) -> int:
    """The FLOPs a causal GPT *needs*: `count_flops` with the masked half of attention removed.

    Defined in chapter 9. Under a causal mask, token t attends to t + 1 positions, so of the
    T×T scores only T·(T+1)/2 matter (and the same entries of weights·V). Kernels that skip
    the masked blocks (FlashAttention) do about this much work; the explicit path computes
    all T².
    """
    count = count_flops(config, batch_size, seq_len, training)
    t = count.seq_len
    full_attention = count.attention_matrix
    useful_attention = full_attention * (t + 1) // (2 * t)  # exact: full ∝ T², useful ∝ T(T+1)/2
    return count.total - full_attention + useful_attention


def attention_crossover(config: ConfigLike) -> float:
    """The context length T* = 6d + V/(2L) at which the attention matrix is half of all FLOPs.

    Defined in chapter 9: per token and layer attention costs 4·T·d forward, the rest
    24·d² (plus 2·d·V for the head, once); they are equal where 4·L·T·d = 24·L·d² + 2·d·V.
    """
    cfg = GPTConfig.coerce(config)
    return 6 * cfg.emb_dim + cfg.vocab_size / (2 * cfg.n_layers)


# ------------------------------------------------------------ checking against PyTorch


def _cpu_sdpa_forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # The model's backward: 2× forward, as for every matmul. (PyTorch's formula for the GPU
    # flash kernels counts 5 matmuls, 2.5×, because those kernels recompute the scores.)
    return 2 * _cpu_sdpa_forward(query_shape, key_shape, value_shape)


def cpu_sdpa_flop_formulas() -> dict[Any, Any]:
    """Flop formulas for the CPU attention kernel, for ``FlopCounterMode(custom_mapping=...)``.

    Defined in chapter 9. Forward: the two matmuls of attention, T×T in full (as PyTorch
    counts its GPU kernels). Backward: twice that.
    """
    aten = torch.ops.aten
    formulas: dict[Any, Any] = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        formulas[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_forward
        formulas[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_sdpa_backward
    return formulas


def _counted_pass(
    model: torch.nn.Module, batch_size: int, seq_len: int | None, training: bool, count_cpu_sdpa: bool
) -> FlopCounterMode:
    """One pass of `model` (forward, and loss + backward when training) under FlopCounterMode."""
    cfg = model_config(model)
    batch_size, seq_len = batch_shape(cfg, batch_size, seq_len)
    idx = torch.zeros(batch_size, seq_len, dtype=torch.long, device=next(model.parameters()).device)
    mapping = cpu_sdpa_flop_formulas() if count_cpu_sdpa else None
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        if training:
            cross_entropy_loss(model(idx), idx).backward()
        else:
            with torch.no_grad():
                model(idx)
    if training:
        model.zero_grad(set_to_none=True)
    return counter


def flop_counter_flops(
    model: torch.nn.Module,
    batch_size: int = 1,
    seq_len: int | None = None,
    training: bool = True,
    count_cpu_sdpa: bool = False,
) -> int:
    """The FLOPs `FlopCounterMode` counts in one pass of `model`. Defined in chapter 9.

    Works on any device, including ``meta`` (shapes only: GPT-2 XL is counted in a
    moment, with no memory). ``training=True`` adds the loss
    (`gptcourse.train.cross_entropy_loss`) and the backward pass. ``count_cpu_sdpa=True``
    registers formulas for the CPU attention kernel, which `FlopCounterMode` does not
    count otherwise.
    """
    return _counted_pass(model, batch_size, seq_len, training, count_cpu_sdpa).get_total_flops()


def flop_counter_flops_by_operator(
    model: torch.nn.Module,
    batch_size: int = 1,
    seq_len: int | None = None,
    training: bool = True,
    count_cpu_sdpa: bool = False,
) -> dict[str, int]:
    """The same pass as `flop_counter_flops`, its FLOPs per aten operator (chapter 9).

    For example ``{"aten.addmm": ..., "aten.bmm": ..., "aten.mm": ...}``: linear layers
    with a bias run as ``addmm``, the attention matmuls as ``bmm``, the rest as ``mm``.
    """
    counter = _counted_pass(model, batch_size, seq_len, training, count_cpu_sdpa)
    return {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}


def meta_model(config: ConfigLike, attention: str = "manual") -> torch.nn.Module:
    """A `GPT` (or a registered family's model) on the meta device: shapes, no memory.

    Defined in chapter 9, for counting.
    """
    cfg = coerce_config(config)
    family = FAMILIES.get(type(cfg))
    with torch.device("meta"):
        return (family.model_class if family else GPT)(cfg, attention=attention)
