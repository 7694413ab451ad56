"""Checkpoints: a training run saved as one unit, so a crash never loses it (chapter 7).

    save_checkpoint("runs/nano", model, optimizer, scaler, state={"step": 100})
    state = load_checkpoint("runs/nano", model, optimizer, scaler)   # {"step": 100}

One file, written atomically (two could be caught half-way), of tensors, numbers,
strings and containers of them: ``torch.load(weights_only=True)`` runs no code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

# CheckpointError: one error for an unusable file, ours or a Hugging Face checkpoint
from .files import (
    CheckpointError,
    check_writable,
    remove_stale_temporaries,
    write_atomically,
)

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "gptcourse-checkpoint-1"  # so that any other .pt file is known not to be ours
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)

__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointError",
    "check_writable",
    "checkpoint_path",
    "has_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]


def checkpoint_path(directory: str | Path) -> Path:
    """The checkpoint file of `directory` (chapter 7)."""
    return Path(directory) / CHECKPOINT_FILE


def has_checkpoint(directory: str | Path) -> bool:
    """True if `directory` holds a checkpoint, readable or not (chapter 7)."""
    return checkpoint_path(directory).is_file()


def _check_plain(value: Any, where: str) -> None:
    """Raise unless ``torch.load(weights_only=True)`` can read `value` back."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, f"{where} key {key!r}")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(
            f"{where} is a {type(value).__name__}: a checkpoint holds only tensors, "
            "numbers, strings, and lists, tuples and dicts of them (so that it loads "
            "without running code). Convert it first."
        )


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    state: dict[str, Any] | None = None,
) -> Path:
    """Save the weights, the optimizer's and scaler's states and `state` as one file.

    Returns ``directory/checkpoint.pt``, replaced in one atomic step. The tied output
    head shares the token embedding's tensor: it is stored once. A `directory` that
    cannot be written, or named like a file ("model.pt"), is a ValueError. Defined in
    chapter 7.
    """
    state = {} if state is None else state
    _check_plain(state, "state")
    directory = check_writable(directory)  # and not named like a file ("model.pt")
    path = checkpoint_path(directory)
    remove_stale_temporaries(path)  # left by saves that were killed; not live ones
    checkpoint = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "state": state,
    }
    return write_atomically(path, lambda f: torch.save(checkpoint, f))


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    """The error for a file torch.load refuses: says why, never advises unpickling."""
    size = path.stat().st_size
    with path.open("rb") as f:
        magic = f.read(4)
    if size == 0:
        why = "it is empty"
    elif magic != b"PK\x03\x04":  # torch.save writes a zip archive
        why = "it is not a file written by torch.save"
    elif "weights_only" in str(err) or "Unpickl" in type(err).__name__:
        why = (
            "it holds Python objects other than tensors and numbers, "
            "which could run code when loaded"
        )
    else:  # the zip archive lost its end: a copy or a save cut short
        first_sentence = re.split(r"(?<=\.) ", str(err), maxsplit=1)[0]
        why = f"it is truncated or damaged ({first_sentence})"
    return CheckpointError(
        f"Cannot read the checkpoint {path} ({size:,} bytes): {why}. "
        "Resume from another copy, or train from the start. A checkpoint written by "
        "gptcourse is replaced in one step, so a crash during a save does not do this."
    )


def load_checkpoint(
    directory: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    """Load a checkpoint into `model`, `optimizer` and `scaler`; return its `state`.

    Read with ``torch.load(weights_only=True)`` only. A missing, empty, truncated or
    foreign file, or one that does not fit the model, is a clear error that names the
    file; so is the checkpoint file given instead of its directory. Defined in
    chapter 7.
    """
    path = checkpoint_path(directory)
    if Path(directory).is_file():  # the checkpoint file itself, most likely
        raise ValueError(
            f"directory={str(directory)!r} is a file, not a directory: pass the "
            f"directory that holds {CHECKPOINT_FILE}, e.g. "
            f"load_checkpoint({str(Path(directory).parent)!r}, ...)."
        )
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint in {directory}: {path} does not exist.")
    try:
        # The optimizer moves its state to the parameters' device itself; random
        # states must stay on the CPU.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # every way a file can be unreadable: one kind of error
        # torch's message would advise weights_only=False
        raise _unreadable(path, err) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a checkpoint saved by "
            "gptcourse.checkpoint.save_checkpoint."
        )
    for part, target in (("optimizer", optimizer), ("scaler", scaler)):
        if target is not None and checkpoint[part] is None:
            raise CheckpointError(
                f"{path} holds no {part} state, "
                f"but an {part} was given to load it into."
            )
    try:
        model.load_state_dict(checkpoint["model"])  # strict: a bad tensor is named
        if optimizer is not None:
            optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        # torch lists every mismatched tensor: the first few say enough
        lines = str(err).splitlines()
        more = f"\n\t... and {len(lines) - 4} more" if len(lines) > 4 else ""
        raise CheckpointError(
            f"{path} does not fit the model or optimizer given: "
            + "\n".join(lines[:4])
            + more
        ) from err
    if scaler is not None:
        scaler.load_state_dict(checkpoint["scaler"])
    return checkpoint["state"]
