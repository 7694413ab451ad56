"""Issue 23, part A: files, checkpoints and Hugging Face-format weights under bad inputs.

One test per case: each bad input is a clear error naming the problem and the fix, or the
behaviour is the correct one (nothing mixed, nothing let in, nothing of a live writer deleted).
"""

import json
import os
import signal
import threading

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gptcourse import GPT, GPTConfig, llama_weights, weights
from gptcourse.checkpoint import CheckpointError, check_writable, load_checkpoint, save_checkpoint
from gptcourse.files import remove_stale_temporaries, temporary_pattern, write_atomically
from gptcourse.llama import Llama, LlamaConfig, from_hf_checkpoint

GPT_TINY = dict(vocab_size=97, context_length=16, emb_dim=32, n_layers=2)
LLAMA_TINY = dict(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_kv_groups=2, n_layers=2, hidden_dim=64)


def gpt(**overrides) -> GPT:
    return GPT(GPTConfig(**{**GPT_TINY, "n_heads": 4, **overrides}))


def llama(**overrides) -> Llama:
    return Llama(LlamaConfig(**{**LLAMA_TINY, **overrides}))


# ---------------------------------------------------------------- 1. save_hf_checkpoint's two files


def test_a_gpt2_config_json_from_another_save_is_refused_and_a_hub_file_still_loads(tmp_path):
    # n_heads changes no tensor's shape: mixed, the pair would load into a different model, silently.
    weights.save_hf_checkpoint(gpt(n_heads=4), tmp_path / "a")
    weights.save_hf_checkpoint(gpt(n_heads=2), tmp_path / "b")
    (tmp_path / "a" / "config.json").write_bytes((tmp_path / "b" / "config.json").read_bytes())  # killed in between
    with pytest.raises(CheckpointError, match=r"come from different saves \(they differ in n_head\).*Save the model again"):
        GPT.from_hf_checkpoint(tmp_path / "a")
    # The hub's files carry no copy of the config: they load as before.
    hub_file = tmp_path / "a" / "model.safetensors"
    save_file(load_file(hub_file), hub_file, metadata={"format": "pt"})
    assert GPT.from_hf_checkpoint(tmp_path / "a").config.n_heads == 2


def test_a_llama_config_json_from_another_save_is_refused(tmp_path):
    llama_weights.save_hf_checkpoint(llama(rope_base=10_000.0), tmp_path / "a")
    llama_weights.save_hf_checkpoint(llama(rope_base=500_000.0), tmp_path / "b")
    (tmp_path / "a" / "config.json").write_bytes((tmp_path / "b" / "config.json").read_bytes())
    with pytest.raises(CheckpointError, match="come from different saves.*rope_theta.*Save the model again"):
        from_hf_checkpoint(tmp_path / "a")


_real_replace = os.replace


def _die(*args):
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_after_renames(n):
    """os.replace that renames `n` times, then kills the process (as kill -9 would)."""
    done = []

    def replace(src, dst):
        _real_replace(src, dst)
        done.append(dst)
        if len(done) == n:
            _die()

    return replace


HF_KILLS = {  # where in the save, and the patch that kills it there
    "while writing the weights": ("os.fsync", _die),
    "between the two files": ("os.replace", _kill_after_renames(1)),
    "after both files": ("os.replace", _kill_after_renames(2)),
}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
@pytest.mark.parametrize("moment", HF_KILLS)
def test_save_hf_checkpoint_killed_at_any_moment_leaves_a_loadable_pair_or_a_clear_error(tmp_path, monkeypatch, moment):
    weights.save_hf_checkpoint(gpt(n_heads=4), tmp_path)
    new = gpt(n_heads=2)  # the same tensors' shapes: only the config tells the saves apart
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        try:
            monkeypatch.setattr(*HF_KILLS[moment])
            weights.save_hf_checkpoint(new, tmp_path)
        finally:
            os._exit(0)  # reached only if the kill did not happen
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the save was not killed {moment}"
    if moment == "between the two files":
        with pytest.raises(CheckpointError, match="come from different saves.*Save the model again"):
            GPT.from_hf_checkpoint(tmp_path)
    else:
        expected = 4 if moment == "while writing the weights" else 2
        assert GPT.from_hf_checkpoint(tmp_path).config.n_heads == expected
    weights.save_hf_checkpoint(new, tmp_path)  # saved again: whole, and the killed save's temporary file is gone
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]
    assert GPT.from_hf_checkpoint(tmp_path).config.n_heads == 2


