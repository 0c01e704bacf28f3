"""Finished results kept on local disk while the database cannot take them.

A daemon whose results cannot be written (the database is down or unreachable)
keeps them in memory and appends them here, one JSON line each, in
<HIVE_WORKSPACE_ROOT>/var/results-<coordinator id>.jsonl. When the database is
back they are applied once, fenced like any result: only while the attempt still
holds its lease. The file is emptied as its results are applied, and a daemon
started after a crash applies the files its predecessors left (a file's owner
holds an advisory lock on it while it lives, so a live daemon's file is never
taken from it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from agents.runtimes import Outcome, RuntimeResult

logger = logging.getLogger(__name__)


def spool_dir() -> Path:
    return Path(settings.HIVE["WORKSPACE_ROOT"]) / "var"


def result_dump(result: RuntimeResult) -> dict:
    return result.as_dict()


def result_load(data: dict) -> RuntimeResult:
    return RuntimeResult(
        outcome=Outcome(data["outcome"]),
        summary=data.get("summary", ""),
        output=data.get("output", ""),
        artifacts=list(data.get("artifacts", [])),
        tokens_in=int(data.get("tokens_in", 0)),
        tokens_out=int(data.get("tokens_out", 0)),
        cost_usd=Decimal(data.get("cost_usd", "0")),
        simulated=bool(data.get("simulated", False)),
        duration_s=float(data.get("duration_s", 0.0)),
        error=data.get("error", ""),
        exit_code=data.get("exit_code"),
    )


class ResultSpool:
    """One daemon's spool file: results waiting for the database, keyed by (task, attempt)."""

    def __init__(self, coordinator_id: int, directory: Path | None = None):
        self.coordinator_id = coordinator_id
        self.path = (directory or spool_dir()) / f"results-{coordinator_id}.jsonl"
        self.waiting: dict[tuple[int, int], RuntimeResult] = {}
        self._file = None

    def keep(self, results: dict[tuple[int, int], RuntimeResult]) -> None:
        """Write these results to disk (those not there yet), flushed and synced before returning."""
        new = {key: result for key, result in results.items() if key not in self.waiting}
        if not new:
            return
        self.waiting.update(new)
        self._rewrite()
        logger.warning("Database unavailable: %d finished result(s) kept in %s", len(self.waiting), self.path)

    def applied(self, keys) -> None:
        """These results reached the database (applied or rejected by their fence): drop them from the file."""
        gone = [key for key in keys if key in self.waiting]
        if not gone:
            return
        for key in gone:
            del self.waiting[key]
        self._rewrite()
        if not self.waiting:
            logger.info("Kept results applied; %s removed", self.path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rewrite(self) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the daemon's life
            fcntl.flock(self._file, fcntl.LOCK_EX)
        if not self.waiting:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.close()
            return
        self._file.seek(0)
        self._file.truncate()
        for (task_id, attempt), result in self.waiting.items():
            line = {"coordinator": self.coordinator_id, "task": task_id, "attempt": attempt}
            self._file.write(json.dumps({**line, "result": result_dump(result)}) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())


def orphaned_spools(*, exclude: int, directory: Path | None = None):
    """Spool files no live daemon holds: yields (coordinator id, {(task, attempt): result}, release).

    The caller applies the results, then calls `release(outcome)`: "applied" removes
    the file, "failed" sets it aside as .failed (for an operator to read), "retry"
    keeps it for the next round. The file stays locked in between. A file that cannot
    be read is set aside as well, so one bad file never stops a daemon.
    """
    directory = directory or spool_dir()
    for path in sorted(directory.glob("results-*.jsonl")):
        try:
            coordinator_id = int(path.stem.split("-", 1)[1])
        except ValueError:
            continue
        if coordinator_id == exclude:
            continue
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed by release
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()  # its daemon is alive and owns it
            continue

        def release(outcome: str, path=path, handle=handle) -> None:
            if outcome == "applied":
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            elif outcome == "failed":
                path.rename(path.with_suffix(".failed"))
            handle.close()

        results = {}
        try:
            for line in handle:
                if line.strip():
                    data = json.loads(line)
                    results[(int(data["task"]), int(data["attempt"]))] = result_load(data["result"])
        except (ValueError, KeyError, TypeError):
            logger.exception("Kept results in %s cannot be read; set aside as .failed", path)
            release("failed")
            continue

        yield coordinator_id, results, release
