"""gptcourse/weights.py: Hugging Face GPT-2 checkpoints load into our GPT and compute the same logits."""

import json
import socket
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from gptcourse import GPT, GPTConfig
from gptcourse.weights import (
    CheckpointError,
    WeightsUnavailableError,
    config_from_hf,
    config_to_hf,
    download,
    hf_to_ours,
    is_cached,
    ours_to_hf,
    save_hf_checkpoint,
)

transformers = pytest.importorskip("transformers")

# Two shapes that are no preset: if a transpose or the q/k/v split were wrong, they would show.
SIZES = [
    dict(n_layer=2, n_embd=64, n_head=4, n_positions=32, vocab_size=300),
    dict(n_layer=3, n_embd=96, n_head=3, n_positions=24, vocab_size=257),
]


def random_hf_gpt2(**size) -> torch.nn.Module:
    """A transformers GPT-2 with random weights, and random (non-zero) biases and LayerNorm parameters."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(**size, bos_token_id=0, eos_token_id=0, initializer_range=0.1)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:  # zeros and ones by default: a test could not see them
                param.copy_(torch.randn_like(param) * 0.3 + (1.0 if name.endswith("weight") else 0.0))  # LN scales near 1
    return model


def hf_logits(model, idx):
    with torch.no_grad():
        return model(input_ids=idx).logits


@pytest.fixture(params=range(len(SIZES)), ids=["2x64x4", "3x96x3"])
def saved(request, tmp_path):
    size = SIZES[request.param]
    hf = random_hf_gpt2(**size)
    hf.save_pretrained(tmp_path)
    idx = torch.randint(0, size["vocab_size"], (2, size["n_positions"]))
    return tmp_path, hf, idx, size


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_directory_checkpoint_gives_the_same_logits(saved, attention):
    path, hf, idx, size = saved
    ours = GPT.from_hf_checkpoint(path, attention=attention)
    assert ours.config == GPTConfig(size["vocab_size"], size["n_positions"], size["n_embd"], size["n_head"], size["n_layer"], 0.0, True)
    torch.testing.assert_close(ours(idx), hf_logits(hf, idx), atol=1e-4, rtol=0)
    assert ours.out_head.weight is ours.tok_emb.weight  # still tied after loading


def test_without_prefix_and_file_alone(saved, tmp_path_factory):
    path, hf, idx, size = saved
    tensors = load_file(path / "model.safetensors")
    assert any(k.startswith("transformer.") for k in tensors)
    bare = {k.removeprefix("transformer."): v.contiguous() for k, v in tensors.items()}  # the hub's GPT-2 files look like this
    out = tmp_path_factory.mktemp("bare")
    save_file(bare, out / "model.safetensors")
    config = GPTConfig(size["vocab_size"], size["n_positions"], size["n_embd"], size["n_head"], size["n_layer"])
    ours = GPT.from_hf_checkpoint(out / "model.safetensors", config=config)
    torch.testing.assert_close(ours(idx), hf_logits(hf, idx), atol=1e-4, rtol=0)
    # The same directory with config.json copied in loads without config=.
    (out / "config.json").write_text((path / "config.json").read_text())
    torch.testing.assert_close(GPT.from_hf_checkpoint(out)(idx), hf_logits(hf, idx), atol=1e-4, rtol=0)


def test_file_alone_needs_the_size(saved):
    path, *_ = saved
    with pytest.raises(ValueError, match="config="):
        GPT.from_hf_checkpoint(path / "model.safetensors")


def test_old_checkpoints_mask_buffers_and_a_tied_lm_head_are_accepted(saved, tmp_path_factory):
    path, hf, idx, size = saved
    tensors = {k.removeprefix("transformer."): v.contiguous() for k, v in load_file(path / "model.safetensors").items()}
    n = size["n_positions"]
    tensors["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, n, n))  # what older GPT-2 files carry
    tensors["lm_head.weight"] = tensors["wte.weight"].clone()
    out = tmp_path_factory.mktemp("old")
    save_file(tensors, out / "model.safetensors")
    (out / "config.json").write_text((path / "config.json").read_text())
    torch.testing.assert_close(GPT.from_hf_checkpoint(out)(idx), hf_logits(hf, idx), atol=1e-4, rtol=0)


def _rewrite(path, out, change):
    tensors = {k: v.contiguous() for k, v in load_file(path / "model.safetensors").items()}
    change(tensors)
    save_file(tensors, out / "model.safetensors")
    (out / "config.json").write_text((path / "config.json").read_text())
    return out


def test_missing_unexpected_and_misshapen_tensors_are_named(saved, tmp_path_factory):
    path, *_ = saved

    def drop(t):
        del t["transformer.h.1.mlp.c_fc.bias"]
        del t["transformer.ln_f.weight"]

    out = _rewrite(path, tmp_path_factory.mktemp("missing"), drop)
    with pytest.raises(CheckpointError, match=r"missing tensors: transformer\.h\.1\.mlp\.c_fc\.bias, transformer\.ln_f\.weight"):
        GPT.from_hf_checkpoint(out)

    out = _rewrite(path, tmp_path_factory.mktemp("extra"), lambda t: t.update({"transformer.h.9.attn.c_proj.weight": torch.zeros(2, 2)}))
    with pytest.raises(CheckpointError, match=r"unexpected tensors: transformer\.h\.9\.attn\.c_proj\.weight"):
        GPT.from_hf_checkpoint(out)

    def misshape(t):
        t["transformer.wpe.weight"] = t["transformer.wpe.weight"][:-1].clone()

    out = _rewrite(path, tmp_path_factory.mktemp("shape"), misshape)
    with pytest.raises(CheckpointError, match=r"transformer\.wpe\.weight → pos_emb\.weight"):
        GPT.from_hf_checkpoint(out)

    def untie(t):
        t["lm_head.weight"] = torch.randn_like(t["transformer.wte.weight"])

    out = _rewrite(path, tmp_path_factory.mktemp("untied"), untie)
    with pytest.raises(CheckpointError, match="lm_head.weight differs"):
        GPT.from_hf_checkpoint(out)


def test_a_size_that_does_not_fit_names_the_tensors(saved):
    path, _, _, size = saved
    wrong = GPTConfig(size["vocab_size"], size["n_positions"], 2 * size["n_embd"], size["n_head"], size["n_layer"])
    with pytest.raises(CheckpointError, match=r"wte\.weight → tok_emb\.weight"):
        GPT.from_hf_checkpoint(path / "model.safetensors", config=wrong)
    fewer_layers = GPTConfig(size["vocab_size"], size["n_positions"], size["n_embd"], size["n_head"], 1)
    with pytest.raises(CheckpointError, match=r"unexpected tensors: transformer\.h\.1\."):
        GPT.from_hf_checkpoint(path / "model.safetensors", config=fewer_layers)


def test_unsupported_settings_and_missing_files(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**config_to_hf(GPTConfig()), "activation_function": "relu"}))
    with pytest.raises(CheckpointError, match="activation_function"):
        GPT.from_hf_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        GPT.from_hf_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No model.safetensors"):
        GPT.from_hf_checkpoint(tmp_path / "empty", config="gpt-nano")


@pytest.mark.parametrize("key", ["n_head", "n_embd", "vocab_size"])
def test_a_config_json_missing_a_key_names_it_and_the_file(saved, tmp_path, key):
    path, *_ = saved
    hf_config = json.loads((path / "config.json").read_text())
    del hf_config[key]
    (tmp_path / "config.json").write_text(json.dumps(hf_config))
    with pytest.raises(CheckpointError, match=rf"{tmp_path / 'config.json'}: The GPT-2 config is missing {key};"):
        GPT.from_hf_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        GPT.from_hf_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: b"", r"is empty \(0 bytes\)"),
        (lambda data: data[: len(data) // 2], "is not a readable safetensors file .*truncated"),
        (lambda data: b"<html>Not found</html>" * 10, "is not a readable safetensors file"),
    ],
    ids=["empty", "truncated", "garbage"],
)
def test_an_unreadable_safetensors_file_is_named(saved, tmp_path, damage, message):
    path, *_ = saved
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(damage((path / "model.safetensors").read_bytes()))
    with pytest.raises(CheckpointError, match=message) as err:
        GPT.from_hf_checkpoint(tmp_path)
    assert str(tmp_path / "model.safetensors") in str(err.value) and "weights_only" not in str(err.value)


def test_the_config_both_ways():
    config = GPTConfig(vocab_size=300, context_length=32, emb_dim=64, n_heads=4, n_layers=2)
    assert config_from_hf(config_to_hf(config)) == config
    theirs = transformers.GPT2LMHeadModel(transformers.GPT2Config(**config_to_hf(config)))
    assert sum(p.numel() for p in theirs.parameters()) == GPT(config).num_parameters()
    with pytest.raises(ValueError, match="qkv_bias=False"):
        config_to_hf(GPTConfig(qkv_bias=False))


def test_the_layout_both_ways():
    model = GPT(GPTConfig(vocab_size=300, context_length=32, emb_dim=64, n_heads=4, n_layers=2))
    hf = ours_to_hf(model.state_dict(), n_layers=2)
    assert hf["h.1.attn.c_attn.weight"].shape == (64, 3 * 64) and "lm_head.weight" not in hf
    state, source = hf_to_ours(hf, n_layers=2)
    assert sorted(state) == sorted(model.state_dict()) and source["trf_blocks.1.att.W_key.bias"] == "h.1.attn.c_attn.bias"
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0, msg=name)


def test_offline_error_says_what_to_download(tmp_path):
    # local_files_only: never touches the network, exactly what an offline machine sees.
    assert not is_cached("gpt2", cache_dir=tmp_path)
    with pytest.raises(
        WeightsUnavailableError, match=r"(?s)local_files_only=True.*hf_hub_download\('openai-community/gpt2'.*from_hf_checkpoint"
    ) as err:
        download("gpt2", cache_dir=tmp_path, local_files_only=True)
    assert "https://huggingface.co/openai-community/gpt2/resolve/main/model.safetensors" in str(err.value)
    with pytest.raises(WeightsUnavailableError):
        GPT.from_pretrained("gpt2-medium", cache_dir=str(tmp_path), local_files_only=True)
    with pytest.raises(ValueError, match="Unknown GPT-2 size 'gpt3'"):
        GPT.from_pretrained("gpt3", local_files_only=True)


def test_from_pretrained_without_a_network_fails_fast(tmp_path, monkeypatch):
    """No local_files_only: the hub client would retry for 20 s; we look first and fail in seconds."""

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)  # as on a machine with no network
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match=r"(?s)https://huggingface.co cannot be reached.*hf_hub_download") as err:
        GPT.from_pretrained("gpt2", cache_dir=tmp_path)
    assert time.perf_counter() - start < 5
    assert "GPT.from_hf_checkpoint('that/directory')" in str(err.value)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE is set"):
        download("gpt2", cache_dir=tmp_path)


def test_from_pretrained_reads_the_hub_cache_layout(tmp_path, monkeypatch):
    """from_pretrained finds files that hf_hub_download returns (here: a fake, offline hub)."""
    hf = random_hf_gpt2(**SIZES[0])
    snapshot = tmp_path / "snapshot"
    hf.save_pretrained(snapshot)
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        return str(snapshot / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    ours = GPT.from_pretrained("gpt2")
    assert calls == [("openai-community/gpt2", "config.json"), ("openai-community/gpt2", "model.safetensors")]
    idx = torch.randint(0, SIZES[0]["vocab_size"], (1, 10))
    torch.testing.assert_close(ours(idx), hf_logits(hf, idx), atol=1e-4, rtol=0)


@pytest.mark.parametrize("size", SIZES, ids=["2x64x4", "3x96x3"])
def test_our_model_saved_as_gpt2_loads_in_transformers(size, tmp_path):
    """save_hf_checkpoint is the inverse: transformers reads our files and computes our logits."""
    torch.manual_seed(1)
    ours = GPT(GPTConfig(size["vocab_size"], size["n_positions"], size["n_embd"], size["n_head"], size["n_layer"])).eval()
    with torch.no_grad():
        for param in ours.parameters():
            if param.dim() == 1:
                param.add_(torch.randn_like(param) * 0.3)
    save_hf_checkpoint(ours, tmp_path)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, size["vocab_size"], (2, size["n_positions"]))
    torch.testing.assert_close(hf_logits(theirs, idx), ours(idx), atol=1e-4, rtol=0)
    torch.testing.assert_close(GPT.from_hf_checkpoint(tmp_path)(idx), ours(idx), atol=0, rtol=0)