def test_save_hf_checkpoint_removes_the_temporary_files_of_killed_saves(tmp_path):
    tmp_path.joinpath("run").mkdir()
    stale = [tmp_path / "run" / ".model.safetensors.k1ll3d.tmp", tmp_path / "run" / ".config.json.k1ll3d.tmp"]
    for path in stale:
        path.write_bytes(b"half a save")  # no writer holds them: their writers were killed
    directory = weights.save_hf_checkpoint(gpt(), tmp_path / "run")
    assert sorted(os.listdir(directory)) == ["config.json", "model.safetensors"]
    assert GPT.from_hf_checkpoint(directory).config.n_heads == 4


# ---------------------------------------------------------------- 2. the shard index


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/abs/outside.safetensors"])
def test_a_shard_outside_the_checkpoint_directory_is_refused(tmp_path, shard):
    outside = tmp_path / "outside.safetensors"
    save_file({"wte.weight": torch.ones(2)}, outside)
    shard = str(outside) if shard.startswith("/abs/") else shard
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"wte.weight": shard}}))
    with pytest.raises(CheckpointError, match=rf"names the shard '{shard}', which is not a file inside .*checkpoint"):
        weights.read_tensors(checkpoint)


def test_a_shard_index_without_weight_map_says_so(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 8}}))
    with pytest.raises(CheckpointError, match="has no weight_map .*Download the checkpoint again"):
        weights.read_tensors(tmp_path)


# ---------------------------------------------------------------- 3. the umask


@pytest.mark.parametrize(("umask", "mode"), [(0o077, 0o600), (0o027, 0o640)], ids=["umask 077", "umask 027"])
def test_write_atomically_respects_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_atomically(tmp_path / "private.bin", lambda f: f.write(b"secret"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


# ---------------------------------------------------------------- 4. two writers in one directory


def test_a_live_writers_temporary_file_survives_another_save_and_a_dead_ones_goes(tmp_path):
    path = tmp_path / "checkpoint.pt"
    dead = tmp_path / ".checkpoint.pt.d3adwr1t3r.tmp"
    dead.write_bytes(b"left by a killed save")
    writing, go_on, errors = threading.Event(), threading.Event(), []

    def slow_write(f):
        f.write(b"the other writer's bytes")
        writing.set()
        assert go_on.wait(30)

    def other_writer():
        try:
            write_atomically(path, slow_write)
        except Exception as err:  # collected: an exception in a thread would not fail the test
            errors.append(err)

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        assert writing.wait(30)
        live = [p for p in tmp_path.glob(temporary_pattern(path)) if p != dead]
        assert len(live) == 1
        save_checkpoint(tmp_path, nn.Linear(2, 2))  # cleans up while the other writer writes
        assert all(p.exists() for p in live) and not dead.exists()
    finally:
        go_on.set()
        thread.join()
    assert not errors, errors
    assert path.read_bytes() == b"the other writer's bytes"
    assert remove_stale_temporaries(path) == [] and sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]


# ---------------------------------------------------------------- 5. files given for directories


def test_load_checkpoint_given_the_file_says_pass_its_directory(tmp_path):
    save_checkpoint(tmp_path / "run", nn.Linear(2, 2))
    with pytest.raises(ValueError, match=rf"is a file, not a directory: pass the directory that holds checkpoint.pt, e.g. load_checkpoint\('{tmp_path / 'run'}'"):
        load_checkpoint(tmp_path / "run" / "checkpoint.pt", nn.Linear(2, 2))


def test_save_checkpoint_to_a_file_name_says_pass_a_directory(tmp_path):
    with pytest.raises(ValueError, match=rf"my_model.pt' looks like a file name.*pass a directory, e.g. '{tmp_path / 'my_model'}'"):
        save_checkpoint(tmp_path / "my_model.pt", nn.Linear(2, 2))
    assert not (tmp_path / "my_model.pt").exists()


def test_check_writable_refuses_a_file_name_so_train_never_makes_a_directory_of_it(tmp_path):
    with pytest.raises(ValueError, match=r"TrainConfig.checkpoint_dir='.*run.pt' looks like a file name.*pass a directory"):
        check_writable(tmp_path / "run.pt", "TrainConfig.checkpoint_dir")
    assert not (tmp_path / "run.pt").exists()
    (tmp_path / "v1.pt").mkdir()  # an existing directory is what it is
    assert check_writable(tmp_path / "v1.pt") == tmp_path / "v1.pt"


def test_save_checkpoint_over_a_file_says_choose_a_writable_directory(tmp_path):
    (tmp_path / "run").write_text("a file in the way")
    with pytest.raises(ValueError, match=r"directory='.*run' is not a directory files can be written to \(it is a file\)\. Choose a writable directory"):
        save_checkpoint(tmp_path / "run", nn.Linear(2, 2))


def test_save_checkpoint_under_a_file_says_choose_a_writable_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a directory")
    with pytest.raises(ValueError, match=r"directory='.*notes.txt/run' is not a directory files can be written to \(Not a directory\)\. Choose"):
        save_checkpoint(tmp_path / "notes.txt" / "run", nn.Linear(2, 2))


def test_save_hf_checkpoint_to_a_file_name_or_over_a_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"model.safetensors' looks like a file name.*pass a directory"):
        weights.save_hf_checkpoint(gpt(), tmp_path / "model.safetensors")
    (tmp_path / "run").write_text("a file in the way")
    with pytest.raises(ValueError, match=r"\(it is a file\)\. Choose a writable directory"):
        llama_weights.save_hf_checkpoint(llama(), tmp_path / "run")
    assert sorted(os.listdir(tmp_path)) == ["run"]


