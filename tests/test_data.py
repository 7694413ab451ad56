import gzip
import hashlib
import math
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
import torch

import gptcourse.data as data_module
from gptcourse.data import (
    PYTHON_DOCS_SHA256,
    CorpusUnavailableError,
    GPTDataset,
    create_dataloader,
    load_corpus,
    python_docs,
    tiny_shakespeare,
    train_val_split,
)

PACKAGED_DOCS = Path(__file__).resolve().parents[1] / "gptcourse" / "assets" / "python_docs"


class FakeResponse:
    """What `urllib.request.urlopen` returns, serving `body`; `before_read` runs first (to line threads up)."""

    def __init__(self, body: bytes, before_read=lambda: None):
        self.body, self.before_read = body, before_read

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        self.before_read()
        return self.body


def test_offline_corpus_is_english_prose():
    text = load_corpus()
    assert len(text) > 100_000 and "statement" in text


def test_python_docs_is_the_packaged_text_with_its_sha256(no_network):
    text = python_docs()
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == PYTHON_DOCS_SHA256
    assert len(text) == 465_047 and text.startswith('The "assert" statement') and load_corpus() == text
    licence = (PACKAGED_DOCS / "LICENSE").read_text()
    assert "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2" in licence and "3.11.7" in licence


@pytest.mark.skipif(
    sys.version_info[:3] != (3, 11, 7),
    reason="the packaged corpus is Python 3.11.7's pydoc_data.topics, and every other release's differ "
    f"(3.11.2's already do); this is Python {sys.version.split()[0]}",
)
def test_python_docs_is_byte_for_byte_what_python_3_11_7_ships():
    """The text the book's numbers were computed from before it was packaged: nothing changed."""
    from pydoc_data.topics import topics

    assert python_docs() == "\n\n".join(topics[name].strip() for name in sorted(topics))


