"""GPT-2's weights, from a Hugging Face checkpoint into our `GPT` (chapter 8).

OpenAI released GPT-2 as TensorFlow checkpoints; the Hugging Face hub keeps the same
numbers as ``model.safetensors``: plain tensors and their names, nothing executable. We
read them with `safetensors` (never with `pickle`), rename them to our modules' names,
and reshape the two things that differ:

* GPT-2's linear layers are ``Conv1D`` modules that store the weight as (in, out) and
  compute ``x @ W + b``; `nn.Linear` stores (out, in) and computes ``x @ W.T + b``. So
  every weight matrix is transposed.
* GPT-2 computes queries, keys and values with one fused matrix ``c_attn`` of width
  3·d; we have three (``W_query``, ``W_key``, ``W_value``), so it is split in three.

The output head is tied to the token embedding in both models, so ``lm_head.weight``
(when a checkpoint stores it at all) must equal ``wte.weight``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from .config import GPTConfig

# Our preset names and the hub repositories that hold OpenAI's weights.
HF_REPOS = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
PRESET_OF = {"gpt2": "gpt2-small", "gpt2-medium": "gpt2-medium", "gpt2-large": "gpt2-large", "gpt2-xl": "gpt2-xl"}
FILES = ("config.json", "model.safetensors")

# Buffers older checkpoints store next to the weights (the causal mask): not parameters.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


class CheckpointError(ValueError):
    """A checkpoint's tensors do not fit the model: missing, unexpected or of the wrong shape."""


class WeightsUnavailableError(OSError):
    """GPT-2's weights are neither in the local cache nor downloadable now."""


