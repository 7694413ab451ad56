"""Text corpora and the sliding-window dataset a GPT trains on.

Two corpora:

* ``python_docs`` — the prose of the Python Language Reference, which every Python
  installation ships (``pydoc_data.topics``, what ``help("if")`` prints). About 465,000
  characters of real English, there offline, on every machine, with nothing to download.
* ``tiny_shakespeare`` — Karpathy's 1.1 MB of Shakespeare, downloaded once, checked
  against its sha256 and cached. Offline, it fails with a message saying what to do.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset

from .tokenizer import encode, get_tokenizer

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


class CorpusUnavailableError(RuntimeError):
    """A corpus could not be downloaded or failed its checksum."""


def cache_dir() -> Path:
    """Where downloads are kept: ``$GPTCOURSE_CACHE`` or ``~/.cache/gptcourse``."""
    return Path(os.environ.get("GPTCOURSE_CACHE", Path.home() / ".cache" / "gptcourse"))


def python_docs() -> str:
    """The Python Language Reference's topics, joined: the offline corpus."""
    from pydoc_data.topics import topics

    # Sorted by topic name, so the text is the same whatever order the dict was written in.
    return "\n\n".join(topics[name].strip() for name in sorted(topics))


def tiny_shakespeare(timeout: float = 30.0) -> str:
    """Tiny Shakespeare (1,115,394 characters), downloaded once and cached."""
    path = cache_dir() / "tiny_shakespeare.txt"
    if path.exists():
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == TINY_SHAKESPEARE_SHA256:
            return data.decode("utf-8")
        path.unlink()  # a partial or corrupted download: fetch it again
    try:
        with urllib.request.urlopen(TINY_SHAKESPEARE_URL, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise CorpusUnavailableError(
            f"Could not download Tiny Shakespeare ({err}). Without a network, use the offline corpus "
            f"(load_corpus('python_docs')), or download {TINY_SHAKESPEARE_URL} yourself and save it as {path}."
        ) from err
    if hashlib.sha256(data).hexdigest() != TINY_SHAKESPEARE_SHA256:
        raise CorpusUnavailableError(
            f"The file downloaded from {TINY_SHAKESPEARE_URL} does not have the expected sha256; "
            "it was not saved. Try again later."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data.decode("utf-8")


CORPORA = {"python_docs": python_docs, "tiny_shakespeare": tiny_shakespeare}


def load_corpus(name: str = "python_docs") -> str:
    """A corpus by name: ``"python_docs"`` (offline, the default) or ``"tiny_shakespeare"``."""
    if name not in CORPORA:
        raise ValueError(f"Unknown corpus {name!r}; choose one of {sorted(CORPORA)}.")
    return CORPORA[name]()


class GPTDataset(Dataset):
    """Chunks of ``max_length`` tokens and the same chunks shifted by one token.

    The window starts every ``stride`` tokens. Target ``i`` is the token that follows
    input ``i``, so one chunk holds ``max_length`` next-token predictions.
    """

    def __init__(self, text: str | list[int] | torch.Tensor, tokenizer: tiktoken.Encoding | None = None, max_length: int = 256, stride: int = 128):
        if not isinstance(max_length, int) or max_length <= 0:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}.")
        if not isinstance(stride, int) or stride <= 0:
            raise ValueError(f"stride must be a positive int, got {stride!r}.")
        if isinstance(text, str):
            token_ids = torch.tensor(encode(text, tokenizer or get_tokenizer()), dtype=torch.long)
        else:
            token_ids = torch.as_tensor(text, dtype=torch.long)
        if token_ids.numel() < max_length + 1:
            raise ValueError(
                f"The text has {token_ids.numel()} tokens, too few for one window of max_length={max_length} "
                "plus its shifted target. Use more text or a smaller max_length."
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
        return chunk[:-1], chunk[1:]  # input, target: the same window shifted by one token


def create_dataloader(
    text: str | list[int] | torch.Tensor,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    seed: int | None = 123,
) -> DataLoader:
    """A DataLoader of (inputs, targets) batches, each of shape (batch_size, max_length).

    `seed` fixes the shuffling order, so two runs see the same batches.
    """
    dataset = GPTDataset(text, max_length=max_length, stride=stride)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers, generator=generator)


def train_val_split(text: str, train_ratio: float = 0.9) -> tuple[str, str]:
    """Split text at one point: the first `train_ratio` for training, the rest for validation."""
    if not 0.0 < train_ratio < 1.0:
        raise ValueError(f"train_ratio must be in (0, 1), got {train_ratio}.")
    cut = int(train_ratio * len(text))
    return text[:cut], text[cut:]
