"""Checkpoints: one unit, never lost to a crash, loaded without running code, clear errors."""

import io
import os
import signal

import pytest
import torch
from torch import nn

from gptcourse import GPT
from gptcourse.checkpoint import CHECKPOINT_FILE, CheckpointError, check_writable, has_checkpoint, load_checkpoint, save_checkpoint


def unit(step):
    """A model and an AdamW whose every number is `step`: a loaded part tells which save it came from."""
    model = nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(step)
    for moments in optimizer.state.values():
        moments["exp_avg"].fill_(step)
        moments["exp_avg_sq"].fill_(step)
    return model, optimizer


def numbers_in(model, optimizer):
    """Every value in the weights and in the optimizer's moments, as one set."""
    tensors = [*model.parameters(), *(m[k] for m in optimizer.state.values() for k in ("exp_avg", "exp_avg_sq"))]
    return set(torch.cat([t.flatten() for t in tensors]).tolist())


def test_round_trip_restores_weights_optimizer_scaler_and_state(tmp_path, tiny_config):
    model = GPT(tiny_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    optimizer.step()
    state = {"step": 7, "history": {"loss": [4.5, float("nan")], "samples": [(0, "The")]}, "rng": torch.get_rng_state()}
    path = save_checkpoint(tmp_path, model, optimizer, scaler, state)
    assert path == tmp_path / CHECKPOINT_FILE and os.listdir(tmp_path) == [CHECKPOINT_FILE]
    torch.load(path, weights_only=True)  # plain tensors and numbers: nothing that runs code

    fresh = GPT(tiny_config)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    fresh_scaler = torch.amp.GradScaler("cpu")
    loaded = load_checkpoint(tmp_path, fresh, fresh_optimizer, fresh_scaler)
    assert loaded["step"] == 7 and loaded["history"]["samples"] == [(0, "The")]
    torch.testing.assert_close(loaded["rng"], state["rng"])
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    assert fresh.out_head.weight is fresh.tok_emb.weight  # the tie survives
    assert str(fresh_optimizer.state_dict()) == str(optimizer.state_dict())
    assert fresh_scaler.get_scale() == 1024.0


# A save, killed at each of its moments. Each entry patches one step of the save so that the
# process gets SIGKILL there, as from `kill -9`, a power cut or the out-of-memory killer.
_real_save, _real_replace = torch.save, os.replace


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _first_bytes_then_die(obj, f):
    buffer = io.BytesIO()
    _real_save(obj, buffer)
    f.write(buffer.getvalue()[:200])
    f.flush()
    _die()


KILLS = {
    "before the first byte": ("torch.save", lambda obj, f: _die()),
    "after the first bytes": ("torch.save", _first_bytes_then_die),
    "before the flush to disk": ("os.fsync", lambda fd: _die()),
    "before the rename": ("os.replace", lambda src, dst: _die()),
    "after the rename": ("os.replace", lambda src, dst: (_real_replace(src, dst), _die())),
}


def _save_and_get_killed(directory, where, kill, monkeypatch):
    """Fork; the child saves checkpoint 2 and is killed at `where`; return how the child ended."""
    model, optimizer = unit(2)  # built before the fork: the child only saves
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        try:
            monkeypatch.setattr(where, kill)
            save_checkpoint(directory, model, optimizer, state={"step": 2})
        finally:
            os._exit(0)  # reached only if the kill did not happen
    _, status = os.waitpid(pid, 0)
    return status


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
@pytest.mark.parametrize("moment", KILLS)
def test_a_save_killed_at_any_moment_leaves_the_old_checkpoint_or_the_new(tmp_path, monkeypatch, moment):
    save_checkpoint(tmp_path, *unit(1), state={"step": 1})
    status = _save_and_get_killed(tmp_path, *KILLS[moment], monkeypatch)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the save was not killed {moment}"

    model, optimizer = unit(0)
    state = load_checkpoint(tmp_path, model, optimizer)
    expected = 2 if moment == "after the rename" else 1
    assert state["step"] == expected
    assert numbers_in(model, optimizer) == {expected}, "weights and optimizer state from different saves"

    leftovers = sorted(set(os.listdir(tmp_path)) - {CHECKPOINT_FILE})
    assert bool(leftovers) == (moment != "after the rename")  # a killed save leaves its temporary file ...
    save_checkpoint(tmp_path, *unit(3), state={"step": 3})
    assert os.listdir(tmp_path) == [CHECKPOINT_FILE]  # ... which the next save removes


def test_a_save_that_fails_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, *unit(1), state={"step": 1})

    def disk_full(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("torch.save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path, *unit(2), state={"step": 2})
    monkeypatch.undo()
    model, optimizer = unit(0)
    assert load_checkpoint(tmp_path, model, optimizer)["step"] == 1
    assert os.listdir(tmp_path) == [CHECKPOINT_FILE]


def _damage(path, how):
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 8)
    elif how == "text":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\n")  # a Git LFS pointer
    elif how == "pickled code":

        class Payload:
            def __reduce__(self):
                return (print, ("this ran while loading",))

        torch.save({"format": "x", "model": Payload()}, path)
    elif how == "another .pt file":
        torch.save({"weights": torch.ones(3)}, path)


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("empty", "it is empty"),
        ("truncated", "truncated or damaged"),
        ("garbage", "not a file written by torch.save"),
        ("text", "not a file written by torch.save"),
        ("pickled code", "could run code"),
        ("another .pt file", "not a checkpoint saved by gptcourse"),
    ],
)
def test_an_unreadable_file_is_a_clear_error_naming_it(tmp_path, how, says, capsys):
    save_checkpoint(tmp_path, *unit(1), state={"step": 1})
    _damage(tmp_path / CHECKPOINT_FILE, how)
    with pytest.raises(CheckpointError, match=says) as info:
        load_checkpoint(tmp_path, *unit(0))
    message = str(info.value)
    assert str(tmp_path / CHECKPOINT_FILE) in message
    assert "weights_only=False" not in message and info.value.__cause__ is None  # never advise unpickling it
    assert "this ran" not in capsys.readouterr().out


