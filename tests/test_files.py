"""Atomic writes: the old file or the new one, never half; concurrent writers never collide."""

import os
import threading

import pytest

from gptcourse.files import temporary_pattern, write_atomically


def test_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "vocab.bin"
    path.write_bytes(b"old")
    write_atomically(path, lambda f: f.write(b"new contents"))
    assert path.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["vocab.bin"]
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others, as a plain write would leave it


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "vocab.bin"
    path.write_bytes(b"old")

    def half_then_disk_full(f):
        f.write(b"ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomically(path, half_then_disk_full)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["vocab.bin"]


def test_concurrent_writers_each_have_their_own_temporary_file(tmp_path):
    """Eight threads write the same file at once: each under its own unguessable name, and none fails."""
    path, n = tmp_path / "corpus.txt", 8
    barrier = threading.Barrier(n, timeout=30)
    temporaries, errors = [], []

    def writer(i):
        def write(f):
            barrier.wait()  # every writer has made its temporary file
            if i == 0:
                temporaries.extend(p.name for p in tmp_path.glob(temporary_pattern(path)))
            barrier.wait()  # and none renames it before they are counted
            f.write(f"writer {i}|".encode() * 1000)

        try:
            write_atomically(path, write)
        except Exception as err:  # collected: an exception in a thread would not fail the test
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(temporaries)) == n, temporaries
    assert os.listdir(tmp_path) == ["corpus.txt"]
    pieces = set(path.read_text().split("|")[:-1])
    assert len(pieces) == 1, "the file must be one writer's, whole, not a mix"