def test_python_docs_is_the_same_text_on_another_python():
    """The system's own Python, if it is another release, reads the same bytes from the package."""
    other = Path("/usr/bin/python3")
    if not other.exists():
        pytest.skip("no /usr/bin/python3 to compare with")
    code = (
        "import gzip, hashlib, sys\n"
        f"data = gzip.decompress(open({str(PACKAGED_DOCS / 'python_docs.txt.gz')!r}, 'rb').read())\n"
        "from pydoc_data.topics import topics\n"
        "own = '\\n\\n'.join(topics[n].strip() for n in sorted(topics)).encode()\n"
        "print(sys.version.split()[0], hashlib.sha256(data).hexdigest(), own == data)\n"
    )
    version, sha, same_as_own = subprocess.run([str(other), "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert sha == PYTHON_DOCS_SHA256
    if version != "3.11.7":
        assert same_as_own == "False"  # why the corpus is packaged: that Python's own topics differ


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing", r"The python_docs corpus is missing from gptcourse .*pip uninstall -y gptcourse.*git checkout -- gptcourse/assets/python_docs/"),
        ("truncated", r"The python_docs corpus in gptcourse \(.*\) is damaged: it is not the text whose sha256 is d9dc35bce5ab"),
        ("not gzip", "is damaged"),
        ("edited and recompressed", "is damaged"),
    ],
)
def test_a_damaged_python_docs_says_how_to_repair_it(damage, message, tmp_path, monkeypatch):
    packed = (PACKAGED_DOCS / "python_docs.txt.gz").read_bytes()
    path = tmp_path / "python_docs.txt.gz"
    if damage == "truncated":
        path.write_bytes(packed[: len(packed) // 2])
    elif damage == "not gzip":
        path.write_bytes(gzip.decompress(packed))
    elif damage == "edited and recompressed":  # a valid gzip file: only the sha256 can tell
        path.write_bytes(gzip.compress(gzip.decompress(packed).replace(b"statement", b"sentence", 1)))
    monkeypatch.setattr(data_module, "_python_docs_file", lambda: path)
    with pytest.raises(CorpusUnavailableError, match=message):
        load_corpus("python_docs")


def test_unknown_corpus():
    with pytest.raises(ValueError, match="Unknown corpus 'wikipedia'; choose one of: 'python_docs', 'tiny_shakespeare'"):
        load_corpus("wikipedia")


def test_windows_and_shifted_targets():
    ids = list(range(100))
    ds = GPTDataset(ids, max_length=8, stride=4)
    assert len(ds) == 23  # starts 0, 4, ..., 88 (start + 8 < 100)
    x, y = ds[3]
    assert x.tolist() == list(range(12, 20)) and y.tolist() == list(range(13, 21))


def test_dataset_rejects_bad_sizes():
    with pytest.raises(ValueError, match="The text has 5 tokens, too few for one window of max_length=8"):
        GPTDataset(list(range(5)), max_length=8)
    with pytest.raises(ValueError, match="stride must be a positive int, got 0"):
        GPTDataset(list(range(50)), max_length=8, stride=0)
    with pytest.raises(TypeError, match=r"max_length must be a positive int, got 8.0 \(float\)"):
        GPTDataset(list(range(50)), max_length=8.0)


@pytest.mark.parametrize(
    ("ids", "error", "message"),
    [
        (torch.zeros(2, 50, dtype=torch.long), ValueError, r"text must be one stream of token ids \(1-D\), got shape \(2, 50\)"),
        ([[1, 2, 3]] * 20, ValueError, r"1-D\), got shape \(20, 3\)"),
        (torch.arange(50.0), TypeError, r"token ids must be integers, got torch.float32 \(e.g. 0.0\)"),
        ([0.5] * 50, TypeError, "token ids must be integers, got torch.float32"),
        (torch.ones(50, dtype=torch.bool), TypeError, "token ids must be integers, got torch.bool"),
        (torch.arange(-3, 47), ValueError, r"token ids must be >= 0, got -3 \(first negative id at position 0\)"),
        (list(range(40)) + [50257] + list(range(9)), ValueError, r"token ids must be < vocab_size=50257, got 50257 \(first such id at position 40\)"),
        (None, TypeError, "text must be a str or a 1-D sequence of token ids, got NoneType"),
    ],
    ids=["2-D", "list of lists", "float", "float list", "bool", "negative", "beyond GPT-2's vocabulary", "None"],
)
def test_dataset_checks_ids_where_they_enter(ids, error, message):
    with pytest.raises(error, match=message):
        GPTDataset(ids, max_length=8)


def test_dataset_checks_ids_against_the_vocabulary_given():
    ids = torch.arange(100) % 97
    assert len(GPTDataset(ids, max_length=8, stride=8, vocab_size=97)) == 12  # ids up to 96: fine
    with pytest.raises(ValueError, match="token ids must be < vocab_size=96, got 96"):
        GPTDataset(ids, max_length=8, vocab_size=96)
    with pytest.raises(ValueError, match="token ids must be < vocab_size=50"):
        create_dataloader(ids, max_length=8, vocab_size=50)
    ok = GPTDataset(torch.arange(20, dtype=torch.int32), max_length=8)  # any integer dtype: stored as int64
    assert ok.token_ids.dtype == torch.long


def test_dataloader_shapes_and_seeded_order():
    text = load_corpus()[:20_000]
    batches = [next(iter(create_dataloader(text, batch_size=3, max_length=16, stride=16, seed=7))) for _ in range(2)]
    x, y = batches[0]
    assert x.shape == y.shape == (3, 16) and x.dtype == torch.long
    torch.testing.assert_close(batches[0][0], batches[1][0])


def test_train_val_split():
    train, val = train_val_split("abcdefghij", 0.8)
    assert (train, val) == ("abcdefgh", "ij")
    with pytest.raises(ValueError, match=r"train_ratio must be in \(0, 1\), got 1.0"):
        train_val_split("abc", 1.0)
    with pytest.raises(ValueError, match="train_ratio must be a finite number, got nan"):
        train_val_split("abc", float("nan"))


def test_train_val_split_in_pieces_holds_out_the_end_of_each():
    train, val = train_val_split("abcdefghij" * 3, 0.8, pieces=3)
    assert (train, val) == ("abcdefgh" * 3, "ij" * 3)
    text = load_corpus()
    train, val = train_val_split(text, 0.9, pieces=50)
    assert len(train) + len(val) == len(text)  # nothing lost, nothing repeated
    # Spread over the whole text: its first fiftieth and its end give validation their share.
    first = text[: len(text) // 50]
    assert val[:100] in first[-len(first) // 10 - 1 :] and text.endswith(val[-100:])
    assert 0.099 < len(val) / len(text) < 0.101
    with pytest.raises(ValueError, match="pieces must be at most the text's length"):
        train_val_split("abc", 0.5, pieces=4)
    with pytest.raises(TypeError, match="pieces must be a positive int"):
        train_val_split("abc", 0.5, pieces=1.5)


def test_tiny_shakespeare_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path))

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    with pytest.raises(CorpusUnavailableError, match="python_docs"):
        tiny_shakespeare()


def test_tiny_shakespeare_rejects_a_corrupted_download(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path))

    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: FakeResponse(b"not shakespeare"))
    with pytest.raises(CorpusUnavailableError, match="sha256"):
        tiny_shakespeare()
    assert not (tmp_path / "tiny_shakespeare.txt").exists()


