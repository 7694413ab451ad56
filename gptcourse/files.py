"""Writing a file so that a crash never leaves half of it (chapters 1 and 7).

A file written in place and interrupted (a crash, a kill, a full disk) is left half
written, and the next reader takes it for whole. So every file the course keeps (the
tokenizer's vocabulary, a downloaded corpus, a checkpoint) is written the same way: under
a temporary name nobody can guess, in the same directory; flushed to the disk; then
renamed over the real name. A rename within one directory is atomic (``os.replace``):
a reader sees the old file or the new one, never a mix. Two processes writing the same
file at once each write their own temporary file, and the last rename wins.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def temporary_pattern(path: str | Path) -> str:
    """The glob pattern of `write_atomically`'s temporary files for `path` (chapter 7)."""
    return f".{Path(path).name}.*.tmp"


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write `path` with ``write(file)``: killed at any moment, `path` is the old file or the new one.

    The temporary file is made by ``tempfile.mkstemp`` (an unpredictable name, created
    exclusively, readable by its owner only) beside `path`. If `write` raises, it is
    removed; if the process is killed, it stays until someone removes the files that match
    `temporary_pattern`. Defined in chapter 7.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes reach the disk before the name points at them
        os.chmod(tmp, 0o644)  # mkstemp's owner-only 0o600 was for the temporary file: readable, like any file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)  # and the rename itself survives a power cut
    return path


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":  # Windows cannot open a directory; its renames are journaled
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
