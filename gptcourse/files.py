"""Files written so that a crash never leaves half of one, and read back (ch. 1, 7, 8).

Each file (vocabulary, corpus, checkpoint) is written under an unguessable temporary
name beside it, flushed, renamed over the real name: the old file or the new one. A
writer locks its temporary file, so that `remove_stale_temporaries` removes a killed
writer's, never a live one's. A Hugging Face checkpoint's two files are read back so
that a damaged, mixed, foreign or escaping one is a `CheckpointError`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

try:
    import fcntl
except ImportError:  # Windows: no flock; stale temporaries are told by their age
    fcntl = None

# Where locks are unavailable, a temporary file this old is taken to be a killed
# writer's: no save of the course's files takes a day.
STALE_AFTER_S = 24 * 3600
# What a directory argument must not look like: the name of a checkpoint *file*.
FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
# Where `write_hf_checkpoint` keeps a copy of config.json inside model.safetensors's
# metadata, so that a config.json from another save is caught on loading.
CONFIG_METADATA_KEY = "gptcourse_config"
# The loader of each model_type gptcourse reads, for the error that names it.
LOADERS = {
    "gpt2": "GPT.from_hf_checkpoint(path) (from gptcourse import GPT)",
    "llama": "gptcourse.llama.from_hf_checkpoint(path) (or Llama.from_hf_checkpoint)",
}


def temporary_pattern(path: str | Path) -> str:
    """The glob pattern of `write_atomically`'s temporary files (chapter 7)."""
    return f".{Path(path).name}.*.tmp"


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    # os.umask can only be read by setting it; set-and-restore is process-wide, so a
    # thread creating a file in between would get the wrong mode. Linux (4.7+) shows
    # it in /proc/self/status; elsewhere set-and-restore is the only way.
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _locked_temporary(path: Path) -> tuple[int, str]:
    """A new temporary file beside `path`, open and locked: (fd, name)."""
    while True:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks (some network mounts)
            return fd, tmp  # unlocked: cleaners go by its age
        # Between mkstemp and flock a cleaner may have found it unlocked and removed
        # it: then the name is gone (or another file's), and we start again.
        with contextlib.suppress(OSError):
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, tmp
        os.close(fd)


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write `path` with ``write(file)``; killed at any moment, it is old or new.

    The file gets the mode a plain ``open(path, "wb")`` would give (0o666 less the
    umask). If `write` raises, the temporary file is removed; if the process is
    killed, it stays until `remove_stale_temporaries` (or anyone removing the files
    matching `temporary_pattern`) removes it. Defined in chapter 7.
    """
    path = Path(path)
    fd, tmp = _locked_temporary(path)
    f = os.fdopen(fd, "wb")
    try:
        try:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes reach the disk before the name does
            # mkstemp's owner-only 0o600 was for the temporary file: the real one gets
            # what open() would give, so a private umask (0o077) keeps a run private
            os.chmod(tmp, 0o666 & ~current_umask())
            if fcntl is None:
                f.close()  # Windows renames no open file (and has no lock to keep)
            # Still locked: a cleaner cannot take it for a killed writer's file
            os.replace(tmp, path)
        finally:
            f.close()  # which releases the lock
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)  # and the rename itself survives a power cut
    return path


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files killed writers of `path` left; return them.

    A live writer's file is locked and stays (where locks are unavailable, only files
    older than `STALE_AFTER_S` go): two processes saving into one directory never
    delete each other's work. Defined in chapter 7.
    """
    path = Path(path)
    return [tmp for tmp in path.parent.glob(temporary_pattern(path)) if _remove(tmp)]


def _remove(tmp: Path) -> bool:
    """Remove `tmp` if no writer holds it; True if removed."""
    if fcntl is None:
        return _remove_if_old(tmp)
    try:
        fd = os.open(tmp, os.O_RDONLY)
    except OSError:  # renamed by its writer, or removed, since the glob
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # locked: its writer is alive
            return False
        except OSError:  # a file system without locks: only its age tells
            return _remove_if_old(tmp)
        # Removed while we hold the lock, and only if the name is still this file's:
        # a writer that made it but had not locked it yet sees its name gone and
        # starts again (`_locked_temporary`)
        with contextlib.suppress(OSError):
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                os.unlink(tmp)
                return True
        return False
    finally:
        os.close(fd)  # releases our lock


def _remove_if_old(tmp: Path) -> bool:
    with contextlib.suppress(OSError):
        if time.time() - tmp.stat().st_mtime > STALE_AFTER_S:
            tmp.unlink()
            return True
    return False