# ---------------------------------------------------------------- 6. the other family's checkpoint


def test_a_gpt2_checkpoint_given_to_the_llama_loader_names_the_gpt_loader(tmp_path):
    weights.save_hf_checkpoint(gpt(), tmp_path)
    with pytest.raises(CheckpointError, match=r"This is a 'gpt2' checkpoint .*not a Llama: load it with GPT.from_hf_checkpoint"):
        from_hf_checkpoint(tmp_path)


def test_a_llama_checkpoint_given_to_the_gpt_loader_names_the_llama_loader(tmp_path):
    llama_weights.save_hf_checkpoint(llama(), tmp_path)
    for config in (None, GPTConfig(**GPT_TINY, n_heads=4)):  # also when the sizes are given
        with pytest.raises(CheckpointError, match=r"This is a 'llama' checkpoint .*not GPT-2: load it with gptcourse.llama.from_hf_checkpoint"):
            GPT.from_hf_checkpoint(tmp_path, config=config)


# ---------------------------------------------------------------- 7. config.json's values


def llama_hf(**changes) -> dict:
    return {**llama_weights.config_to_hf(LlamaConfig(**LLAMA_TINY)), **changes}


def test_num_key_value_heads_zero_is_refused_and_absent_means_multi_head():
    with pytest.raises(CheckpointError, match=r"num_key_value_heads=0 is not a positive divisor of num_attention_heads=4: give one of \[1, 2, 4\]"):
        llama_weights.config_from_hf(llama_hf(num_key_value_heads=0))
    assert llama_weights.config_from_hf(llama_hf(num_key_value_heads=None))["n_kv_groups"] == 4
    hf_config = llama_hf()
    del hf_config["num_key_value_heads"]
    assert llama_weights.config_from_hf(hf_config)["n_kv_groups"] == 4


def test_rms_norm_eps_as_text_says_it_must_be_a_number():
    with pytest.raises(CheckpointError, match=r"rms_norm_eps='abc' is a string, not a number: config.json must give rms_norm_eps as a number"):
        llama_weights.config_from_hf(llama_hf(rms_norm_eps="abc"))


def test_hidden_size_in_quotes_says_it_must_be_an_int():
    with pytest.raises(CheckpointError, match=r"hidden_size='64' is a string, not an int: .*whole number, without quotes \(e.g. 64\)"):
        llama_weights.config_from_hf(llama_hf(hidden_size="64"))


def test_a_gpt2_size_in_quotes_names_config_json_s_key():
    hf_config = {**weights.config_to_hf(GPTConfig(**GPT_TINY, n_heads=4)), "n_embd": "32"}
    with pytest.raises(CheckpointError, match=r"n_embd='32' is a string, not an int: .*\(e.g. 32\)"):
        weights.config_from_hf(hf_config)