SHAKESPEARE = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 100


def test_concurrent_first_downloads_do_not_collide(tmp_path, monkeypatch):
    """Eight processes' worth of first downloads at once (threads here): all get the text, one file remains."""
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(data_module, "TINY_SHAKESPEARE_SHA256", hashlib.sha256(SHAKESPEARE).hexdigest())
    n = 8
    all_downloading = threading.Barrier(n, timeout=30)

    # Every thread reads only once all are downloading: nobody has saved yet, so all of them write the file.
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: FakeResponse(SHAKESPEARE, all_downloading.wait))
    texts, errors = [], []

    def first_use():
        try:
            texts.append(tiny_shakespeare())
        except Exception as err:  # collected: an exception in a thread would not fail the test
            errors.append(err)

    threads = [threading.Thread(target=first_use) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert texts == [SHAKESPEARE.decode()] * n
    assert os.listdir(tmp_path) == ["tiny_shakespeare.txt"]
    assert (tmp_path / "tiny_shakespeare.txt").read_bytes() == SHAKESPEARE


def test_a_corrupted_cached_corpus_is_downloaded_again(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(data_module, "TINY_SHAKESPEARE_SHA256", hashlib.sha256(SHAKESPEARE).hexdigest())
    (tmp_path / "tiny_shakespeare.txt").write_bytes(SHAKESPEARE[:100])  # a download cut short, saved by some other tool

    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: FakeResponse(SHAKESPEARE))
    assert tiny_shakespeare() == SHAKESPEARE.decode()
    assert (tmp_path / "tiny_shakespeare.txt").read_bytes() == SHAKESPEARE


def bigram(train_ids, val_ids, unigram_p, lam=0.9, count_on=None, n=None):
    """Exercise 7.2's bigram loss; `count_on` and `n` make its plausible mistakes."""
    counted = (count_on if count_on is not None else train_ids).tolist()
    pairs, firsts = Counter(zip(counted, counted[1:])), Counter(counted[:-1])
    v = val_ids.tolist()
    total = -sum(
        math.log(lam * (pairs[a, b] / firsts[a] if firsts[a] else 0.0) + (1 - lam) * unigram_p[b])
        for a, b in zip(v, v[1:])
    )
    return total / (n or len(v) - 1)


def test_exercise_7_2_check_catches_the_plausible_wrong_answers(exercise_check):
    """The right bigram loss passes; counting pairs in the validation ids (a leak),
    averaging over the tokens rather than the pairs, or reversed pairs fail."""
    check = exercise_check("7.2")
    g = torch.Generator().manual_seed(0)
    V = 97
    ids = torch.where(torch.rand(3000, generator=g) < 0.2, torch.randint(0, V, (3000,), generator=g), torch.arange(3000) % V)
    train_ids, val_ids = ids[:2500], ids[2500:]
    counts = torch.bincount(train_ids, minlength=V).double() + 1
    unigram_log_p = (counts / counts.sum()).log()
    p = unigram_log_p.exp().tolist()

    def run(bigram_loss):
        names = dict(torch=torch, V=V, train_ids=train_ids, val_ids=val_ids, unigram_log_p=unigram_log_p)
        exec(check, {**names, "unigram_loss": -unigram_log_p[val_ids].mean().item(), "bigram_loss": bigram_loss})

    run(bigram(train_ids, val_ids, p))
    for wrong in (
        bigram(train_ids, val_ids, p, count_on=val_ids),
        bigram(train_ids, val_ids, p, n=len(val_ids)),
        bigram(train_ids.flip(0), val_ids, p),
        bigram(train_ids, val_ids, p, lam=0.5),
    ):
        with pytest.raises(AssertionError, match="the mean of -ln p"):
            run(wrong)
