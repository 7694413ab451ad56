"""The walls the grader puts around a submission's kernel and checker (Linux): what they may touch.

Three pieces, one purpose: confine code the grader did not write.

* `scrubbed_env`: the environment a submission runs with. An allowlist, never the grader's
  own environment, so no token, key or password set in the grader's shell reaches it.
* Landlock (`landlock_abi`, `confine`, and `python grade_sandbox.py ... -- COMMAND`): the
  process and everything it starts may read only the system, Python and the package copy,
  write only its own directory, open no TCP connection (Landlock ABI >= 4) and signal or reach
  no process outside itself (ABI >= 6). Landlock is an unprivileged Linux feature (5.13+).
  Python has no well-kept binding for it (PyPI's `landlock` is a 1.0.0 development release),
  so the three system calls are made here through ctypes, as the kernel's documentation
  describes them (Documentation/userspace-api/landlock.rst).
* `become_subreaper` and `kill_descendants`: every process a submission starts, even one that
  left its session or was forked twice, is re-parented to the grader's worker rather than to
  init, so the worker can find and kill all of them before any result is written.

Without Landlock (macOS, kernels before 5.13) `confine` does nothing and the grader says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import time
from pathlib import Path

# System calls and constants from <linux/landlock.h>, <linux/prctl.h>; the same numbers on
# every architecture (the generic system-call table).
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 4, 38, 36
PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
WRITES_V1 = sum(1 << b for b in range(1, 13)) & ~(READ_FILE | READ_DIR)  # remove, make dir/file/socket/fifo/device/symlink
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
READ = EXECUTE | READ_FILE | READ_DIR

# What Python, the venv, PyTorch and IPython read, beside the package copy and the workdir.
SYSTEM_READ = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys", "/dev"]
DEVICES_WRITE = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/shm", "/dev/pts"]
# The grader's variables a submission may see; all else (secrets included) stays behind.
ENV_ALLOWED = ["PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "MPLBACKEND", "PYTHONHASHSEED", "SOURCE_DATE_EPOCH"]  # fmt: skip


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the header
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(option: int, value: int) -> bool:
    return sys.platform == "linux" and _libc().prctl(option, value, 0, 0, 0) == 0


def landlock_abi() -> int:
    """The running kernel's Landlock ABI version; 0 where there is none (not Linux, too old, disabled)."""
    if sys.platform != "linux":
        return 0
    abi = _libc().syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(abi, 0)


