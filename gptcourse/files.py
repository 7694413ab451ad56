"""Writing a file so that a crash never leaves half of it (chapters 1 and 7).

Every file the course keeps (vocabulary, corpus, checkpoint) is written under an
unguessable temporary name beside it, flushed, then renamed over the real name: a
rename within one directory is atomic, so a reader sees the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def temporary_pattern(path: str | Path) -> str:
    """The glob pattern of `write_atomically`'s temporary files (chapter 7)."""
    return f".{Path(path).name}.*.tmp"


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write `path` with ``write(file)``; killed at any moment, it is old or new.

    If `write` raises, the temporary file is removed; if the process is killed, it
    stays until someone removes the files matching `temporary_pattern`.
    Defined in chapter 7.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes reach the disk before the name does
        # mkstemp's owner-only 0o600 was for the temporary file: readable, like any file
        os.chmod(tmp, 0o644)
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
