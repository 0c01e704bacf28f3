"""A real WebSocket client of the live feed, run in a thread while the crew works.

It connects to daphne like any client (a token in the `Authorization` header), asks for a
replay from the start of the session (`?after=0`), and on every drop reconnects with the
last id it saw, as the console does. At the end the ids it saw are compared with the events
table: nothing missing, nothing twice, nothing out of order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import websockets

logger = logging.getLogger(__name__)


@dataclass
class FeedWatcher:
    url: str  # ws://127.0.0.1:PORT/ws/coordination/sessions/<id>/
    token: str
    seen: list[int] = field(default_factory=list)
    types: dict[int, str] = field(default_factory=dict)
    connects: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="validate-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def last_id(self) -> int:
        with self._lock:
            return max(self.seen, default=0)

    def wait_for(self, event_id: int, *, timeout: float) -> bool:
        """Wait until an event with id >= `event_id` arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.last_id >= event_id:
                return True
            time.sleep(0.2)
        return self.last_id >= event_id

    async def _run(self) -> None:
        headers = {"Authorization": f"Token {self.token}"}
        while not self._stop.is_set():
            url = f"{self.url}?after={self.last_id}"
            try:
                async with websockets.connect(url, additional_headers=headers, open_timeout=10) as socket:
                    self.connects += 1
                    while not self._stop.is_set():
                        try:
                            raw = await asyncio.wait_for(socket.recv(), timeout=0.5)
                        except TimeoutError:
                            continue
                        self._receive(json.loads(raw))
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                if not self._stop.is_set():
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    await asyncio.sleep(0.5)

    def _receive(self, message: dict[str, Any]) -> None:
        if isinstance(message.get("id"), int) and "type" in message:
            with self._lock:
                self.seen.append(message["id"])
                self.types[message["id"]] = message["type"]
        elif message.get("type") == "error":
            self.errors.append(str(message.get("detail") or message)[:200])

    def compare(self, table_ids: list[int]) -> dict[str, Any]:
        """What the client saw against the table's ids for the same session."""
        with self._lock:
            seen = list(self.seen)
        table = set(table_ids)
        unique = set(seen)
        missing = sorted(table - unique)
        out_of_order = sum(1 for before, after in zip(seen, seen[1:], strict=False) if after <= before)
        return {
            "table": len(table),
            "seen": len(unique & table),
            "missing": len(missing),
            "missing_ids": missing[:50],
            "unknown": len(unique - table),
            "duplicates": len(seen) - len(unique),
            "out_of_order": out_of_order,
            "connects": self.connects,
            "errors": self.errors[-10:],
            "completeness": round(len(unique & table) / len(table), 4) if table else None,
        }
