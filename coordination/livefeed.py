"""The live event feed of one web (daphne) process, shared by all its WebSocket clients.

Events reach a process two ways: the channel layer (fast path: `events.publish`
after commit, one message per batch on GLOBAL_GROUP) and a tail of the event table
(one `id > cursor` query for all sockets). Without Redis the tail is the only way
events written by the daemon — a separate process — get here; with Redis it is a
cheap safety net at a longer interval that replays whatever a Redis outage lost.

The feed turns both sources into ONE stream ordered by id with no gaps: it keeps a
watermark (every id up to it has been delivered or is known not to exist) and holds
back events above a missing id until that id shows up. On PostgreSQL ids are taken
from a sequence before commit, so a lower id can become visible after a higher one;
an id still missing after GAP_GRACE seconds is a rolled-back insert and is skipped
(logged). Each socket then merges this stream with its replay from the database by
id and drops anything at or below the last id it sent (`SocketStream`).

The feed starts with the first socket of a process and stops with the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.utils import timezone

from . import selectors
from .events import GLOBAL_GROUP, MESSAGE_TYPE, event_payload
from .models import CoordinationEvent

logger = logging.getLogger(__name__)

# Rows read per query, for the tail and for a socket's replay (served by the primary key index).
BATCH = 500
# How often the table is checked while an id is missing (a transaction about to commit).
GAP_POLL_INTERVAL = 0.05
# An id missing this long belonged to a rolled-back transaction: stop waiting for it.
GAP_GRACE = 2.0
# Ids looked back over at start-up for inserts that are still being committed.
STARTUP_LOOKBACK = 256
# Only holes this recent may still be open transactions; older ones were rolled back.
STARTUP_RECENT_SECONDS = 60
# Re-join the layer group well before channels-redis expires the membership (a day).
GROUP_REJOIN_SECONDS = 600
# Pause before retrying the channel layer after an error (Redis down).
LAYER_RETRY_SECONDS = 1.0
# Longest a starting feed waits to join the layer group: a socket opening during a Redis hiccup
# gets its hello from the table at once, and the listener joins when Redis answers again.
JOIN_TIMEOUT_SECONDS = 1.0


def _layer_problem(exc: BaseException) -> str:
    """An outage in one line for the log (a traceback per flap says nothing more)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def tail_interval() -> float:
    """Seconds between polls of the event table (settings.LIVEFEED_TAIL_INTERVAL)."""
    return float(getattr(settings, "LIVEFEED_TAIL_INTERVAL", 0.25))


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """An event as it goes out to sockets: one ASGI message built once, whatever the number of sockets."""

    id: int
    session: int | None
    message: dict[str, str]  # {"type": "websocket.send", "text": <the payload as JSON>}


def encode(payload: dict[str, Any]) -> LiveEvent:
    text = json.dumps(payload, cls=DjangoJSONEncoder)
    return LiveEvent(id=payload["id"], session=payload["session"], message={"type": "websocket.send", "text": text})


# --- Reads (run in a worker thread via database_sync_to_async) ---------------------------------


def events_after(*, after: int, upto: int | None = None, session: int | None = None, limit: int = BATCH) -> list[dict]:
    """Payloads of events with after < id (≤ upto), oldest first, at most `limit`."""
    rows = selectors.events_after(after=after, session=session, limit=limit)
    return [event_payload(event) for event in rows if upto is None or event.id <= upto]


def newest_event_id(*, session: int | None = None) -> int:
    """The newest event id visible to a socket (0 when there is none)."""
    rows = CoordinationEvent.objects.all()
    if session is not None:
        rows = rows.filter(session_id=session)
    return rows.order_by("-id").values_list("id", flat=True).first() or 0


def _tail_rows(*, after: int, known_from: int | None, known_to: int | None, limit: int = BATCH) -> list[dict]:
    """Events after the watermark that the feed does not hold yet (one query for every socket)."""
    rows = CoordinationEvent.objects.filter(id__gt=after)
    if known_from is not None:
        rows = rows.filter(Q(id__lt=known_from) | Q(id__gt=known_to))
    return [event_payload(event) for event in rows.order_by("id")[:limit]]


