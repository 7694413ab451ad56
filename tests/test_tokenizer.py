import collections
import hashlib
import os
from pathlib import Path

import pytest
import regex
import tiktoken

from gptcourse.data import load_corpus
from gptcourse.tokenizer import (
    _GPT2_FILES,
    _cache_path,
    encode,
    get_tokenizer,
    gpt2_ranks,
    install_offline_gpt2,
    train_bpe,
)

ROOT = Path(__file__).resolve().parents[1]


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


def test_gpt2_ranks_are_tiktokens_merges_offline(no_network):
    ranks = gpt2_ranks()
    tok = get_tokenizer()
    assert sorted(ranks.values()) == list(range(tok.n_vocab - 1))  # all but <|endoftext|>
    rebuilt = tiktoken.Encoding("rebuilt", pat_str=tok._pat_str, mergeable_ranks=ranks, special_tokens={})
    text = load_corpus()[:20_000]
    assert rebuilt.encode(text) == tok.encode(text)
    # the byte tokens are a renumbering of the bytes: a space is 220, not 32
    assert ranks[b" "] == tok.encode(" ")[0] != ord(" ")
    assert sorted(ranks[bytes([b])] for b in range(256)) == list(range(256))


def test_train_bpe_merges_inside_pieces_only():
    # 'a b a b' without the pre-split would merge b'a ' first (seen first, as often as b' b')
    assert train_bpe("a b a b", 1) == [b" b"]
    assert train_bpe("ab ab ab", 2) == [b"ab", b" ab"]  # the second merge builds on the first
    merges = train_bpe(load_corpus()[:5000], 15)
    assert not any(t.endswith(b" ") and t.strip() for t in merges)
    assert all(t in gpt2_ranks() for t in merges if t.strip())  # GPT-2 learned the same ones


@pytest.mark.parametrize(
    "n_merges, message", [(-1, "n_merges must be an int >= 0, got -1"), (2.0, "got 2.0"), (5, "more than the text allows")]
)
def test_train_bpe_bad_n_merges(n_merges, message):
    with pytest.raises(ValueError, match=message):
        train_bpe("ab ab", n_merges)


def _piece(parts, ranks, pick):
    while True:
        mergeable = [i for i in range(len(parts) - 1) if parts[i] + parts[i + 1] in ranks]
        if not mergeable:
            return parts
        i = pick(parts, mergeable, ranks)
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


def _lowest_rank(parts, mergeable, ranks):
    return min(mergeable, key=lambda i: ranks[parts[i] + parts[i + 1]])


def _encoder(split=True, pick=_lowest_rank, by_frequency=False):
    pattern = get_tokenizer()._pat_str

    def bpe_encode(text, ranks):
        pieces = [[bytes([b]) for b in p.encode()] for p in (regex.findall(pattern, text) if split else [text])]
        if by_frequency:  # the most frequent mergeable pair of the whole text first
            while counts := collections.Counter(p[i] + p[i + 1] for p in pieces for i in range(len(p) - 1) if p[i] + p[i + 1] in ranks):
                token = counts.most_common(1)[0][0]
                pieces = [_piece(p, {token: 0}, _lowest_rank) for p in pieces]
        else:
            pieces = [_piece(p, ranks, pick) for p in pieces]
        return [ranks[t] for p in pieces for t in p]

    return bpe_encode


def _bpe_decode(ids, ranks):
    inverse = {i: t for t, i in ranks.items()}
    return b"".join(inverse[i] for i in ids).decode("utf-8", errors="replace")


@pytest.mark.parametrize(
    "mistake, encoder",
    [
        (None, _encoder()),
        ("left to right", _encoder(pick=lambda parts, mergeable, ranks: mergeable[0])),
        ("most frequent pair first", _encoder(by_frequency=True)),
        ("across the pieces", _encoder(split=False)),
    ],
)
def test_exercise_1_2_check_fails_on_each_plausible_mistake(mistake, encoder, capsys, exercise_check):
    tok = get_tokenizer()
    namespace = {
        "text": load_corpus(),
        "tokenizer": tok,
        "pre_split": lambda s: regex.findall(tok._pat_str, s),
        "bpe_encode": encoder,
        "bpe_decode": _bpe_decode,
    }
    check = exercise_check("1.2")
    if mistake is None:
        exec(check, namespace)
        assert "✓ Exercise 1.2" in capsys.readouterr().out
    else:
        with pytest.raises(AssertionError, match="tiktoken"):
            exec(check, namespace)