def check_writable(
    directory: str | Path, name: str = "directory", alternative: str = ""
) -> Path:
    """Create `directory` if needed; make sure files can be written there (chapter 7).

    `train` calls it before its first step, so that a run that cannot save fails at
    once, not after hours. `name` is the parameter the error names; `alternative`,
    what else the caller accepts (", or None ..."). A file's name ("model.pt") is
    refused (`check_directory_argument`), not made a directory.
    """
    directory = check_directory_argument(directory, name)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        why = err.strerror or str(err)
        if isinstance(err, FileExistsError) or directory.is_file():
            why = "it is a file"
        raise ValueError(
            f"{name}={str(directory)!r} is not a directory files can be written to "
            f"({why}). "
            f"Choose a writable directory (it is created if missing){alternative}."
        ) from err
    return directory


def check_directory_argument(directory: str | Path, name: str = "directory") -> Path:
    """Refuse a file's name where a directory is meant (chapters 7 and 8).

    ``save_checkpoint("model.pt", ...)`` would otherwise make a *directory* named
    model.pt; a path ending in .pt, .pth, .bin, .ckpt or .safetensors must already be
    a directory.
    """
    directory = Path(directory)
    if directory.suffix.lower() in FILE_SUFFIXES and not directory.is_dir():
        raise ValueError(
            f"{name}={str(directory)!r} looks like a file name, but it is the "
            "directory the files are saved into: pass a directory, e.g. "
            f"{str(directory.with_suffix(''))!r}."
        )
    return directory


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":  # Windows cannot open a directory; its renames are journaled
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------- Hugging Face checkpoints: config.json and safetensors


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model (chapter 8)."""


def check_model_type(hf_config: Mapping[str, Any], expected: str) -> None:
    """Refuse a config.json of another `model_type`, naming its loader (ch. 8; app. B).

    A config.json without model_type is taken to be `expected`'s.
    """
    found = hf_config.get("model_type", expected)
    if found == expected:
        return
    if found in LOADERS:
        what = {"gpt2": "GPT-2", "llama": "a Llama"}[expected]
        fix = f"load it with {LOADERS[found]}"
    else:
        what = f"model_type {expected!r}"
        fix = "gptcourse loads " + " and ".join(
            f"model_type {name!r} (with {loader})" for name, loader in LOADERS.items()
        )
    raise CheckpointError(
        f"This is a {found!r} checkpoint (config.json's model_type), not {what}: {fix}."
    )


def hf_int(hf_config: Mapping[str, Any], key: str) -> int:
    """config.json's `key`, which must be a positive int (chapter 8; appendix B)."""
    value = hf_config[key]
    if isinstance(value, bool) or not isinstance(value, int):
        example = 64
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            number = float(value)  # "64" or 64.0: the same number, written as an int
            if not isinstance(value, bool) and number % 1 == 0 and number > 0:
                example = int(number)
        raise CheckpointError(
            f"{key}={value!r} is {_json_type(value)}, not an int: config.json must "
            f"give {key} as a whole number, without quotes (e.g. {example})."
        )
    if value <= 0:
        raise CheckpointError(
            f"{key}={value} is not positive: config.json must give {key} as a "
            "positive whole number."
        )
    return value


def hf_number(hf_config: Mapping[str, Any], key: str, default: float) -> float:
    """config.json's `key` (or `default`), a finite number > 0 (ch. 8; appendix B)."""
    value = hf_config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(
            f"{key}={value!r} is {_json_type(value)}, not a number: config.json must "
            f"give {key} as a number, without quotes (e.g. {default!r})."
        )
    if not (math.isfinite(value) and value > 0):
        raise CheckpointError(
            f"{key}={value} is not a positive finite number: config.json must give "
            f"{key} as one (e.g. {default!r})."
        )
    return float(value)


