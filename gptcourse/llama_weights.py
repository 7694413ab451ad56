"""Hugging Face Llama checkpoints, read into and written from our `Llama` (appendix B).

Their layers are `nn.Linear` like ours (unlike GPT-2's Conv1D, chapter 8): `LAYOUT`
only renames. Nor is anything permuted for RoPE: `apply_rope` turns each head's two
*halves*, their ``rotate_half``. Settings our model lacks (RoPE scalings other than
Llama 3's, biases, another activation) are errors, never silently different numbers. Plain dicts only:
`gptcourse.llama` imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .files import (
    CheckpointError,
    check_model_type,
    hf_int,
    hf_number,
    read_json,
    write_hf_checkpoint,
)
from .weights import (
    FILES,
    check_complete,
    download_hub_checkpoint,
    hub_checkpoint_cached,
    tie_head,
)

# Hugging Face's names, and ours ("{i}": every block). One table, read both ways.
LAYOUT: dict[str, str] = {
    "model.embed_tokens.weight": "tok_emb.weight",
    "model.layers.{i}.input_layernorm.weight": "trf_blocks.{i}.norm1.scale",
    "model.layers.{i}.self_attn.q_proj.weight": "trf_blocks.{i}.att.W_query.weight",
    "model.layers.{i}.self_attn.k_proj.weight": "trf_blocks.{i}.att.W_key.weight",
    "model.layers.{i}.self_attn.v_proj.weight": "trf_blocks.{i}.att.W_value.weight",
    "model.layers.{i}.self_attn.o_proj.weight": "trf_blocks.{i}.att.out_proj.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "trf_blocks.{i}.norm2.scale",
    "model.layers.{i}.mlp.gate_proj.weight": "trf_blocks.{i}.ff.W_gate.weight",
    "model.layers.{i}.mlp.up_proj.weight": "trf_blocks.{i}.ff.W_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "trf_blocks.{i}.ff.W_down.weight",
    "model.norm.weight": "final_norm.scale",
    "lm_head.weight": "out_head.weight",  # absent when tied: then it *is* embed_tokens
}
# Buffers some older checkpoints hold: RoPE's frequencies, which we compute instead.
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)
# config.json's names for the sizes `LlamaConfig` requires.
_HF_SIZES = {
    "vocab_size": "vocab_size",
    "max_position_embeddings": "context_length",
    "hidden_size": "emb_dim",
    "num_hidden_layers": "n_layers",
    "num_attention_heads": "n_heads",
    "intermediate_size": "hidden_dim",
}


def _layout(n_layers: int, tie_embeddings: bool) -> dict[str, str]:
    """`LAYOUT` with "{i}" spelled out for every block: HF name -> our name."""
    out = {}
    for theirs, ours in LAYOUT.items():
        if theirs == "lm_head.weight" and tie_embeddings:
            continue
        for i in range(n_layers) if "{i}" in theirs else [None]:
            out[theirs.format(i=i)] = ours.format(i=i)
    return out


# Llama 3's RoPE scaling in config.json ("llama3"), and our `RopeScaling`'s names.
_HF_LLAMA3 = {
    "factor": "factor",
    "low_freq_factor": "low_freq_factor",
    "high_freq_factor": "high_freq_factor",
    "original_max_position_embeddings": "original_context_length",
}


def rope_settings(hf_config: Mapping[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """RoPE's base and Llama 3's scaling (or None) from a config.json (appendix B).

    transformers 5 writes ``"rope_parameters": {"rope_type": ..., "rope_theta": ...}``;
    transformers 4 wrote ``"rope_theta"`` and ``"rope_scaling"`` at the top level.
    Scalings other than "llama3" (linear, dynamic, YaRN, ...) are refused.
    """
    params = dict(hf_config.get("rope_parameters") or {})
    scaling = dict(hf_config.get("rope_scaling") or {})
    kind = params.get("rope_type", scaling.get("rope_type", scaling.get("type")))
    kind = kind or "default"
    if kind not in ("default", "llama3"):
        raise CheckpointError(
            f"RoPE scaling of type {kind!r} is not implemented: our RoPE is the plain "
            "one (rope_type 'default') or Llama 3's ('llama3'). Its shape can still "
            "be counted with a LlamaConfig, but its weights would compute different "
            "numbers here."
        )
    if hf_config.get("rope_interleaved", False):
        raise CheckpointError(
            "rope_interleaved=True: our RoPE rotates the two halves of each head "
            "(rotate_half), not neighbouring pairs."
        )
    where = params if "rope_theta" in params else hf_config
    theta = hf_number(where, "rope_theta", 10_000.0)
    if kind == "default":
        return theta, None
    found = {**scaling, **params}  # where the factors are: rope_parameters wins
    missing = [key for key in _HF_LLAMA3 if key not in found]
    if missing:
        raise CheckpointError(
            f"rope_type 'llama3' needs {', '.join(_HF_LLAMA3)}; missing "
            f"{', '.join(missing)}."
        )
    return theta, {ours: found[theirs] for theirs, ours in _HF_LLAMA3.items()}


def config_from_hf(hf_config: Mapping[str, Any]) -> dict[str, Any]:
    """Our `LlamaConfig`'s fields from a Hugging Face ``config.json`` (appendix B).

    A plain dict, so that this module need not import `gptcourse.llama`:
    ``LlamaConfig(**config_from_hf(json.load(f)))``. A value of the wrong type (a
    size in quotes, say) is a `CheckpointError` naming config.json's key.
    """
    check_model_type(hf_config, "llama")  # first: a GPT-2's keys are all "missing"
    missing = [key for key in _HF_SIZES if key not in hf_config]
    if missing:
        raise CheckpointError(
            f"The Llama config is missing {', '.join(missing)}; a Llama config.json "
            f"gives all of {', '.join(_HF_SIZES)}."
        )
    if hf_config.get("hidden_act", "silu") != "silu":
        act = hf_config["hidden_act"]
        raise CheckpointError(f"hidden_act={act!r}; our SwiGLU uses SiLU ('silu').")
    for key in ("attention_bias", "mlp_bias"):
        if hf_config.get(key, False):
            raise CheckpointError(f"{key}=True: our Llama has no biases.")
    fields = {ours: hf_int(hf_config, theirs) for theirs, ours in _HF_SIZES.items()}
    hidden, heads = fields["emb_dim"], fields["n_heads"]
    has_head_dim = hf_config.get("head_dim") is not None
    head_dim = hf_int(hf_config, "head_dim") if has_head_dim else hidden // heads
    if head_dim * heads != hidden:
        raise CheckpointError(
            f"head_dim={head_dim} with {heads} heads is not hidden_size={hidden}: "
            "our heads are hidden_size // n_heads wide."
        )
    rope_base, rope_scaling = rope_settings(hf_config)
    return {
        **fields,
        "n_kv_groups": _kv_heads(hf_config, heads),
        "rope_base": rope_base,
        "rope_scaling": rope_scaling,
        # transformers' defaults: untied, ε = 1e-6
        "tie_embeddings": bool(hf_config.get("tie_word_embeddings", False)),
        "norm_eps": hf_number(hf_config, "rms_norm_eps", 1e-6),
    }


def _kv_heads(hf_config: Mapping[str, Any], heads: int) -> int:
    """num_key_value_heads: absent or None means one per query head (multi-head)."""
    kv = hf_config.get("num_key_value_heads")
    if kv is None:
        return heads
    # 0 is not "absent". A positive non-divisor is LlamaConfig's to refuse (it lists
    # the choices too).
    divisors = [d for d in range(1, heads + 1) if heads % d == 0]
    if isinstance(kv, bool) or not isinstance(kv, int) or kv <= 0:
        raise CheckpointError(
            f"num_key_value_heads={kv!r} is not a positive divisor of "
            f"num_attention_heads={heads}: give one of {divisors} (each key/value "
            "head serves the same number of query heads), or leave it out for one "
            "per query head."
        )
    return kv


def config_to_hf(config: Any) -> dict[str, Any]:
    """The Hugging Face ``config.json``, as a dict, of our `LlamaConfig` (appendix B).

    ``transformers.LlamaConfig(**config_to_hf(config))`` builds their Llama at our size.
    """
    rope = {"rope_type": "default", "rope_theta": config.rope_base}
    scaling = None
    if config.rope_scaling is not None:
        fields = config.rope_scaling
        scaling = {"rope_type": "llama3"}
        scaling.update({hf: getattr(fields, ours) for hf, ours in _HF_LLAMA3.items()})
        rope.update(scaling)
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        **{theirs: getattr(config, ours) for theirs, ours in _HF_SIZES.items()},
        "num_key_value_heads": config.n_kv_groups,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": config.norm_eps,
        # transformers 4's spelling, then 5's
        "rope_theta": config.rope_base,
        "rope_scaling": scaling,
        "rope_parameters": rope,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": config.tie_embeddings,
    }


def hf_to_ours(
    tensors: Mapping[str, torch.Tensor], n_layers: int, tie_embeddings: bool
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A Llama checkpoint's tensors renamed into our `Llama`'s ``state_dict`` (app. B).

    Returns the state dict and, for each of its names, the checkpoint's name. Raises
    `CheckpointError` naming every tensor missing or left over. With tied embeddings
    the head is the token embedding; a stored ``lm_head.weight`` must equal it.
    """
    remaining = {k: v for k, v in tensors.items() if not k.endswith(_IGNORED_SUFFIXES)}
    head = remaining.pop("lm_head.weight", None) if tie_embeddings else None
    state: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    missing = []
    for theirs, ours in _layout(n_layers, tie_embeddings).items():
        if theirs in remaining:
            state[ours], source[ours] = remaining.pop(theirs), theirs
        else:
            missing.append(theirs)
    if tie_embeddings:
        differs = (
            "lm_head.weight differs from embed_tokens.weight, but config.json says "
            "tie_word_embeddings=true."
        )
        tie_head(state, source, head, differs)
    tied = "tied" if tie_embeddings else "untied"
    what = f"a {n_layers}-layer Llama with {tied} embeddings"
    check_complete(missing, remaining, what)
    return state, source


