"""Processes a runtime starts: their own process group, killed as a whole, dying with the daemon.

A child runs in a new process group (so cancel, timeout and reclaim stop its whole tree) and, on Linux,
with PR_SET_PDEATHSIG(SIGKILL), so it cannot outlive the daemon thread that started it.
Its environment carries an attempt marker, so a recorded group is only killed while it still runs that attempt.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .base import omitted_marker

POLL_INTERVAL_S = 0.05
KILL_GRACE_S = 2.0
PIPE_DRAIN_S = 2.0
READ_CHUNK = 65536
# In the child's environment: which attempt it works for, checked before a recorded group is killed.
ATTEMPT_MARKER_ENV = "HIVE_ATTEMPT_MARKER"
PR_SET_PDEATHSIG = 1
PROC = Path("/proc")


def attempt_marker(*, task_id: int, attempt: int) -> str:
    return f"{task_id}-{attempt}"


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return libc.prctl


# looked up once in the parent: the child, between fork and exec, only makes the call
_PRCTL = _load_prctl()


# The group's leader when the death signal is available: a shell that runs the program in the background and,
# when its parent dies (PR_SET_PDEATHSIG delivers SIGUSR1), kills the whole group. The death signal alone
# would reach only the leader; grandchildren (`sh -c "sleep 5; git commit"`) would live on.
FENCE_SCRIPT = 'trap "kill -9 0" USR1; "$@" & child=$!; wait "$child"; exit $?'
FENCE_SHELL = "/bin/sh"


def _die_with_parent(parent_pid: int, *, signum: int) -> Callable[[], None] | None:
    """A preexec function: signal this child when the thread that started it dies (Linux only)."""
    if _PRCTL is None:
        return None
    prctl = _PRCTL

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        # the parent may have died before prctl took effect; then nobody would signal us
        if os.getppid() != parent_pid:
            os._exit(137)

    return preexec


def popen_fenced(argv: list[str], **kwargs: Any) -> subprocess.Popen:
    """Start `argv` in its own process group, which dies with the daemon (Linux).

    The leader is a small shell that kills the whole group when the daemon's starting *thread* exits
    (PR_SET_PDEATHSIG): start from a thread that waits for the child. A missing or non-executable
    program raises FileNotFoundError or PermissionError here, as Popen does.
    """
    preexec = _die_with_parent(os.getpid(), signum=signal.SIGUSR1)
    if preexec is None or not os.access(FENCE_SHELL, os.X_OK):
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, process_group=0, **kwargs)
    _check_executable(argv[0], env=kwargs.get("env"), cwd=kwargs.get("cwd"))
    return subprocess.Popen(
        [FENCE_SHELL, "-c", FENCE_SCRIPT, "hive-fence", *argv],
        stdin=subprocess.DEVNULL,
        process_group=0,
        preexec_fn=preexec,
        **kwargs,
    )


def _check_executable(program: str, *, env: dict | None, cwd: str | None) -> None:
    if "/" in program:
        path = program if os.path.isabs(program) else os.path.join(cwd or os.getcwd(), program)
    else:
        search = (env if env is not None else os.environ).get("PATH", os.defpath)
        path = shutil.which(program, path=search) or ""
    if not path or not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", program)
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise PermissionError(13, "Permission denied", program)


def kill_process_group(*, pgid: int, marker: str) -> bool:
    """SIGKILL the group `pgid` if one of its processes still carries `marker`; True when it was killed.

    Process ids are reused: the marker in /proc/<pid>/environ is what proves the group is still that attempt's.
    """
    if pgid <= 1 or pgid == os.getpgrp():
        return False
    wanted = f"{ATTEMPT_MARKER_ENV}={marker}".encode()
    for pid in _group_members(pgid=pgid):
        try:
            environ = (PROC / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            signal_group(pgid=pgid, signum=signal.SIGKILL)
            return True
    return False


def _group_members(*, pgid: int) -> list[int]:
    """Processes whose group is `pgid` (the leader first: it may be the only one left, or gone)."""
    members = [pgid]
    if not PROC.is_dir():
        return members
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == pgid:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces: fields start after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members


class BoundedCapture:
    """Keeps the first and last bytes of a stream, so memory stays bounded whatever the child prints."""

    def __init__(self, *, limit: int):
        self._head_limit = limit // 2
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_size = 0
        self._total = 0
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._total += len(data)
            room = self._head_limit - len(self._head)
            if room > 0:
                self._head += data[:room]
                data = data[room:]
            if data:
                self._tail.append(data)
                self._tail_size += len(data)
                # drop whole chunks only; the final trim happens once in text()
                while self._tail_size - len(self._tail[0]) >= self._tail_limit:
                    self._tail_size -= len(self._tail.popleft())

    def text(self) -> str:
        with self._lock:
            tail = b"".join(self._tail)[-self._tail_limit :] if self._tail_limit else b""
            head = bytes(self._head)
            omitted = self._total - len(head) - len(tail)
        decoded_head = head.decode("utf-8", errors="replace")
        decoded_tail = tail.decode("utf-8", errors="replace")
        if omitted:
            return decoded_head + omitted_marker(count=omitted) + decoded_tail
        return decoded_head + decoded_tail


def start_reader(*, pipe: IO[bytes], sinks: tuple[BoundedCapture, ...]) -> threading.Thread:
    def pump() -> None:
        with pipe:
            while chunk := pipe.read1(READ_CHUNK):
                for sink in sinks:
                    sink.write(chunk)

    reader = threading.Thread(target=pump, name="hive-command-reader", daemon=True)
    reader.start()
    return reader


def wait_or_stop(*, proc: subprocess.Popen, cancel: threading.Event | None, timeout: float) -> str:
    """Wait for the child; on timeout or cancel kill its process group and say why."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            proc.wait(timeout=POLL_INTERVAL_S)
            return ""
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            reason = "cancelled"
        elif time.monotonic() >= deadline:
            reason = f"timed out after {timeout:g} s"
        else:
            continue
        kill_group(proc=proc)
        return reason


def kill_group(*, proc: subprocess.Popen) -> None:
    """SIGTERM the whole group, give it a short grace, then SIGKILL whatever is left."""
    signal_group(pgid=proc.pid, signum=signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)
    # grandchildren may outlive the direct child; wait for them within the same grace
    while group_alive(pgid=proc.pid) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    signal_group(pgid=proc.pid, signum=signal.SIGKILL)
    proc.wait()


def drain(*, proc: subprocess.Popen, readers: list[threading.Thread]) -> None:
    """Finish reading output; descendants still holding the pipes open are killed."""
    deadline = time.monotonic() + PIPE_DRAIN_S
    for reader in readers:
        reader.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(reader.is_alive() for reader in readers):
        signal_group(pgid=proc.pid, signum=signal.SIGKILL)
        for reader in readers:
            reader.join(timeout=PIPE_DRAIN_S)


def signal_group(*, pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def group_alive(*, pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