def config_from_hf(hf_config: Mapping[str, Any]) -> GPTConfig:
    """Our `GPTConfig` from a Hugging Face GPT-2 ``config.json`` (as a dict).

    Dropout is set to 0: a loaded model is for inference or fine-tuning, where it is off.
    Settings our model does not implement are errors, not silently different numbers.
    """
    if hf_config.get("model_type", "gpt2") != "gpt2":
        raise CheckpointError(f"This is a {hf_config['model_type']!r} checkpoint, not GPT-2.")
    if hf_config.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise CheckpointError(f"activation_function={hf_config['activation_function']!r}; our GELU is the tanh approximation ('gelu_new').")
    n_embd = hf_config["n_embd"]
    if hf_config.get("n_inner") not in (None, 4 * n_embd):
        raise CheckpointError(f"n_inner={hf_config['n_inner']}; our feed-forward is 4 × n_embd = {4 * n_embd} wide.")
    unsupported = {"scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False, "scale_attn_weights": True}
    for key, ours in unsupported.items():
        if hf_config.get(key, ours) != ours:
            raise CheckpointError(f"{key}={hf_config[key]!r} is not supported (our attention has {key}={ours}).")
    if not hf_config.get("tie_word_embeddings", True):
        raise CheckpointError("tie_word_embeddings=False: our GPT ties the output head to the token embedding.")
    if hf_config.get("layer_norm_epsilon", 1e-5) != 1e-5:
        raise CheckpointError(f"layer_norm_epsilon={hf_config['layer_norm_epsilon']}; our LayerNorm uses 1e-5.")
    return GPTConfig(
        vocab_size=hf_config["vocab_size"],
        context_length=hf_config["n_positions"],
        emb_dim=n_embd,
        n_heads=hf_config["n_head"],
        n_layers=hf_config["n_layer"],
        drop_rate=0.0,
        qkv_bias=True,
    )


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory or file (sharded checkpoints too)."""
    if path.is_file():
        return load_file(path)
    index = path / "model.safetensors.index.json"
    if index.exists():  # a sharded checkpoint: the index maps each tensor to its shard
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        tensors: dict[str, torch.Tensor] = {}
        for shard in shards:
            tensors.update(load_file(path / shard))
        return tensors
    if not (path / "model.safetensors").exists():
        found = sorted(p.name for p in path.iterdir())
        hint = " (a pytorch_model.bin is a pickle: convert it to safetensors first)" if "pytorch_model.bin" in found else ""
        raise FileNotFoundError(f"No model.safetensors in {path}; it holds {found}{hint}.")
    return load_file(path / "model.safetensors")


def hf_to_ours(tensors: Mapping[str, torch.Tensor], n_layers: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Rename (and transpose, and split) GPT-2's tensors into our `GPT`'s state-dict names.

    Returns the renamed tensors and, for each, the checkpoint's name it came from. Raises
    `CheckpointError` naming every tensor that is missing or left over.
    """
    # GPT2LMHeadModel saves its body as "transformer.h.0...."; the hub's GPT-2 files have no prefix.
    prefix = "transformer." if any(k.startswith("transformer.") for k in tensors) else ""
    remaining = {k.removeprefix(prefix): v for k, v in tensors.items() if not k.endswith(_IGNORED_SUFFIXES)}
    original = {k.removeprefix(prefix): k for k in tensors}  # to name tensors as the checkpoint does
    missing: list[str] = []
    out: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}  # our name -> the checkpoint's

    def take(name: str) -> torch.Tensor | None:
        if name not in remaining:
            missing.append(prefix + name)
            return None
        return remaining.pop(name)

    def put(ours: str, theirs: str, tensor: torch.Tensor | None) -> None:
        if tensor is not None:
            out[ours], source[ours] = tensor, original[theirs]

    def linear(ours: str, theirs: str) -> None:  # a Conv1D (in, out) into an nn.Linear (out, in)
        weight, bias = take(f"{theirs}.weight"), take(f"{theirs}.bias")
        put(f"{ours}.weight", f"{theirs}.weight", None if weight is None else weight.t())
        put(f"{ours}.bias", f"{theirs}.bias", bias)

    def norm(ours: str, theirs: str) -> None:
        put(f"{ours}.scale", f"{theirs}.weight", take(f"{theirs}.weight"))
        put(f"{ours}.shift", f"{theirs}.bias", take(f"{theirs}.bias"))

    wte = take("wte.weight")
    wpe = take("wpe.weight")
    put("tok_emb.weight", "wte.weight", wte)
    put("out_head.weight", "wte.weight", wte)  # tied: the same tensor
    put("pos_emb.weight", "wpe.weight", wpe)
    for i in range(n_layers):
        h, ours = f"h.{i}", f"trf_blocks.{i}"
        norm(f"{ours}.norm1", f"{h}.ln_1")
        qkv_weight, qkv_bias = take(f"{h}.attn.c_attn.weight"), take(f"{h}.attn.c_attn.bias")
        for j, name in enumerate(("W_query", "W_key", "W_value")):
            if qkv_weight is not None:  # (d, 3d): queries, keys and values side by side
                put(f"{ours}.att.{name}.weight", f"{h}.attn.c_attn.weight", qkv_weight.tensor_split(3, dim=1)[j].t())
            if qkv_bias is not None:
                put(f"{ours}.att.{name}.bias", f"{h}.attn.c_attn.bias", qkv_bias.tensor_split(3)[j])
        linear(f"{ours}.att.out_proj", f"{h}.attn.c_proj")
        norm(f"{ours}.norm2", f"{h}.ln_2")
        linear(f"{ours}.ff.layers.0", f"{h}.mlp.c_fc")
        linear(f"{ours}.ff.layers.2", f"{h}.mlp.c_proj")
    norm("final_norm", "ln_f")

    # lm_head (outside the "transformer." prefix), when stored at all, must be the tied embedding.
    head = remaining.pop("lm_head.weight", None)
    if head is not None and wte is not None and (head.shape != wte.shape or not torch.equal(head, wte)):
        raise CheckpointError("lm_head.weight differs from wte.weight: our GPT ties the output head to the token embedding.")

    problems = []
    if missing:
        problems.append(f"missing tensors: {', '.join(missing)}")
    if remaining:
        problems.append(f"unexpected tensors: {', '.join(original[k] for k in sorted(remaining))}")
    if problems:
        raise CheckpointError(f"The checkpoint does not match a {n_layers}-layer GPT-2: " + "; ".join(problems) + ".")
    return out, source