def ours_to_hf(
    state: Mapping[str, torch.Tensor], n_layers: int, tie_embeddings: bool
) -> dict[str, torch.Tensor]:
    """Our `Llama`'s ``state_dict`` under Hugging Face's names (appendix B)."""
    layout = _layout(n_layers, tie_embeddings)
    return {hf: state[ours].detach().cpu().contiguous() for hf, ours in layout.items()}


def read_hf_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of the checkpoint directory `path`, a dict (appendix B)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"No checkpoint directory at {path}: give the directory that holds "
            "config.json and the .safetensors files."
        )
    config_file = path / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(
            f"No config.json in {path}: a Llama checkpoint needs it for its sizes "
            "(heads, key/value heads, RoPE base)."
        )
    return read_json(config_file)


def save_hf_checkpoint(model: torch.nn.Module, directory: str | Path) -> Path:
    """Our `Llama` as a Hugging Face ``config.json`` and ``model.safetensors`` (app. B).

    Both `gptcourse.llama.from_hf_checkpoint` and ``transformers`` read it.
    """
    cfg = model.config
    tensors = ours_to_hf(model.state_dict(), cfg.n_layers, cfg.tie_embeddings)
    return write_hf_checkpoint(directory, config_to_hf(cfg), tensors)


def is_cached(repo: str, cache_dir: str | Path | None = None) -> bool:
    """Is `repo`'s checkpoint in the Hugging Face cache? Never online (appendix B)."""
    return hub_checkpoint_cached(repo, cache_dir)


def download_checkpoint(
    repo: str = "HuggingFaceTB/SmolLM2-135M",
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """The directory of `repo`'s ``config.json`` and ``model.safetensors`` (appendix B).

    From the Hugging Face cache, else the hub. Offline it fails in seconds, as chapter
    8's `gptcourse.weights.download` does, saying what to download and where.
    """
    return download_hub_checkpoint(
        repo, cache_dir, local_files_only, what_to_do=lambda why: _what_to_do(repo, why)
    )


def _what_to_do(repo: str, reason: str) -> str:
    return (
        f"Could not get {repo}: {reason}. With a network, run\n"
        f"    from huggingface_hub import hf_hub_download\n"
        f"    for f in {FILES!r}: hf_hub_download({repo!r}, f)\n"
        f"or download https://huggingface.co/{repo}/resolve/main/config.json and "
        "model.safetensors into one directory and load it with "
        "gptcourse.llama.from_hf_checkpoint('that/directory')."
    )