def _json_type(value: Any) -> str:
    """What `value` is, in config.json's words: "a string", "null", ..."""
    names = {str: "a string", bool: "a boolean", float: "a float", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def read_json(file: Path) -> dict[str, Any]:
    """A JSON file as a dict: invalid JSON, or not a dict, is a `CheckpointError`."""
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{file} is not valid JSON ({err}): download or save it again."
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{file} holds a JSON {type(data).__name__}, not an object of settings "
            "({...}): download or save it again."
        )
    return data


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, or directory, sharded or not (chapter 8).

    A directory's ``model.safetensors`` written by `write_hf_checkpoint` must have
    been saved with the ``config.json`` beside it: else `CheckpointError`.
    """
    path = Path(path)
    if path.is_file():
        return _load_safetensors(path)
    index = path / "model.safetensors.index.json"
    if index.exists():  # a sharded checkpoint: the index maps each tensor to its shard
        tensors: dict[str, torch.Tensor] = {}
        for shard in _shards(index):
            tensors.update(_load_safetensors(path / shard))
        return tensors
    if not (path / "model.safetensors").exists():
        found = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        hint = (
            " (a pytorch_model.bin is a pickle, which we do not load: "
            "save the model as safetensors instead)"
            if "pytorch_model.bin" in found
            else ""
        )
        raise FileNotFoundError(
            f"No model.safetensors in {path}; it holds {found}{hint}."
        )
    check_same_save(path / "config.json", path / "model.safetensors")
    return _load_safetensors(path / "model.safetensors")


def _shards(index: Path) -> list[str]:
    """The shard files `index` names, each a file of its directory (none outside)."""
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(
            f"{index} has no weight_map (the table of which shard file holds each "
            "tensor): it is damaged or not a safetensors index. Download the "
            "checkpoint again."
        )
    for shard in set(weight_map.values()):
        # Lexical, not resolved: the hub's cache links every file to a blob elsewhere
        outside = not isinstance(shard, str) or shard in ("", ".") or any(
            p.is_absolute() or p.drive or ".." in p.parts
            for p in (PurePosixPath(shard), PureWindowsPath(shard))
        )
        if outside:
            raise CheckpointError(
                f"{index} names the shard {shard!r}, which is not a file inside "
                f"{index.parent}: weights are loaded only from the checkpoint's own "
                "directory. Download the checkpoint again, or fix the index to name "
                "files beside it (e.g. 'model-00001-of-00002.safetensors')."
            )
    return sorted(set(weight_map.values()))


def check_same_save(config_file: Path, file: Path) -> None:
    """Refuse a ``config.json`` from another save than `file`'s weights (chapter 8).

    `write_hf_checkpoint` copies the config into the safetensors metadata; a save
    killed between its two files leaves one save's config beside another's weights,
    and this tells. Files without the copy (the hub's) are not checked.
    """
    if not (config_file.is_file() and file.is_file()):
        return
    try:
        with safe_open(file, framework="pt") as f:
            saved = (f.metadata() or {}).get(CONFIG_METADATA_KEY)
    except (SafetensorError, OSError):
        return  # unreadable: _load_safetensors says why
    if saved is None:
        return
    config = read_json(config_file)
    try:
        saved = json.loads(saved)
    except json.JSONDecodeError:
        saved = None
    if saved == config:
        return
    differ = sorted(
        set(saved) ^ set(config)
        | {k for k in set(saved) & set(config) if saved[k] != config[k]}
        if isinstance(saved, dict)
        else []
    )
    detail = f" (they differ in {', '.join(differ[:5])})" if differ else ""
    raise CheckpointError(
        f"{config_file} and {file} come from different saves{detail}: the weights "
        "were saved with another config.json (a save killed between its two files, "
        "or config.json edited by hand). Save the model again, or restore both "
        "files from one copy."
    )


def _load_safetensors(file: Path) -> dict[str, torch.Tensor]:
    if file.stat().st_size == 0:
        raise CheckpointError(
            f"{file} is empty (0 bytes): an interrupted download or save. "
            "Download or save it again."
        )
    try:
        return load_file(file)
    except SafetensorError as err:
        raise CheckpointError(
            f"{file} is not a readable safetensors file ({err}): it is truncated or "
            "not a checkpoint. Download or save it again."
        ) from None


def write_hf_checkpoint(
    directory: str | Path, hf_config: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into `directory` (chapter 8).

    Each file is replaced atomically (`write_atomically`), the weights first. Killed
    between the two, the directory holds the new weights beside the old config: the
    weights carry a copy of their config in their metadata, so `read_tensors` refuses
    such a pair. Temporary files of killed saves are removed; live saves' are kept.
    """
    directory = check_writable(directory)  # and not named like a file
    config_text = json.dumps(hf_config, indent=2)
    metadata = {"format": "pt", CONFIG_METADATA_KEY: json.dumps(hf_config)}
    for name in ("model.safetensors", "config.json"):
        remove_stale_temporaries(directory / name)
    # safetensors writes only to a path by name: its bytes go through memory instead
    data = safetensors_bytes(tensors, metadata=metadata)
    write_atomically(directory / "model.safetensors", lambda f: f.write(data))
    write_atomically(directory / "config.json", lambda f: f.write(config_text.encode()))
    return directory