def _resolve_config(config: GPTConfig | Mapping[str, Any] | str | None, path: Path) -> GPTConfig:
    if config is not None:
        return GPTConfig.coerce(PRESET_OF.get(config, config) if isinstance(config, str) else config)
    config_file = path / "config.json"
    if path.is_dir() and config_file.exists():
        return config_from_hf(json.loads(config_file.read_text()))
    if path.is_dir():
        raise FileNotFoundError(f"No config.json in {path}; pass the size as config=, e.g. config='gpt2-small'.")
    raise ValueError(
        f"{path.name} holds tensors but not the model's size (its number of heads cannot be read from the shapes). "
        "Pass it as config=: a preset name such as 'gpt2-small', a GPTConfig, or a dict; "
        "or give the directory that also holds the checkpoint's config.json."
    )


def from_hf_checkpoint(path: str | Path, config: GPTConfig | Mapping[str, Any] | str | None = None, attention: str = "sdpa"):
    """A `GPT` holding the weights of a Hugging Face GPT-2 checkpoint.

    `path` is a directory with ``config.json`` and ``model.safetensors`` (what
    ``GPT2LMHeadModel.save_pretrained`` writes, or a hub download), or a ``.safetensors``
    file alone, whose size must then be given as `config` (a preset name, a `GPTConfig`
    or a dict). Keys with or without the ``transformer.`` prefix are accepted. A tensor
    that is missing, left over or of the wrong shape raises `CheckpointError` naming it.
    """
    from .model import GPT  # model.py imports this module lazily; import it lazily back

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    cfg = _resolve_config(config, path)
    tensors = _read_tensors(path)
    state, source = hf_to_ours(tensors, cfg.n_layers)

    model = GPT(cfg, attention=attention)
    expected = model.state_dict()
    wrong = [
        f"{source[name]} → {name}: {tuple(tensor.shape)} from the checkpoint, {tuple(expected[name].shape)} in the model"
        for name, tensor in state.items()
        if tensor.shape != expected[name].shape
    ]
    if wrong:
        raise CheckpointError(f"Tensors whose shape does not fit {cfg} (shapes after transposing and splitting): " + "; ".join(wrong) + ".")
    with torch.no_grad():
        for name, tensor in state.items():
            expected[name].copy_(tensor)  # state_dict() shares storage with the parameters
    return model.eval()


def to_hf_tensors(model) -> dict[str, torch.Tensor]:
    """Our `GPT`'s weights under GPT-2's names and layouts: the inverse of `hf_to_ours`.

    The output head is not stored: GPT-2 ties it to ``wte.weight``, as we do.
    """
    cfg, sd = model.config, model.state_dict()
    out = {"wte.weight": sd["tok_emb.weight"], "wpe.weight": sd["pos_emb.weight"]}
    for i in range(cfg.n_layers):
        h, ours = f"h.{i}", f"trf_blocks.{i}"
        att = [f"{ours}.att.{name}" for name in ("W_query", "W_key", "W_value")]
        out[f"{h}.ln_1.weight"], out[f"{h}.ln_1.bias"] = sd[f"{ours}.norm1.scale"], sd[f"{ours}.norm1.shift"]
        out[f"{h}.attn.c_attn.weight"] = torch.cat([sd[f"{a}.weight"].t() for a in att], dim=1)  # (d, 3d)
        out[f"{h}.attn.c_attn.bias"] = torch.cat([sd[f"{a}.bias"] for a in att])
        out[f"{h}.attn.c_proj.weight"], out[f"{h}.attn.c_proj.bias"] = sd[f"{ours}.att.out_proj.weight"].t(), sd[f"{ours}.att.out_proj.bias"]
        out[f"{h}.ln_2.weight"], out[f"{h}.ln_2.bias"] = sd[f"{ours}.norm2.scale"], sd[f"{ours}.norm2.shift"]
        out[f"{h}.mlp.c_fc.weight"], out[f"{h}.mlp.c_fc.bias"] = sd[f"{ours}.ff.layers.0.weight"].t(), sd[f"{ours}.ff.layers.0.bias"]
        out[f"{h}.mlp.c_proj.weight"], out[f"{h}.mlp.c_proj.bias"] = sd[f"{ours}.ff.layers.2.weight"].t(), sd[f"{ours}.ff.layers.2.bias"]
    out["ln_f.weight"], out["ln_f.bias"] = sd["final_norm.scale"], sd["final_norm.shift"]
    return {name: t.detach().cpu().contiguous() for name, t in out.items()}


