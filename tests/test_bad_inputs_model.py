"""Issue 23, part C: bad inputs to the models, their configs, the tokenizer, the data and
the training config. One test per case: each asserts the error's type and the words that
name the problem and the fix (or the correct behaviour)."""

import copy
import dataclasses
import math
import pickle
import textwrap

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.data import create_dataloader
from gptcourse.generate import text_to_token_ids, token_ids_to_text
from gptcourse.llama import Llama, LlamaConfig, kv_cache_bytes_per_token
from gptcourse.train import TrainConfig, lr_at

TINY_LLAMA = dict(vocab_size=97, context_length=16, emb_dim=32, n_layers=2, n_heads=4, n_kv_groups=2, hidden_dim=64)
# More than a 64-bit machine's address space (128 TiB) in float32: the allocation fails at
# once however the operating system overcommits memory, and nothing is touched.
HUGE_VOCAB = 10**12


@pytest.fixture
def gpt(tiny_config):
    return GPT(tiny_config)


@pytest.fixture
def llama():
    return Llama(LlamaConfig(**TINY_LLAMA))


# ------------------------------------------------------------ 1. ids and shapes in forward


@pytest.mark.parametrize("bad_id", [97, 10**6, -1])
def test_gpt_forward_names_the_vocabulary_for_an_id_outside_it(gpt, bad_id):
    with pytest.raises(ValueError, match=r"token id outside \[0, vocab_size=97\): encode text with the model's tokenizer, or raise vocab_size") as info:
        gpt(torch.tensor([[1, bad_id, 2]]))
    assert isinstance(info.value.__cause__, IndexError)  # the lookup's own check, restated


@pytest.mark.parametrize("bad_id", [97, -1])
def test_llama_forward_names_the_vocabulary_for_an_id_outside_it(llama, bad_id):
    with pytest.raises(ValueError, match=r"token id outside \[0, vocab_size=97\): encode text with the model's tokenizer, or raise vocab_size"):
        llama(torch.tensor([[1, bad_id, 2]]))


@pytest.mark.parametrize("shape", [(0, 3), (2, 0), (0, 0)])
def test_gpt_forward_refuses_an_empty_batch(gpt, shape):
    with pytest.raises(ValueError, match=r"idx must have shape \(batch, tokens\), got \(\d, \d\); give at least one sequence of at least one token"):
        gpt(torch.zeros(shape, dtype=torch.long))


@pytest.mark.parametrize("shape", [(0, 3), (2, 0)])
def test_llama_forward_refuses_an_empty_batch(llama, shape):
    with pytest.raises(ValueError, match=r"got \(\d, \d\); give at least one sequence of at least one token"):
        llama(torch.zeros(shape, dtype=torch.long))


def test_more_tokens_than_the_context_are_still_refused_by_both_models(gpt, llama):
    too_long = torch.zeros(1, 17, dtype=torch.long)
    with pytest.raises(ValueError, match="idx has 17 tokens but the model's context_length is 16. Crop it"):
        gpt(too_long)
    with pytest.raises(ValueError, match="idx has 17 tokens, more than the model's context_length, 16. Crop it"):
        llama(too_long)
    assert gpt(too_long[:, :16]).shape == (1, 16, 97) and llama(too_long[:, :16]).shape == (1, 16, 97)


# ------------------------------------------------------------ 2. configs and model sizes


def test_a_misspelt_field_in_gpt_from_preset_names_the_fields_and_the_close_one():
    with pytest.raises(TypeError, match=r"GPTConfig.from_preset\(\) got an unexpected keyword argument 'n_head'. Did you mean 'n_heads'\? A GPTConfig's fields are: vocab_size, context_length, emb_dim, n_heads, n_layers, drop_rate, qkv_bias"):
        GPTConfig.from_preset("gpt-nano", n_head=8)
    assert GPTConfig.from_preset("gpt-nano", n_heads=8).n_heads == 8


def test_a_misspelt_field_in_llama_from_preset_names_the_fields_and_the_close_one():
    with pytest.raises(TypeError, match=r"LlamaConfig.from_preset\(\) got an unexpected keyword argument 'n_kv_group'. Did you mean 'n_kv_groups'\? A LlamaConfig's fields are: vocab_size, .*, hidden_dim, rope_base"):
        LlamaConfig.from_preset("llama-nano", n_kv_group=1)


def test_a_gpt_too_big_to_allocate_says_how_many_gb_it_needs():
    config = GPTConfig(vocab_size=HUGE_VOCAB, context_length=8, emb_dim=768, n_heads=12, n_layers=1)
    with pytest.raises(MemoryError, match=r"GPT\(GPTConfig\(vocab_size=1000000000000, .*\)\) has 768,000,\d{3},\d{3},\d{3} parameters: 3,072,\d{3}.\d GB in float32, more than could be allocated. Use a smaller vocab_size, emb_dim or n_layers"):
        GPT(config)


def test_a_llama_too_big_to_allocate_says_how_many_gb_it_needs():
    config = LlamaConfig(**{**TINY_LLAMA, "vocab_size": HUGE_VOCAB, "emb_dim": 768, "n_heads": 12})
    with pytest.raises(MemoryError, match=r"Llama\(LlamaConfig\(vocab_size=1000000000000, .*\)\) has 1,536,\d{3},\d{3},\d{3},\d{3} parameters: 6,144,\d{3}.\d GB .* Use a smaller vocab_size"):
        Llama(config)


# ------------------------------------------------------------ 3. ids to text, offline


