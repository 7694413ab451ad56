"""GPT-2's checkpoints in Hugging Face's layout, into our `GPT` and back (chapter 8).

Read with `safetensors` (never `pickle`), renamed by `LAYOUT`, reshaped where GPT-2's
layout differs. `gptcourse.model` imports this module, never the reverse.
"""

from __future__ import annotations

import socket
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .config import ALIASES, GPTConfig

# The checkpoint's files (config.json and safetensors), read back with their checks,
# and CheckpointError: gptcourse.files, shared with appendix B's Llama.
from .files import (
    CheckpointError,
    check_model_type,
    hf_int,
    hf_number,
    read_json,
    read_tensors,
    write_hf_checkpoint,
)

# The hub repositories that hold OpenAI's weights, by our preset names.
HF_REPOS = {
    "gpt2-small": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
FILES = ("config.json", "model.safetensors")

# GPT-2's tensors in Hugging Face's names, and where each lives in our GPT ("{i}": every
# block). c_attn holds queries, keys and values side by side: it maps to three of ours.
_QKV = ("W_query", "W_key", "W_value")
LAYOUT: dict[str, str | tuple[str, ...]] = {
    "wte.weight": "tok_emb.weight",
    "wpe.weight": "pos_emb.weight",
    "h.{i}.ln_1.weight": "trf_blocks.{i}.norm1.scale",
    "h.{i}.ln_1.bias": "trf_blocks.{i}.norm1.shift",
    "h.{i}.attn.c_attn.weight": tuple(f"trf_blocks.{{i}}.att.{w}.weight" for w in _QKV),
    "h.{i}.attn.c_attn.bias": tuple(f"trf_blocks.{{i}}.att.{w}.bias" for w in _QKV),
    "h.{i}.attn.c_proj.weight": "trf_blocks.{i}.att.out_proj.weight",
    "h.{i}.attn.c_proj.bias": "trf_blocks.{i}.att.out_proj.bias",
    "h.{i}.ln_2.weight": "trf_blocks.{i}.norm2.scale",
    "h.{i}.ln_2.bias": "trf_blocks.{i}.norm2.shift",
    "h.{i}.mlp.c_fc.weight": "trf_blocks.{i}.ff.layers.0.weight",
    "h.{i}.mlp.c_fc.bias": "trf_blocks.{i}.ff.layers.0.bias",
    "h.{i}.mlp.c_proj.weight": "trf_blocks.{i}.ff.layers.2.weight",
    "h.{i}.mlp.c_proj.bias": "trf_blocks.{i}.ff.layers.2.bias",
    "ln_f.weight": "final_norm.scale",
    "ln_f.bias": "final_norm.shift",
}
# Conv1D weights, (in, out) in the checkpoint and (out, in) in nn.Linear.
TRANSPOSED = (
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
)
# Buffers older checkpoints store beside the weights (the causal mask): not parameters.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
# The keys of a GPT-2 config.json that give its size.
_HF_SIZES = {
    "vocab_size": "vocab_size",
    "n_positions": "context_length",
    "n_embd": "emb_dim",
    "n_head": "n_heads",
    "n_layer": "n_layers",
}


class WeightsUnavailableError(OSError):
    """GPT-2's weights are neither in the cache nor downloadable now (chapter 8)."""


def _layout(n_layers: int) -> dict[str, tuple[str, ...]]:
    """`LAYOUT` with "{i}" spelled out for every block: HF name -> our names."""
    out = {}
    for theirs, ours in LAYOUT.items():
        ours = (ours,) if isinstance(ours, str) else ours
        for i in range(n_layers) if "{i}" in theirs else [None]:
            out[theirs.format(i=i)] = tuple(name.format(i=i) for name in ours)
    return out


def config_from_hf(hf_config: Mapping[str, Any]) -> GPTConfig:
    """Our `GPTConfig` from a Hugging Face GPT-2 ``config.json``, as a dict (chapter 8).

    Dropout is 0: a loaded model is for inference or fine-tuning. Settings our model
    does not implement, and sizes that are not positive ints, are errors naming the
    config.json key, not silently different numbers.
    """
    check_model_type(hf_config, "gpt2")  # first: a Llama's keys are all "missing"
    missing = [key for key in _HF_SIZES if key not in hf_config]
    if missing:
        raise CheckpointError(
            f"The GPT-2 config is missing {', '.join(missing)}; "
            f"a GPT-2 config.json gives all of {', '.join(_HF_SIZES)}."
        )
    sizes = {ours: hf_int(hf_config, theirs) for theirs, ours in _HF_SIZES.items()}
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh"):
        raise CheckpointError(
            f"activation_function={activation!r}; "
            "our GELU is the tanh approximation ('gelu_new')."
        )
    n_embd = sizes["emb_dim"]
    if hf_config.get("n_inner") not in (None, 4 * n_embd):
        raise CheckpointError(
            f"n_inner={hf_config['n_inner']}; "
            f"our feed-forward is 4 × n_embd = {4 * n_embd} wide."
        )
    unsupported = {
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "scale_attn_weights": True,
    }
    for key, ours in unsupported.items():
        if hf_config.get(key, ours) != ours:
            raise CheckpointError(
                f"{key}={hf_config[key]!r} is not supported "
                f"(our attention has {key}={ours})."
            )
    if not hf_config.get("tie_word_embeddings", True):
        raise CheckpointError(
            "tie_word_embeddings=False: "
            "our GPT ties the output head to the token embedding."
        )
    if hf_number(hf_config, "layer_norm_epsilon", 1e-5) != 1e-5:
        raise CheckpointError(
            f"layer_norm_epsilon={hf_config['layer_norm_epsilon']}; "
            "our LayerNorm uses 1e-5."
        )
    return GPTConfig(**sizes, drop_rate=0.0, qkv_bias=True)


def config_to_hf(config: GPTConfig) -> dict[str, Any]:
    """The Hugging Face GPT-2 ``config.json`` (as a dict) of our `config` (chapter 8).

    ``transformers.GPT2Config(**config_to_hf(config))`` builds their GPT-2 at our size.
    """
    if not config.qkv_bias:
        raise ValueError(
            "GPT-2 has query/key/value biases; this config has qkv_bias=False."
        )
    eos = min(50256, config.vocab_size - 1)  # <|endoftext|>, when the vocabulary has it
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        **{theirs: getattr(config, ours) for theirs, ours in _HF_SIZES.items()},
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": config.drop_rate,
        "embd_pdrop": config.drop_rate,
        "attn_pdrop": config.drop_rate,
        "tie_word_embeddings": True,
        "bos_token_id": eos,
        "eos_token_id": eos,
    }


