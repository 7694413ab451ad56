import hashlib
import os

import pytest
import tiktoken

from gptcourse.tokenizer import _GPT2_FILES, _cache_path, encode, get_tokenizer, install_offline_gpt2


def test_official_ids():
    assert encode("Hello, world! <|endoftext|>") == [15496, 11, 995, 0, 220, 50256]


def test_is_tiktokens_gpt2():
    tok = get_tokenizer()
    assert tok is tiktoken.get_encoding("gpt2")
    assert tok.n_vocab == 50257 and tok.eot_token == 50256


def test_round_trip_unicode_and_code():
    tok = get_tokenizer()
    text = "naïve 🤖 def __init__(self):\n\treturn  x  # ok"
    assert tok.decode(tok.encode(text)) == text


def test_encode_wants_text():
    with pytest.raises(TypeError, match="text must be a str, got list; to turn ids into text, use tokenizer.decode"):
        encode([15496, 11])


def test_plain_tiktoken_works_offline_in_a_fresh_cache(tmp_path, run_python):
    # A new process, an empty tiktoken cache, and no network: importing gptcourse is enough.
    code = "import gptcourse, tiktoken\nprint(tiktoken.get_encoding('gpt2').encode('Hello, world!'))\n"
    out = run_python(code, env={"TIKTOKEN_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}, network=False)
    assert out.stdout.strip() == "[15496, 11, 995, 0]"


def cached_files(cache_dir):
    return {name: _cache_path(str(cache_dir), url) for name, (url, _) in _GPT2_FILES.items()}


@pytest.mark.parametrize("damage", ["truncated", "edited", "empty"])
def test_a_corrupted_cache_file_is_replaced_offline(tmp_path, monkeypatch, no_network, damage):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert install_offline_gpt2()
    path = cached_files(tmp_path)["encoder.json"]
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "edited": data.replace(b'"Hello"', b'"Jello"'), "empty": b""}[damage])
    get_tokenizer()  # checks the files before tiktoken could read them
    for name, cached in cached_files(tmp_path).items():
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == _GPT2_FILES[name][1], name
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in cached_files(tmp_path).values())  # no temporary left


def test_a_fresh_process_builds_gpt2_from_a_corrupted_cache_offline(tmp_path, run_python):
    """tiktoken alone would delete the bad file and try to download it: here it never sees it."""
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run_python("import gptcourse", env=env)
    path = cached_files(tmp_path)["vocab.bpe"]
    path.write_bytes(path.read_bytes()[:1000])
    out = run_python("import gptcourse, tiktoken\nprint(tiktoken.get_encoding('gpt2').encode('Hello, world!'))\n", env=env, network=False)
    assert out.stdout.strip() == "[15496, 11, 995, 0]"