def save_hf_checkpoint(model, directory: str | Path) -> Path:
    """Write our `GPT` as a GPT-2 checkpoint: ``config.json`` and ``model.safetensors``, as on the hub.

    `from_hf_checkpoint` and ``transformers.GPT2LMHeadModel.from_pretrained`` both read it.
    """
    from safetensors.torch import save_file

    cfg = model.config
    if not cfg.qkv_bias:
        raise ValueError("GPT-2 checkpoints have query/key/value biases; this model was built with qkv_bias=False.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hf_config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.context_length,
        "n_embd": cfg.emb_dim,
        "n_layer": cfg.n_layers,
        "n_head": cfg.n_heads,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": cfg.drop_rate,
        "embd_pdrop": cfg.drop_rate,
        "attn_pdrop": cfg.drop_rate,
        "tie_word_embeddings": True,
        "bos_token_id": min(50256, cfg.vocab_size - 1),
        "eos_token_id": min(50256, cfg.vocab_size - 1),
    }
    (directory / "config.json").write_text(json.dumps(hf_config, indent=2))
    save_file(to_hf_tensors(model), directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def is_cached(name: str = "gpt2", cache_dir: str | Path | None = None) -> bool:
    """Are GPT-2's `name` weights already in the Hugging Face cache? Never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    repo = _repo(name)
    return all(isinstance(try_to_load_from_cache(repo, f, cache_dir=cache_dir), str) for f in FILES)


def _repo(name: str) -> str:
    name = {"gpt2-small": "gpt2"}.get(name, name)
    if name not in HF_REPOS:
        raise ValueError(f"Unknown GPT-2 size {name!r}; choose one of {', '.join(HF_REPOS)}.")
    return HF_REPOS[name]


def download(name: str = "gpt2", cache_dir: str | Path | None = None, local_files_only: bool = False) -> Path:
    """Download (or find in the cache) ``config.json`` and ``model.safetensors``; return their directory."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    repo = _repo(name)
    try:
        paths = [Path(hf_hub_download(repo, f, cache_dir=cache_dir, local_files_only=local_files_only)) for f in FILES]
    except (OSError, HfHubHTTPError) as err:
        raise WeightsUnavailableError(
            f"Could not get GPT-2 '{name}' from the Hugging Face hub ({type(err).__name__}). With a network, run\n"
            f"    from huggingface_hub import hf_hub_download\n"
            f"    for f in {FILES!r}: hf_hub_download({repo!r}, f)\n"
            f"or download https://huggingface.co/{repo}/resolve/main/model.safetensors and "
            f"https://huggingface.co/{repo}/resolve/main/config.json into one directory and load it with "
            f"gptcourse.weights.from_hf_checkpoint('that/directory')."
        ) from err
    return paths[1].parent


def from_pretrained(name: str = "gpt2", cache_dir: str | Path | None = None, local_files_only: bool = False, attention: str = "sdpa"):
    """OpenAI's GPT-2 (`name`: gpt2, gpt2-medium, gpt2-large, gpt2-xl) as our `GPT`, via the hub's cache."""
    return from_hf_checkpoint(download(name, cache_dir, local_files_only), attention=attention)