def scrubbed_env(home: Path, pkg: Path) -> dict[str, str]:
    """The environment of a submission's processes: the allowlist, and its own home, temp and config folders."""
    env = {k: os.environ[k] for k in ENV_ALLOWED if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    env.setdefault("LANG", "C.UTF-8")
    dirs = {"HOME": "", "TMPDIR": "tmp", "MPLCONFIGDIR": "mpl", "IPYTHONDIR": "ipython", "XDG_CACHE_HOME": "cache",
            "XDG_CONFIG_HOME": "config", "JUPYTER_CONFIG_DIR": "jupyter", "JUPYTER_DATA_DIR": "jupyter", "JUPYTER_RUNTIME_DIR": "jupyter"}  # fmt: skip
    for key, sub in dirs.items():
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[key] = str(home / sub)
    # The package copy first on the path: `import gptcourse` finds it, never the repository's.
    env.update(PYTHONPATH=str(pkg), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    return env


def python_dirs() -> list[str]:
    """Where this Python and its packages live (a venv, its base installation, what they link to)."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    dirs |= {p for p in sys.path if p.endswith("-packages") and os.path.isdir(p)}
    return sorted(dirs)


def confine(read: list[str], write: list[str], bind_ports: tuple[int, ...] = (), tcp: bool = False) -> int:
    """Landlock this process and all it will start: read `read`, write `write`, bind only `bind_ports`.

    `tcp`: leave TCP alone (bind and connect anywhere), for a chapter whose processes talk over
    TCP on this machine (torchrun's store, gloo's pairs use ports chosen at run time, which
    Landlock's per-port rules cannot name); files and signals stay walled in.

    Returns the ABI used, 0 when Landlock is missing (nothing is enforced then). Paths that do
    not exist are skipped. Raises OSError if Landlock exists but refuses the rules.
    """
    abi = landlock_abi()
    if abi == 0:
        return 0
    libc = _libc()
    writes = WRITES_V1 | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0) | (IOCTL_DEV if abi >= 5 else 0)
    attr = _RulesetAttr(READ | writes, (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 and not tcp else 0, (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)  # older kernels refuse fields they do not know
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        for paths, access in ((read, READ), (write, READ | writes)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    allowed = access if os.path.isdir(path) else access & (EXECUTE | READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV)
                    rule = _PathBeneathAttr(allowed, fd)
                    if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}: {os.strerror(ctypes.get_errno())}")
                finally:
                    os.close(fd)
        for port in bind_ports if abi >= 4 and not tcp else ():
            rule = _NetPortAttr(NET_BIND_TCP, port)
            if libc.syscall(SYS_ADD_RULE, ruleset, RULE_NET_PORT, ctypes.byref(rule), 0) != 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule port {port}: {os.strerror(ctypes.get_errno())}")
        drop_capabilities()
        if not _prctl(PR_SET_NO_NEW_PRIVS, 1) or libc.syscall(SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    return abi


def drop_capabilities() -> None:
    """A grader run as root would hand its kernels root's capabilities, which read any process's
    /proc/<pid>/environ (the grader's secrets) whatever Landlock says. Emptied here, they stay
    empty across exec: a root kernel is then root without privileges. Nothing to do otherwise."""
    libc = _libc()
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:  # EINVAL past the last capability; EPERM without CAP_SETPCAP
            break


def become_subreaper() -> bool:
    """Orphans among this process's descendants come to it, not to init. Also: not readable by
    the same user's other processes (/proc/<pid>/environ, memory), so a submission cannot read
    the grader's secrets there. False where Linux is not."""
    _prctl(PR_SET_DUMPABLE, 0)
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _stat(pid: int) -> tuple[int, str, int, int] | None:
    """(parent, state, process group, session) of `pid`, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (command name)"
    return int(fields[1]), fields[0], int(fields[2]), int(fields[3])


def descendants(root: int | None = None) -> dict[int, tuple[int, str, int, int]]:
    """Every live process below `root` (default: this one): {pid: (parent, state, group, session)}."""
    root = os.getpid() if root is None else root
    table = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p)))}
    found, frontier = {}, {root}
    while frontier:
        frontier = {pid for pid, s in table.items() if s[0] in frontier and pid not in found}
        found.update({pid: table[pid] for pid in frontier})
    return {pid: s for pid, s in found.items() if s[1] not in "ZX"}


def reap() -> None:
    """Collect the exit status of finished children (orphans re-parented to us included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants(rounds: int = 50) -> list[int]:
    """SIGKILL every descendant until none is left (a fork in flight is caught on a later round).

    Returns the pids killed. Where /proc is missing (macOS) nothing can be walked: returns [].
    """
    if not os.path.isdir("/proc"):
        return []
    killed: list[int] = []
    for _ in range(rounds):
        reap()
        alive = descendants()
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    reap()
    return killed


def main(argv: list[str]) -> None:
    """`python grade_sandbox.py --read P... --write P... --bind N... [--tcp] -- COMMAND...`: confine, then exec COMMAND."""
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    lists: dict[str, list[str]] = {"--read": [], "--write": [], "--bind": []}
    key = None
    for word in options:
        if word == "--tcp":
            key = None
        elif word in lists:
            key = word
        elif key:
            lists[key].append(word)
    confine(lists["--read"], lists["--write"], tuple(int(p) for p in lists["--bind"]), tcp="--tcp" in options)
    os.execv(command[0], command)  # the rules hold across exec and for every child


if __name__ == "__main__":
    main(sys.argv[1:])