def _startup_position() -> tuple[int, list[dict]]:
    """Watermark to start from, and the rows above it.

    Normally the newest id. If a recent id among the last few is missing it may belong to
    a transaction that has not committed yet, so start below it and wait for it like any gap.
    """
    recent = timezone.now() - timedelta(seconds=STARTUP_RECENT_SECONDS)
    rows = list(CoordinationEvent.objects.order_by("-id").values_list("id", "created_at")[:STARTUP_LOOKBACK])
    if not rows:
        return 0, []
    rows.reverse()
    for (previous, _), (current, created_at) in zip(rows, rows[1:], strict=False):
        if current != previous + 1 and created_at >= recent:
            return previous, events_after(after=previous, limit=STARTUP_LOOKBACK)
    return rows[-1][0], []


# --- One socket -------------------------------------------------------------------------------


class SocketStream:
    """What one socket has been sent: replay merged with live events by id, no duplicate, no gap.

    `deliver` is called by the feed; while the socket is still replaying, live events are
    buffered and flushed after the replay, skipping whatever the replay already sent.
    """

    def __init__(self, *, session_id: int | None, send: Callable[[dict], Awaitable[None]]):
        self.session_id = session_id
        self.send = send  # an ASGI send: takes {"type": "websocket.send", "text": …}
        self.last_sent_id = 0
        self.replaying = True
        self.buffer: list[LiveEvent] = []

    def wants(self, event: LiveEvent) -> bool:
        return self.session_id is None or event.session == self.session_id

    async def deliver(self, events: Iterable[LiveEvent]) -> None:
        if self.replaying:  # no await before this check: nothing slips between replay and live
            self.buffer.extend(event for event in events if self.wants(event))
            return
        for event in events:
            if event.id > self.last_sent_id and self.wants(event):
                self.last_sent_id = event.id
                await self.send(event.message)

    async def replay(self, *, after: int, upto: int) -> int:
        """Send every visible event with after < id ≤ upto, in order, reading BATCH rows at a time."""
        self.last_sent_id = max(self.last_sent_id, after)
        count = 0
        while self.last_sent_id < upto:
            batch = await database_sync_to_async(events_after)(
                after=self.last_sent_id, upto=upto, session=self.session_id, limit=BATCH
            )
            for payload in batch:
                event = encode(payload)
                self.last_sent_id = event.id
                await self.send(event.message)
            count += len(batch)
            if len(batch) < BATCH:
                break
        return count

    async def go_live(self, *, start: int | None = None) -> None:
        """Flush what arrived during the replay, then send live events as they come."""
        if start is not None:
            self.last_sent_id = max(self.last_sent_id, start)
        while self.buffer:
            pending, self.buffer = sorted(self.buffer, key=lambda event: event.id), []
            for event in pending:
                if event.id > self.last_sent_id:
                    self.last_sent_id = event.id
                    await self.send(event.message)
        self.replaying = False


# --- The process-wide feed --------------------------------------------------------------------


