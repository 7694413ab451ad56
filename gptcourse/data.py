"""Text corpora and the sliding-window dataset a GPT trains on (chapter 1).

* ``python_docs``: the Python Language Reference's prose (what ``help("if")`` prints),
  465,047 characters, Python 3.11.7's, shipped with gptcourse: offline, the same text on
  every Python.
* ``tiny_shakespeare``: Karpathy's 1.1 MB of Shakespeare, downloaded once, checked
  against its sha256 and cached; offline, it fails with a message saying what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
import zlib
from importlib import resources
from pathlib import Path

import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset

from .checks import finite_number, non_negative_int, one_of, positive_int
from .config import GPTConfig
from .files import write_atomically
from .tokenizer import encode

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/"
    "data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = (
    "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
)


# The packaged Python docs: where in gptcourse, and the sha256 of the text (UTF-8,
# unzipped).
PYTHON_DOCS_FILE = ("assets", "python_docs", "python_docs.txt.gz")
PYTHON_DOCS_SHA256 = "d9dc35bce5ab1a24ed7f4c3c9b7c22450410e9d68279e3426db458c6be371621"
# A notebook's first cell installs gptcourse only when it is missing: uninstall it
# first.
_REINSTALL = "`pip uninstall -y gptcourse`, then run the notebook's first cell again"


class CorpusUnavailableError(RuntimeError):
    """A corpus could not be downloaded or failed its checksum (chapter 1)."""


def cache_dir() -> Path:
    """Downloads go to ``$GPTCOURSE_CACHE`` or ``~/.cache/gptcourse`` (chapter 1)."""
    return Path(os.environ.get("GPTCOURSE_CACHE", Path.home() / ".cache" / "gptcourse"))


def _python_docs_file():
    """The packaged corpus (a zip-safe ``Traversable``)."""
    return resources.files("gptcourse").joinpath(*PYTHON_DOCS_FILE)


def python_docs() -> str:
    """The Python Language Reference's topics: the offline corpus (chapter 1).

    The text of Python 3.11.7's ``pydoc_data.topics`` (built by Sphinx on 4 December
    2023), its 79 topics sorted by name and joined by blank lines: 465,047 characters.
    It is a fixed copy shipped with gptcourse (PSF licence,
    ``assets/python_docs/LICENSE``), not the running Python's, whose topics change with
    every release, even between 3.11.2 and 3.11.7: with it, every seeded number in the
    book is what a reader sees on any Python.
    Checked against its sha256 whenever loaded (about 5 ms).
    """
    path = _python_docs_file()
    try:
        packed = path.read_bytes()
    except FileNotFoundError as err:
        raise CorpusUnavailableError(
            f"The python_docs corpus is missing from gptcourse ({path}): the package "
            f"is incomplete. Reinstall it ({_REINSTALL}), or in a clone of the "
            "course restore it: `git checkout -- gptcourse/assets/python_docs/`."
        ) from err
    try:
        data = gzip.decompress(packed)
    except (OSError, EOFError, zlib.error):  # not gzip, cut short, or a bad CRC
        data = None
    if data is None or hashlib.sha256(data).hexdigest() != PYTHON_DOCS_SHA256:
        raise CorpusUnavailableError(
            f"The python_docs corpus in gptcourse ({path}) is damaged: it is not the "
            f"text whose sha256 is {PYTHON_DOCS_SHA256[:12]}…. Reinstall gptcourse "
            f"({_REINSTALL}), or in a clone of the course restore it with "
            "`git checkout -- gptcourse/assets/python_docs/python_docs.txt.gz`."
        )
    return data.decode("utf-8")


def tiny_shakespeare(timeout: float = 30.0) -> str:
    """Tiny Shakespeare (1,115,394 characters), downloaded and cached (chapter 1)."""
    finite_number("timeout", timeout, strictly_above=0.0)
    path = cache_dir() / "tiny_shakespeare.txt"
    if path.is_file():
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == TINY_SHAKESPEARE_SHA256:
            return data.decode("utf-8")
        # Not the right file (edited, or damaged on disk): download and replace it.
    try:
        with urllib.request.urlopen(TINY_SHAKESPEARE_URL, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise CorpusUnavailableError(
            f"Could not download Tiny Shakespeare ({err}). Without a network, use the "
            "offline corpus (load_corpus('python_docs')), or download "
            f"{TINY_SHAKESPEARE_URL} yourself and save it as {path}."
        ) from err
    if hashlib.sha256(data).hexdigest() != TINY_SHAKESPEARE_SHA256:
        raise CorpusUnavailableError(
            f"The file downloaded from {TINY_SHAKESPEARE_URL} does not have the "
            "expected sha256; it was not saved. Try again later."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda f: f.write(data))  # parallel downloads never collide
    return data.decode("utf-8")


CORPORA = {"python_docs": python_docs, "tiny_shakespeare": tiny_shakespeare}


def load_corpus(name: str = "python_docs") -> str:
    """A corpus by name (chapter 1).

    ``"python_docs"`` (offline, the default) or ``"tiny_shakespeare"``.
    """
    return CORPORA[one_of("corpus", name, CORPORA)]()


def _token_ids(
    text: str | list[int] | torch.Tensor,
    tokenizer: tiktoken.Encoding | None,
    vocab_size: int,
) -> torch.Tensor:
    """`text` as a 1-D tensor of valid token ids: encoded if a str, else checked."""
    if isinstance(text, str):
        token_ids = torch.tensor(encode(text, tokenizer), dtype=torch.long)
    else:
        try:
            token_ids = torch.as_tensor(text)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                "text must be a str or a 1-D sequence of token ids, "
                f"got {type(text).__name__} ({err})."
            ) from err
    if token_ids.dim() != 1:
        raise ValueError(
            "text must be one stream of token ids (1-D), "
            f"got shape {tuple(token_ids.shape)}. Join the documents first, "
            "e.g. torch.cat(list_of_id_tensors) or ids.flatten()."
        )
    if token_ids.numel() == 0:
        return token_ids.long()  # too short: the window check says so
    if (
        token_ids.is_floating_point()
        or token_ids.is_complex()
        or token_ids.dtype == torch.bool
    ):
        raise TypeError(
            f"token ids must be integers, got {token_ids.dtype} "
            f"(e.g. {token_ids[0].item()!r})."
        )
    low, high = int(token_ids.min()), int(token_ids.max())
    if low < 0:
        at = int((token_ids < 0).nonzero()[0])
        raise ValueError(
            f"token ids must be >= 0, got {low} (first negative id at position {at})."
        )
    if high >= vocab_size:
        at = int((token_ids >= vocab_size).nonzero()[0])
        raise ValueError(
            f"token ids must be < vocab_size={vocab_size}, got {high} "
            f"(first such id at position {at}). "
            "Pass the vocab_size of the model these ids are for."
        )
    return token_ids.long()


class GPTDataset(Dataset):
    """Windows of ``max_length`` tokens every ``stride``, and targets (chapter 1).

    Target ``i`` is the token after input ``i``. `text` is a string (encoded with
    `tokenizer`, GPT-2's by default) or one 1-D stream of ids in ``[0, vocab_size)``,
    checked here so that a bad id fails now, not as an index error inside the model.
    """

    def __init__(
        self,
        text: str | list[int] | torch.Tensor,
        tokenizer: tiktoken.Encoding | None = None,
        max_length: int = 256,
        stride: int = 128,
        vocab_size: int = GPTConfig.vocab_size,
    ):
        positive_int("max_length", max_length)
        positive_int("stride", stride)
        positive_int("vocab_size", vocab_size)
        token_ids = _token_ids(text, tokenizer, vocab_size)
        if token_ids.numel() < max_length + 1:
            raise ValueError(
                f"The text has {token_ids.numel()} tokens, too few for one window of "
                f"max_length={max_length} plus its shifted target. "
                "Use more text or a smaller max_length."
            )
        self.token_ids = token_ids
        self.max_length = max_length
        self.stride = stride
        self.starts = range(0, token_ids.numel() - max_length, stride)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.starts[i]
        chunk = self.token_ids[start : start + self.max_length + 1]
        return chunk[:-1], chunk[1:]  # input, target: the window shifted by one token


def create_dataloader(
    text: str | list[int] | torch.Tensor,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    seed: int | None = 123,
    vocab_size: int = GPTConfig.vocab_size,
) -> DataLoader:
    """A DataLoader of (inputs, targets), each (batch_size, max_length) (chapter 1).

    `seed` fixes the shuffling order, so two runs see the same batches. A loader that
    would yield no batch (fewer windows than `batch_size`, with `drop_last`) fails here.
    """
    positive_int("batch_size", batch_size)
    non_negative_int("num_workers", num_workers)
    dataset = GPTDataset(
        text, max_length=max_length, stride=stride, vocab_size=vocab_size
    )
    if drop_last and len(dataset) < batch_size:
        raise ValueError(
            f"The text gives {len(dataset)} window(s) of max_length={max_length} "
            f"every stride={stride} tokens ({dataset.token_ids.numel()} tokens), "
            f"fewer than batch_size={batch_size}: with drop_last=True not one batch "
            "is made. Use a smaller batch_size, stride or max_length, more text, "
            "or drop_last=False."
        )
    generator = (
        torch.Generator().manual_seed(non_negative_int("seed", seed))
        if seed is not None
        else None
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=generator,
    )


def train_val_split(
    text: str, train_ratio: float = 0.9, pieces: int = 1
) -> tuple[str, str]:
    """Split text into training and validation text (chapter 7).

    Cut into `pieces` equal pieces, the first `train_ratio` of each is for training,
    the rest for validation. One piece: one cut. Many: both parts sample every stretch
    of the text, so they are alike even where its topics differ from end to end.
    """
    if finite_number("train_ratio", train_ratio, strictly_above=0.0) >= 1.0:
        raise ValueError(f"train_ratio must be in (0, 1), got {train_ratio!r}.")
    if positive_int("pieces", pieces) > len(text):
        raise ValueError(
            f"pieces must be at most the text's length ({len(text)} characters), "
            f"got {pieces}. Use fewer pieces or more text."
        )
    train, val = [], []
    for k in range(pieces):
        start, end = k * len(text) // pieces, (k + 1) * len(text) // pieces
        cut = start + int(train_ratio * (end - start))
        train.append(text[start:cut])
        val.append(text[cut:end])
    return "".join(train), "".join(val)
