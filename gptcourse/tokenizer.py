"""GPT-2's byte-pair encoding, offline (chapter 1).

tiktoken downloads the two files of its ``gpt2`` encoding on first use and keeps them in
a cache. gptcourse ships the same two files (OpenAI's, under GPT-2's MIT licence, in
``gptcourse/assets/gpt2/``), checks them against tiktoken's own sha256, and builds the
encoding from them with no cache and no network; ``tiktoken.get_encoding("gpt2")`` then
returns it. ``train_bpe`` is only the finished form of the chapter's toy trainer, and
``gpt2_ranks`` gives GPT-2's merges.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
from importlib import resources

import regex
import tiktoken
import tiktoken.registry
from tiktoken_ext import openai_public

# Where tiktoken downloads the files from, and the sha256 it checks them against
# (both from tiktoken_ext/openai_public.py); the packaged copies must have the same.
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
# tiktoken's faster equivalent of it (tiktoken >= 0.8 names it); the same tokens either
# way.
_TIKTOKEN_PATTERN = getattr(openai_public, "r50k_pat_str", GPT2_PATTERN)
# A notebook's first cell installs gptcourse only when it is missing: uninstall it
# first.
_REINSTALL = "`pip uninstall -y gptcourse`, then run the notebook's first cell again"


class TokenizerDataError(RuntimeError):
    """GPT-2's packaged vocabulary files are missing or damaged (chapter 1)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _asset(name: str):
    """Where the package keeps one of GPT-2's files (a zip-safe ``Traversable``)."""
    return resources.files("gptcourse").joinpath("assets", "gpt2", name)


def _packaged_file(name: str) -> bytes:
    """One of GPT-2's two files from the package, checked against tiktoken's sha256."""
    path = _asset(name)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise TokenizerDataError(
            f"GPT-2's {name} is missing from gptcourse ({path}): the package is "
            f"incomplete. Reinstall it ({_REINSTALL}), or in a clone of the course "
            "restore it: `git checkout -- gptcourse/assets/gpt2/`."
        ) from err
    expected = _GPT2_FILES[name][1]
    if _sha256(data) != expected:
        raise TokenizerDataError(
            f"GPT-2's {name} in gptcourse ({path}) is damaged: its sha256 is "
            f"{_sha256(data)[:12]}…, tiktoken expects {expected[:12]}…. Reinstall "
            f"gptcourse ({_REINSTALL}), or in a clone of the course restore it with "
            f"`git checkout -- gptcourse/assets/gpt2/{name}`."
        )
    return data


def _data_gym_alphabet() -> tuple[list[int], dict[str, int]]:
    """GPT-2's files write every byte as one printable character: the bytes in rank
    order, and each character's byte.

    The printable bytes other than the space stand for themselves; the other 68 become
    chr(256), chr(257), … in order. Their ranks follow the same order (a space is 220,
    not 32). This is tiktoken's own reading of the files
    (``data_gym_to_mergeable_bpe_ranks``), which cannot be used directly: it goes
    through tiktoken's cache, which then has to be writable and falls back to the
    network.
    """
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    others = [b for b in range(256) if b not in printable]
    char_to_byte = {chr(b): b for b in printable}
    char_to_byte.update({chr(256 + n): b for n, b in enumerate(others)})
    return printable + others, char_to_byte


@functools.lru_cache(maxsize=1)
def _packaged_ranks() -> dict[bytes, int]:
    """GPT-2's mergeable ranks from the packaged files (about 0.1 s, once per
    process)."""
    ordered, char_to_byte = _data_gym_alphabet()

    def to_bytes(token: str) -> bytes:
        return bytes(char_to_byte[c] for c in token)

    ranks = {bytes([b]): rank for rank, b in enumerate(ordered)}
    # vocab.bpe: a version line, then one merge ("left right") a line, in the order
    # learned.
    for line in _packaged_file("vocab.bpe").decode("utf-8").split("\n")[1:-1]:
        left, right = line.split()
        ranks[to_bytes(left) + to_bytes(right)] = len(ranks)
    # encoder.json must give every token the rank of its merge: tiktoken's own check,
    # that the id of a token is its merge priority.
    ids = json.loads(_packaged_file("encoder.json"))
    ids.pop(ENDOFTEXT, None)
    if {to_bytes(token): i for token, i in ids.items()} != ranks:
        raise TokenizerDataError(
            "GPT-2's vocab.bpe and encoder.json in gptcourse disagree; reinstall "
            f"gptcourse ({_REINSTALL})."
        )
    return ranks


def _gpt2_constructor() -> dict:
    """What tiktoken's own ``gpt2`` constructor returns, read from the packaged
    files."""
    return {
        "name": "gpt2",
        "explicit_n_vocab": 50257,
        "pat_str": _TIKTOKEN_PATTERN,
        "mergeable_ranks": _packaged_ranks(),
        "special_tokens": {ENDOFTEXT: 50256},
    }


def install_offline_gpt2() -> bool:
    """Make ``tiktoken.get_encoding("gpt2")`` build GPT-2 from gptcourse's files
    (chapter 1).

    tiktoken looks its encodings' constructors up by name in a registry it fills from
    its plugins; this replaces the ``gpt2`` one, which downloads, with one that reads
    the packaged files: no cache, no network. Cheap (the files are read when the
    encoding is first built), and never raises; False if this tiktoken has no such
    registry, and then ``get_tokenizer()`` builds the encoding itself.
    """
    if getattr(tiktoken.registry, "ENCODING_CONSTRUCTORS", False) is None:
        try:
            tiktoken.list_encoding_names()  # tiktoken fills its registry on first use
        except (ImportError, ValueError):
            return False  # a broken tiktoken plugin: tiktoken will say so
    constructors = getattr(tiktoken.registry, "ENCODING_CONSTRUCTORS", None)
    if not isinstance(constructors, dict):
        return False
    constructors["gpt2"] = _gpt2_constructor
    return True


@functools.lru_cache(maxsize=1)
def _own_gpt2() -> tiktoken.Encoding:
    return tiktoken.Encoding(**_gpt2_constructor())


def get_tokenizer() -> tiktoken.Encoding:
    """GPT-2's encoding, ``tiktoken.get_encoding("gpt2")``, working offline (chapter 1).

    Built once per process from the packaged files, checked against their sha256; a
    missing or damaged file raises ``TokenizerDataError``, saying how to repair it.
    """
    if install_offline_gpt2():
        return tiktoken.get_encoding("gpt2")
    return _own_gpt2()


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
    return dict(_packaged_ranks())  # a copy: the encoding keeps the original


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