def test_missing_checkpoint_and_mismatches_are_named(tmp_path, tiny_config):
    assert not has_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"No checkpoint in {tmp_path}"):
        load_checkpoint(tmp_path, GPT(tiny_config))
    save_checkpoint(tmp_path, GPT(tiny_config))  # weights only
    assert has_checkpoint(tmp_path)
    wider = GPT(tiny_config.__class__(**{**tiny_config.to_dict(), "emb_dim": 64}))
    with pytest.raises(CheckpointError, match=r"(?s)checkpoint.pt does not fit .*size mismatch for tok_emb.weight.*and \d+ more"):
        load_checkpoint(tmp_path, wider)
    model = GPT(tiny_config)
    with pytest.raises(CheckpointError, match="holds no optimizer state, but an optimizer was given"):
        load_checkpoint(tmp_path, model, torch.optim.AdamW(model.parameters()))


def test_state_that_would_need_unpickling_is_refused_when_saving(tmp_path):
    with pytest.raises(TypeError, match=r"state\['history'\]\['when'\] is a date: a checkpoint holds only tensors"):
        import datetime

        save_checkpoint(tmp_path, nn.Linear(2, 2), state={"history": {"when": datetime.date.today()}})
    assert not has_checkpoint(tmp_path)


def test_check_writable_creates_the_directory_or_says_why_not(tmp_path):
    assert check_writable(tmp_path / "runs" / "a") == tmp_path / "runs" / "a" and (tmp_path / "runs" / "a").is_dir()
    (tmp_path / "notes.txt").write_text("a file, not a directory")
    with pytest.raises(ValueError, match=r"checkpoint_dir='.*notes.txt/run' is not a directory files can be written to \(Not a directory\)"):
        check_writable(tmp_path / "notes.txt" / "run", "checkpoint_dir")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories anyway")
def test_check_writable_refuses_a_read_only_directory(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="Permission denied"):
            check_writable(tmp_path, "checkpoint_dir")
    finally:
        tmp_path.chmod(0o700)