class LiveFeed:
    """Tails the event table and listens on the channel layer; delivers one ordered stream."""

    def __init__(self, *, interval: float):
        self.interval = interval
        self.subscribers: set[SocketStream] = set()
        self.watermark = 0
        # False while the table was empty at start: ids need not start at 1 (a sequence survives
        # deleted rows), so the first poll that finds rows sets the watermark below the oldest.
        self.anchored = True
        self.pending: dict[int, LiveEvent] = {}
        self.stuck_since: float | None = None  # when the watermark last stopped below a pending event
        self.loop = asyncio.get_running_loop()
        self.ready = self.loop.create_future()
        self.layer = get_channel_layer()
        self.listen_layer = self.layer
        self.channel: str | None = None
        self.joined_at = 0.0
        self.wake = asyncio.Event()
        self.outbox: list[LiveEvent] = []  # in order, waiting for the deliverer
        self.outbox_ready = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.listener: tuple[asyncio.AbstractEventLoop, asyncio.Task] | None = None
        self.listener_thread: threading.Thread | None = None
        self.stopping = False

    # lifecycle

    async def start(self) -> None:
        try:
            watermark, rows = await database_sync_to_async(_startup_position)()
            self.watermark, self.anchored = watermark, watermark > 0
            self._hold(encode(payload) for payload in rows)
            if self.layer is not None:
                # A networked layer is received from on a thread with an instance of its own.
                if not isinstance(self.layer, InMemoryChannelLayer):
                    self.listen_layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
                self.channel = await self.listen_layer.new_channel(prefix="livefeed")
                try:
                    await asyncio.wait_for(self._join(), timeout=JOIN_TIMEOUT_SECONDS)
                except Exception as exc:  # Redis down: serve from the table; the listener keeps trying
                    logger.warning(
                        "Live feed: channel layer unavailable (%s); serving from the database", _layer_problem(exc)
                    )
            self.tasks = [
                self.loop.create_task(self._deliver(), name="livefeed-deliver"),
                self.loop.create_task(self._tail(), name="livefeed-tail"),
            ]
            if isinstance(self.layer, InMemoryChannelLayer):
                # Its queues belong to this loop (publishers reach it through async_to_sync).
                self.tasks.append(self.loop.create_task(self._listen(), name="livefeed-listen"))
            elif self.layer is not None:
                self._listen_in_thread()
            logger.debug("Live feed started at event %d (tail every %.2f s)", self.watermark, self.interval)
            self.ready.set_result(None)
        except BaseException as exc:
            self.ready.set_exception(exc)
            raise

    def _listen_in_thread(self) -> None:
        """Receive from a networked layer on a loop of its own.

        channels-redis takes several round trips per message; on the server's loop each
        waits behind the flushing of every socket, which caps how many events a process
        takes in. On its own thread the listener keeps pace and hands events over. It uses
        a layer instance of its own, so no lock or buffer is shared between two loops.
        """
        loop = asyncio.new_event_loop()
        task = loop.create_task(self._listen(layer=self.listen_layer, deliver=self._offer_threadsafe))

        def run() -> None:
            try:
                loop.run_until_complete(task)
            except BaseException:  # cancelled on stop, or a bug already logged by _listen
                pass
            finally:
                loop.close()  # channels-redis closes that loop's connections here

        self.listener = (loop, task)
        self.listener_thread = threading.Thread(target=run, name="livefeed-listener", daemon=True)
        self.listener_thread.start()

    def _offer_threadsafe(self, events: list[LiveEvent]) -> None:
        self.loop.call_soon_threadsafe(self.offer, events)

    async def _stop_listener_thread(self) -> None:
        loop, task = self.listener
        deadline = time.monotonic() + 5
        # channels-redis and redis-py may swallow a cancellation mid-command: repeat it until the thread ends.
        while self.listener_thread.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):  # the loop is closing: the thread is about to end
                loop.call_soon_threadsafe(task.cancel)
            await asyncio.to_thread(self.listener_thread.join, 0.1)
        if self.listener_thread.is_alive():
            logger.warning("Live feed listener thread did not stop within 5 s")

    async def stop(self) -> None:
        self.stopping = True
        if self.listener is not None:
            await self._stop_listener_thread()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.warning("Live feed task ended with an error", exc_info=True)
        if self.layer is not None and self.channel is not None:
            try:
                await asyncio.wait_for(self.layer.group_discard(GLOBAL_GROUP, self.channel), timeout=2)
            except Exception:
                logger.debug("Leaving %s failed", GLOBAL_GROUP, exc_info=True)

    async def _join(self) -> None:
        await self.layer.group_add(GLOBAL_GROUP, self.channel)
        self.joined_at = time.monotonic()

    async def _rejoin(self) -> None:
        self.joined_at = time.monotonic()  # once per period, even when it fails (the listener reports outages)
        try:
            await self.layer.group_add(GLOBAL_GROUP, self.channel)
        except Exception:
            logger.debug("Live feed: re-joining %s failed", GLOBAL_GROUP, exc_info=True)

    # sources

    async def _tail(self) -> None:
        while True:
            interval = GAP_POLL_INTERVAL if self.pending else self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=interval)
            self.wake.clear()
            try:
                await self._poll()
                if self.joined_at and time.monotonic() - self.joined_at > GROUP_REJOIN_SECONDS:
                    await self._rejoin()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database or Redis is away; try again next turn
                logger.warning("Live feed poll failed; retrying", exc_info=True)

    async def _poll(self) -> None:
        while True:
            known = (min(self.pending), max(self.pending)) if self.pending else (None, None)
            rows = await database_sync_to_async(_tail_rows)(
                after=self.watermark, known_from=known[0], known_to=known[1], limit=BATCH
            )
            self.offer(encode(payload) for payload in rows)
            if len(rows) < BATCH:
                if not self.anchored and self.pending:
                    # Every committed row is now held: start just below the oldest one.
                    self.watermark, self.anchored = min(self.pending) - 1, True
                # Give up on ids missing too long, and deliver what waited behind them.
                if self.pending:
                    self.offer(())
                return

    async def _listen(self, *, layer=None, deliver: Callable[[list[LiveEvent]], None] | None = None) -> None:
        layer = layer or self.layer
        deliver = deliver or self.offer
        failing = self.joined_at == 0.0
        while not self.stopping:
            try:
                if failing:
                    # Redis may have restarted without our membership.
                    await layer.group_add(GLOBAL_GROUP, self.channel)
                    self.joined_at = time.monotonic()
                message = await layer.receive(self.channel)
                if failing:
                    logger.info("Live feed: channel layer is back")
                    failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.stopping:  # redis-py may turn the cancellation into a TimeoutError
                    return
                if not failing:
                    logger.warning(
                        "Live feed: channel layer unavailable (%s); serving from the database", _layer_problem(exc)
                    )
                failing = True
                await asyncio.sleep(LAYER_RETRY_SECONDS)
                continue
            if message.get("type") == MESSAGE_TYPE:
                try:
                    events = [encode(payload) for payload in message.get("events", ())]
                except (KeyError, TypeError, ValueError):
                    logger.warning("Live feed: malformed %s message ignored", MESSAGE_TYPE, exc_info=True)
                    continue
                deliver(events)

    # ordering

    def _hold(self, events: Iterable[LiveEvent]) -> None:
        for event in events:
            if event.id > self.watermark:
                self.pending.setdefault(event.id, event)

    def _advance(self) -> list[LiveEvent]:
        """Pop the events that now follow the watermark without a gap."""
        ready: list[LiveEvent] = []
        if not self.anchored:
            return ready  # wait for the tail to read what was committed below the first event seen
        while self.pending:
            event = self.pending.pop(self.watermark + 1, None)
            if event is not None:
                ready.append(event)
                self.watermark = event.id
                continue
            now = time.monotonic()
            if ready or self.stuck_since is None:
                self.stuck_since = now
                break
            if now - self.stuck_since < GAP_GRACE:
                break
            skip_to = min(self.pending) - 1
            logger.warning(
                "Event ids %d..%d never became visible within %.1f s; treating them as rolled back",
                self.watermark + 1,
                skip_to,
                GAP_GRACE,
            )
            self.watermark = skip_to
            self.stuck_since = None
        if not self.pending:
            self.stuck_since = None
        return ready

    def offer(self, events: Iterable[LiveEvent]) -> None:
        """Take events from either source; those next in line go to the deliverer, in order."""
        had_gap = bool(self.pending)
        self._hold(events)
        ready = self._advance()
        if self.pending and not had_gap:
            self.wake.set()  # a new gap: look in the table now, then every GAP_POLL_INTERVAL
        if ready:
            self.outbox.extend(ready)
            self.outbox_ready.set()

    async def _deliver(self) -> None:
        """Hand queued events to every socket, one pass per batch.

        When sockets are slower than events arrive, what came in during a pass goes out
        together in the next: a socket then gets several frames per write, not one each.
        """
        while True:
            await self.outbox_ready.wait()
            self.outbox_ready.clear()
            batch, self.outbox = self.outbox, []
            for subscriber in list(self.subscribers):
                try:
                    await subscriber.deliver(batch)
                except Exception:  # one broken socket must not starve the others
                    logger.warning("Delivering events to a socket failed", exc_info=True)


_feed: LiveFeed | None = None


async def subscribe(stream: SocketStream) -> int:
    """Attach a socket to this process's feed (starting it if needed); returns the watermark.

    Every event above the returned id will be passed to `stream.deliver`, in order; every
    event at or below it is committed and can be read from the table.
    """
    global _feed
    loop = asyncio.get_running_loop()
    while True:
        if _feed is None or _feed.loop is not loop:
            _feed = LiveFeed(interval=tail_interval())
            feed = _feed
            try:
                await feed.start()
            except Exception:
                if _feed is feed:
                    _feed = None
                raise
        else:
            feed = _feed
            await asyncio.shield(feed.ready)
        if _feed is feed:  # not stopped by the last socket leaving while this one waited
            feed.subscribers.add(stream)
            return feed.watermark


async def unsubscribe(stream: SocketStream) -> None:
    """Detach a socket; the last one out stops the feed."""
    global _feed
    feed = _feed
    if feed is None or stream not in feed.subscribers:
        return
    feed.subscribers.discard(stream)
    if not feed.subscribers:
        _feed = None
        await feed.stop()


def running() -> bool:
    """Whether this process's feed is running (for tests and health checks)."""
    return _feed is not None
