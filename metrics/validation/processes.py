"""The processes a validation run starts, and the guarantee that it ends every one of them.

Each child runs in its own process group (a new session), so a fault can hit exactly one
daemon and Ctrl-C in the terminal reaches only the command, which then ends them in order.
A daemon killed with SIGKILL cannot end its agents' programs (they run in sessions of their
own); they are recorded at the kill from /proc and ended when the run ends, should they
still be running then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/<pid>/stat): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every living descendant of `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[tuple[int, str]] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        started = _start_time(child)
        if started is not None:
            found.append((child, started))
        todo.extend(children.get(child, []))
    return found


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen | None = None
    started_at: float = 0.0

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Processes:
    """Starts children in their own process groups and ends them all, whatever happens."""

    cwd: Path
    children: list[Child] = field(default_factory=list)
    orphans: list[tuple[int, str]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, env: dict[str, str], log: Path) -> Child:
        child = Child(name=name, argv=argv, env=env, log=log)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            child.popen = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child.started_at = time.monotonic()
        self.children.append(child)
        return child

    def restart(self, child: Child, *, name: str | None = None) -> Child:
        return self.start(name or child.name, child.argv, env=child.env, log=child.log)

    def kill(self, child: Child) -> None:
        """SIGKILL to the child's group, as a crash would; its agents' programs are noted as orphans."""
        if not child.alive():
            return
        self.orphans.extend(descendants(child.pid))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.popen.wait()

    def signal(self, child: Child, signum: int) -> None:
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)

    def stop(self, child: Child, *, grace: float) -> int | None:
        """SIGTERM, then SIGKILL to the group after `grace` seconds. Returns the exit code."""
        if child.popen is None:
            return None
        if child.alive():
            self.signal(child, signal.SIGTERM)
            try:
                child.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0f s; killing it", child.name, grace)
                self.kill(child)
        # Whatever is left in its group (it should be nothing) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        return child.popen.returncode

    def end_all(self, *, grace: float = 15.0) -> None:
        """Stop every child still running (in reverse start order), then every recorded orphan."""
        for child in reversed(self.children):
            try:
                self.stop(child, grace=grace)
            except Exception:  # ending the others matters more than this one's error
                logger.exception("Could not stop %s (pid %s)", child.name, child.popen and child.popen.pid)
        for pid, started in self.orphans:
            if _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self.orphans.clear()

    def orphans_alive(self) -> int:
        return sum(1 for pid, started in self.orphans if _start_time(pid) == started)


def wait_until(predicate, *, timeout: float, interval: float = 0.2):
    """Poll `predicate` until it returns something truthy or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