def test_token_ids_to_text_takes_a_list_of_ints_and_refuses_other_things():
    ids = text_to_token_ids("Hello, world")[0].tolist()
    assert token_ids_to_text(ids) == token_ids_to_text(tuple(ids)) == "Hello, world"
    assert token_ids_to_text([]) == ""
    with pytest.raises(TypeError, match="ids must be a tensor or a list of ints, got 'Hello'"):
        token_ids_to_text("Hello")


@pytest.mark.parametrize("ids", [torch.tensor([15496, 50257]), [15496, 10**6], [-1]])
def test_token_ids_to_text_names_the_vocabulary_for_an_id_outside_it(ids):
    with pytest.raises(ValueError, match=r"ids holds an id outside the tokenizer's vocabulary \[0, 50257\) .*decode ids with the tokenizer of the model that made them"):
        token_ids_to_text(ids)


def test_an_unwritable_tiktoken_cache_never_sends_the_tokenizer_online(tmp_path, run_python):
    """A fresh process whose tiktoken cache cannot be created (its parent is a file), with every
    way online recorded and refused by an error no ``except OSError`` / ``except Exception``
    can swallow: GPT-2's encoding still comes from the package, and nothing tried to connect."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = textwrap.dedent(
        """
        import socket, sys
        tries = []
        class Online(BaseException): pass
        def refuse(*args, **kwargs):
            tries.append(args[:2])
            raise Online(args[:2])
        socket.socket.connect = socket.create_connection = socket.getaddrinfo = refuse
        import tiktoken.load
        tiktoken.load.read_file = tiktoken.load.read_file_cached = refuse
        import tiktoken, gptcourse
        from gptcourse.generate import text_to_token_ids, token_ids_to_text
        ids = text_to_token_ids("Hello, world!")
        print(tiktoken.get_encoding("gpt2").encode("Hello, world!"), token_ids_to_text(ids))
        print("tries:", tries)
        """
    )
    out = run_python(code, env={"TIKTOKEN_CACHE_DIR": str(blocker / "cache"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.splitlines() == ["[15496, 11, 995, 0] Hello, world!", "tries: []"]
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


# ------------------------------------------------------------ 4. a loader with no batch


def test_create_dataloader_refuses_a_batch_size_larger_than_the_windows():
    ids = torch.arange(50)  # windows of 8 every 8 tokens: 6 of them
    with pytest.raises(ValueError, match=r"The text gives 6 window\(s\) of max_length=8 every stride=8 tokens \(50 tokens\), fewer than batch_size=7: .* Use a smaller batch_size, stride or max_length, more text, or drop_last=False"):
        create_dataloader(ids, batch_size=7, max_length=8, stride=8)
    assert len(create_dataloader(ids, batch_size=6, max_length=8, stride=8)) == 1
    assert len(create_dataloader(ids, batch_size=7, max_length=8, stride=8, drop_last=False)) == 1


# ------------------------------------------------------------ 5. TrainConfig after its checks


def test_changing_max_steps_after_the_checks_is_refused_and_replace_recomputes_the_warm_up():
    config = TrainConfig(max_steps=1000)  # warm-up: 100 steps
    with pytest.raises(dataclasses.FrozenInstanceError, match=r"TrainConfig.max_steps cannot change once checked: make a checked copy, dataclasses.replace\(config, max_steps=...\)"):
        config.max_steps = 20
    assert config.max_steps == 1000 and config.warmup_steps == 100
    with pytest.raises(ValueError, match=r"warmup_steps must be <= max_steps=20, got 100; give fewer, or None \(max_steps // 10\)"):
        dataclasses.replace(config, max_steps=20)
    short = dataclasses.replace(config, max_steps=20, warmup_steps=None)
    assert short.warmup_steps == 2 and lr_at(1, short) == pytest.approx(short.lr)  # the peak is reached


def test_a_nan_learning_rate_set_after_the_checks_is_refused_at_once():
    config = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError, match=r"TrainConfig.lr cannot change once checked: .*dataclasses.replace\(config, lr=...\)"):
        config.lr = math.nan
    with pytest.raises(ValueError, match="TrainConfig.lr must be a finite number, got nan"):
        dataclasses.replace(config, lr=math.nan)
    # The frozen config still copies and pickles (DataLoader workers, checkpoints).
    assert copy.deepcopy(config) == config == pickle.loads(pickle.dumps(config))


# ------------------------------------------------------------ 6. KV-cache bytes by dtype name


@pytest.mark.parametrize(
    "name, dtype",
    [("bf16", torch.bfloat16), ("bfloat16", torch.bfloat16), ("fp16", torch.float16), ("float16", torch.float16), ("fp32", torch.float32), ("float32", torch.float32)],
)
def test_kv_cache_bytes_per_token_takes_the_usual_dtype_names(name, dtype):
    assert kv_cache_bytes_per_token("llama-nano", dtype=name) == kv_cache_bytes_per_token("llama-nano", dtype) == 2 * 2 * 2 * 16 * dtype.itemsize


@pytest.mark.parametrize("dtype", ["int8", "bf-16", 2, None])
def test_kv_cache_bytes_per_token_lists_the_names_it_takes(dtype):
    with pytest.raises(TypeError, match=r"dtype must be a torch.dtype \(e.g. torch.bfloat16\) or one of 'bf16', 'bfloat16', 'fp16', 'float16', 'fp32', 'float32'; got"):
        kv_cache_bytes_per_token("llama-nano", dtype=dtype)
