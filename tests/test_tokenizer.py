import collections
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import regex
import tiktoken
import tiktoken.load
import tiktoken.registry
from tiktoken_ext import openai_public

import gptcourse.tokenizer as tokenizer_module
from gptcourse.data import load_corpus
from gptcourse.tokenizer import _GPT2_FILES, TokenizerDataError, encode, get_tokenizer, gpt2_ranks, train_bpe

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


PACKAGED = ROOT / "gptcourse" / "assets" / "gpt2"
HELLO = "import gptcourse, tiktoken\nprint(tiktoken.get_encoding('gpt2').encode('Hello, world!'))\n"


@pytest.fixture
def fresh_gpt2(monkeypatch):
    """This process as if GPT-2 had never been built: no cached ranks, no "gpt2" in tiktoken's
    registry (both put back afterwards), and tiktoken's cache and network reader raise if used."""

    def used(*args, **kwargs):
        raise AssertionError(f"tiktoken's cache or downloader was used: {args}")

    tokenizer_module._packaged_ranks.cache_clear()
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "gpt2", raising=False)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", used)
    monkeypatch.setattr(tiktoken.load, "read_file", used)
    yield
    tokenizer_module._packaged_ranks.cache_clear()


def test_the_packaged_files_have_tiktokens_sha256():
    for name, (_, expected) in _GPT2_FILES.items():
        assert hashlib.sha256((PACKAGED / name).read_bytes()).hexdigest() == expected, name
    licence = (PACKAGED / "LICENSE").read_text()
    assert "Modified MIT License" in licence and "Copyright (c) 2019 OpenAI" in licence


def test_the_encoding_is_what_tiktokens_own_gpt2_constructor_builds(monkeypatch):
    """tiktoken's constructor, run with its file reader replaced: the same URLs and hashes as ours,
    and the same pattern, special tokens and size as the encoding built from the packaged files."""
    asked = []

    def read_packaged(vocab_bpe_file, encoder_json_file, vocab_bpe_hash, encoder_json_hash):
        asked.extend([(vocab_bpe_file, vocab_bpe_hash), (encoder_json_file, encoder_json_hash)])
        return gpt2_ranks()

    monkeypatch.setattr(openai_public, "data_gym_to_mergeable_bpe_ranks", read_packaged)
    theirs = openai_public.gpt2()
    assert asked == list(_GPT2_FILES.values())
    ours = tokenizer_module._gpt2_constructor()
    assert {k: v for k, v in ours.items() if k != "mergeable_ranks"} == {k: v for k, v in theirs.items() if k != "mergeable_ranks"}


def test_the_ranks_are_what_tiktokens_own_reader_makes_of_the_files(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's switch: read the paths given, cache nothing
    (_, bpe_hash), (_, json_hash) = _GPT2_FILES.values()
    theirs = tiktoken.load.data_gym_to_mergeable_bpe_ranks(str(PACKAGED / "vocab.bpe"), str(PACKAGED / "encoder.json"), bpe_hash, json_hash)
    assert gpt2_ranks() == theirs and len(theirs) == 50256


def test_gpt2_is_built_without_tiktokens_cache_or_network(fresh_gpt2, no_network):
    tok = get_tokenizer()
    assert tok is tiktoken.get_encoding("gpt2") and tok.encode("Hello, world!") == [15496, 11, 995, 0]


def test_without_tiktokens_registry_gpt2_is_built_all_the_same(fresh_gpt2, monkeypatch, no_network):
    """Should a tiktoken release drop the registry this relies on, get_tokenizer() builds GPT-2 itself."""
    monkeypatch.delattr(tiktoken.registry, "ENCODING_CONSTRUCTORS")
    tokenizer_module._own_gpt2.cache_clear()
    assert not tokenizer_module.install_offline_gpt2()
    tok = get_tokenizer()
    assert tok.name == "gpt2" and tok.encode("Hello, world! <|endoftext|>", allowed_special="all") == [15496, 11, 995, 0, 220, 50256]
    tokenizer_module._own_gpt2.cache_clear()


def test_plain_tiktoken_works_offline_with_an_unwritable_cache(tmp_path, run_python):
    """A fresh process, no network, and a cache directory that cannot be created (its parent is a
    file: unwritable even for root): importing gptcourse is enough, and nothing is written."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = run_python(HELLO, env={"TIKTOKEN_CACHE_DIR": str(blocker / "cache"), "PATH": "/usr/bin:/bin"}, network=False)
    assert out.stdout.strip() == "[15496, 11, 995, 0]"
    assert os.listdir(tmp_path) == ["a-file"]


def test_a_damaged_tiktoken_cache_is_never_read(tmp_path, run_python):
    """tiktoken alone would find a bad file under its cache key, delete it and download again."""
    for url, _ in _GPT2_FILES.values():
        (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"damaged")
    out = run_python(HELLO, env={"TIKTOKEN_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}, network=False)
    assert out.stdout.strip() == "[15496, 11, 995, 0]"
    assert [p.read_bytes() for p in tmp_path.iterdir()] == [b"damaged", b"damaged"]


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncated", r"GPT-2's encoder.json in gptcourse \(.*\) is damaged: its sha256 is .*, tiktoken expects 196139668be6"),
        ("edited", "encoder.json in gptcourse .* is damaged"),
        ("missing", r"GPT-2's encoder.json is missing from gptcourse .*pip uninstall -y gptcourse.*git checkout -- gptcourse/assets/gpt2/"),
    ],
)
def test_a_damaged_packaged_file_says_how_to_repair_it(damage, message, tmp_path, monkeypatch, fresh_gpt2):
    for name in _GPT2_FILES:
        (tmp_path / name).write_bytes((PACKAGED / name).read_bytes())
    path = tmp_path / "encoder.json"
    if damage == "missing":
        path.unlink()
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncated" else data.replace(b'"Hello"', b'"Jello"'))
    monkeypatch.setattr(tokenizer_module, "_asset", lambda name: tmp_path / name)
    for build in (get_tokenizer, gpt2_ranks, lambda: tiktoken.get_encoding("gpt2")):
        with pytest.raises(TokenizerDataError, match=message):
            build()


def test_the_wheel_carries_the_packaged_files(tmp_path):
    """Built from a copy of the package (nothing written in the repository), the wheel holds every
    file under gptcourse/assets, byte for byte."""
    pytest.importorskip("setuptools", minversion="77", reason="pyproject.toml's build-system needs setuptools>=77 (built here without a network)")
    source = tmp_path / "source"
    shutil.copytree(ROOT / "gptcourse", source / "gptcourse", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    build = f"from setuptools import build_meta\nprint(build_meta.build_wheel({str(tmp_path)!r}))"
    result = subprocess.run([sys.executable, "-c", build], cwd=source, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(tmp_path / result.stdout.strip().splitlines()[-1]) as wheel:
        packed = {name: wheel.read(name) for name in wheel.namelist() if name.startswith("gptcourse/assets/")}
    assets = ROOT / "gptcourse" / "assets"
    expected = {f"gptcourse/assets/{p.relative_to(assets).as_posix()}": p.read_bytes() for p in assets.rglob("*") if p.is_file()}
    assert len(expected) == 5 and packed == expected


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