def hf_to_ours(
    tensors: Mapping[str, torch.Tensor], n_layers: int
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """GPT-2's tensors renamed, transposed and split into our state dict (chapter 8).

    Returns the state dict and, for each of its names, the checkpoint's name it came
    from. Raises `CheckpointError` naming every tensor that is missing or left over.
    """
    # GPT2LMHeadModel saves its body as "transformer.h.0...."; the hub's files do not.
    prefix = (
        "transformer." if any(k.startswith("transformer.") for k in tensors) else ""
    )
    remaining = {
        k.removeprefix(prefix): v
        for k, v in tensors.items()
        if not k.endswith(_IGNORED_SUFFIXES)
    }
    head = remaining.pop("lm_head.weight", None)  # outside the prefix; must equal wte
    state: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    missing = []
    for theirs, ours in _layout(n_layers).items():
        if theirs not in remaining:
            missing.append(prefix + theirs)
            continue
        tensor = remaining.pop(theirs)
        tensor = tensor.t() if theirs.endswith(TRANSPOSED) else tensor
        # c_attn: (3d, d) -> 3 × (d, d)
        for name, part in zip(ours, tensor.tensor_split(len(ours)), strict=True):
            state[name], source[name] = part, prefix + theirs
    tie_head(
        state,
        source,
        head,
        "lm_head.weight differs from wte.weight: "
        "our GPT ties the output head to the token embedding.",
    )
    check_complete(
        missing, [prefix + k for k in remaining], f"a {n_layers}-layer GPT-2"
    )
    return state, source


def tie_head(
    state: dict[str, torch.Tensor],
    source: dict[str, str],
    head: torch.Tensor | None,
    differs: str,
) -> None:
    """Make the output head the token embedding's tensor (chapter 8; appendix B).

    A checkpoint that also stores the head (`head`) must store the embedding's values:
    otherwise `CheckpointError(differs)`.
    """
    if "tok_emb.weight" not in state:
        return  # missing: check_complete names it
    wte = state["out_head.weight"] = state["tok_emb.weight"]
    source["out_head.weight"] = source["tok_emb.weight"]
    if head is not None and (head.shape != wte.shape or not torch.equal(head, wte)):
        raise CheckpointError(differs)


def check_complete(missing: list[str], unexpected: Iterable[str], model: str) -> None:
    """`CheckpointError` naming every tensor missing or left over (chapter 8)."""
    problems = [f"missing tensors: {', '.join(missing)}"] if missing else []
    if unexpected := sorted(unexpected):
        problems.append(f"unexpected tensors: {', '.join(unexpected)}")
    if problems:
        raise CheckpointError(
            f"The checkpoint does not match {model}: " + "; ".join(problems) + "."
        )


def ours_to_hf(
    state: Mapping[str, torch.Tensor], n_layers: int
) -> dict[str, torch.Tensor]:
    """Our state dict in GPT-2's names and layouts: `hf_to_ours` backwards (chapter 8).

    The output head is not stored: GPT-2 ties it to ``wte.weight``, as we do.
    """
    out = {}
    for theirs, ours in _layout(n_layers).items():
        # c_attn: 3 × (d, d) -> (3d, d)
        tensor = torch.cat([state[name] for name in ours])
        tensor = tensor.t() if theirs.endswith(TRANSPOSED) else tensor
        out[theirs] = tensor.detach().cpu().contiguous()
    return out


def checkpoint_config(
    path: str | Path, config: GPTConfig | Mapping[str, Any] | str | None = None
) -> GPTConfig:
    """The checkpoint's size: `config`, else its ``config.json`` (chapter 8)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    config_file = path / "config.json"
    if config is not None:
        if path.is_dir() and config_file.is_file():
            # the sizes come from `config`, but a Llama's files are still not GPT-2's
            hf_config = read_json(config_file)
            try:
                check_model_type(hf_config, "gpt2")
            except CheckpointError as err:
                raise CheckpointError(f"{config_file}: {err}") from None
        return GPTConfig.coerce(config)
    if path.is_dir() and config_file.exists():
        try:
            return config_from_hf(read_json(config_file))
        except CheckpointError as err:
            raise CheckpointError(f"{config_file}: {err}") from None
    if path.is_dir():
        raise FileNotFoundError(
            f"No config.json in {path}; "
            "pass the size as config=, e.g. config='gpt2-small'."
        )
    raise ValueError(
        f"{path.name} holds tensors but not the model's size (its number of heads "
        "cannot be read from the shapes). Pass it as config=: a preset name such as "
        "'gpt2-small', a GPTConfig, or a dict; or give the directory that also holds "
        "the checkpoint's config.json."
    )


def shape_mismatches(
    state: dict[str, torch.Tensor],
    source: dict[str, str],
    expected: dict[str, torch.Tensor],
) -> list[str]:
    """Each tensor of `state` whose shape is not `expected`'s, named as in `source`.

    Chapter 8's GPT-2 loader and appendix B's Llama loader report a misfit this way.
    """
    return [
        f"{source[name]} → {name}: {tuple(tensor.shape)} from the checkpoint, "
        f"{tuple(expected[name].shape)} in the model"
        for name, tensor in state.items()
        if tensor.shape != expected[name].shape
    ]


def load_hf_weights(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Copy a GPT-2 checkpoint into `model`, a `GPT` of its size; return it (chapter 8).

    A tensor missing, left over or of the wrong shape is a `CheckpointError` naming it.
    """
    state, source = hf_to_ours(read_tensors(path), model.config.n_layers)
    wrong = shape_mismatches(state, source, model.state_dict())
    if wrong:
        raise CheckpointError(
            f"Tensors whose shape does not fit {model.config} "
            "(shapes after transposing and splitting): " + "; ".join(wrong) + "."
        )
    model.load_state_dict(state)
    return model


def save_hf_checkpoint(model: torch.nn.Module, directory: str | Path) -> Path:
    """Write our `GPT` as a GPT-2 checkpoint laid out as on the hub (chapter 8).

    ``GPT.from_hf_checkpoint`` and ``GPT2LMHeadModel.from_pretrained`` both read it.
    """
    return write_hf_checkpoint(
        directory,
        config_to_hf(model.config),
        ours_to_hf(model.state_dict(), model.config.n_layers),
    )


def _repo(name: str) -> str:
    """The hub repository of "gpt2" (or "gpt2-small"), "gpt2-medium", -large or -xl."""
    preset = ALIASES.get(name, name)
    if preset not in HF_REPOS:
        raise ValueError(
            f"Unknown GPT-2 size {name!r}; "
            "choose one of 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl'."
        )
    return HF_REPOS[preset]


def is_cached(name: str = "gpt2", cache_dir: str | Path | None = None) -> bool:
    """Are GPT-2's `name` weights in the Hugging Face cache? No network (chapter 8)."""
    return hub_checkpoint_cached(_repo(name), cache_dir)


def hub_checkpoint_cached(repo: str, cache_dir: str | Path | None = None) -> bool:
    """Are `repo`'s `FILES` in the Hugging Face cache? No network (chapter 8)."""
    from huggingface_hub import try_to_load_from_cache

    return all(
        isinstance(try_to_load_from_cache(repo, f, cache_dir=cache_dir), str)
        for f in FILES
    )


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Can `url`'s host (or its HTTPS proxy) be reached in `timeout` s? (chapter 8)"""
    parts = urllib.parse.urlsplit(urllib.request.getproxies().get("https") or url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except (OSError, UnicodeError):
        return False


def download(
    name: str = "gpt2",
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """GPT-2's `FILES` directory, from cache or hub; offline, fails fast (chapter 8)."""
    repo = _repo(name)
    return download_hub_checkpoint(
        repo,
        cache_dir,
        local_files_only,
        what_to_do=lambda reason: _what_to_do(name, repo, reason),
    )


def download_hub_checkpoint(
    repo: str,
    cache_dir: str | Path | None,
    local_files_only: bool,
    what_to_do: Callable[[str], str],
) -> Path:
    """The directory of `repo`'s `FILES`: from the cache, else the hub (chapter 8).

    Appendix B's Llama downloads this way too. Offline it fails in seconds (a TCP
    connection is tried, not the hub client's retries): `WeightsUnavailableError`
    with ``what_to_do(reason)``, which says what to download and where.
    """
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    def fetch(offline: bool) -> Path:
        for f in FILES:
            path = huggingface_hub.hf_hub_download(
                repo, f, cache_dir=cache_dir, local_files_only=offline
            )
        return Path(path).parent

    try:
        return fetch(offline=True)  # the cache first: no network at all
    except OSError:  # LocalEntryNotFoundError
        pass
    if local_files_only or constants.HF_HUB_OFFLINE:
        off = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE is set"
        reason = f"they are not in the cache and downloads are switched off ({off})"
        raise WeightsUnavailableError(what_to_do(reason))
    if not reachable(constants.ENDPOINT):
        raise WeightsUnavailableError(
            what_to_do(
                f"they are not in the cache and {constants.ENDPOINT} cannot be reached"
            )
        )
    try:
        return fetch(offline=False)
    except (OSError, HfHubHTTPError) as err:
        raise WeightsUnavailableError(
            what_to_do(f"the download failed: {type(err).__name__}: {err}")
        ) from err


def _what_to_do(name: str, repo: str, reason: str) -> str:
    return (
        f"Could not get GPT-2 {name!r} ({repo}): {reason}. With a network, run\n"
        f"    from huggingface_hub import hf_hub_download\n"
        f"    for f in {FILES!r}: hf_hub_download({repo!r}, f)\n"
        f"or download https://huggingface.co/{repo}/resolve/main/model.safetensors and "
        f"https://huggingface.co/{repo}/resolve/main/config.json into one directory "
        "and load it with GPT.from_hf_checkpoint('that/directory')."
    )
