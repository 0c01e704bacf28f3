"""The live event stream over WebSockets: `ws/coordination/` and `ws/coordination/sessions/<id>/`.

Protocol (the console codes against it):
- on connect `{"type": "hello", "last_event_id": N, "after": A | null}`;
- with `?after=A`: every visible event with id > A, in order, then
  `{"type": "replay_done", "count": n, "last_event_id": M}`, then live events;
  without it: live events only;
- an event message is exactly `events.event_payload` (recognised by its integer `id`);
- `{"type": "ping", "t": …}` is answered with `{"type": "pong", "t": …}`;
- operator actions (`agent.pause`, `agent.resume`, `agent.restart`, `decision.answer`) are
  answered with a `result` or an `error` carrying the HTTP-like status (see
  coordination.socket_actions): a read-scoped token or a viewer gets 403;
- anything else gets `{"type": "error", "detail": …}`;
- a cursor below the retention horizon (events after it were pruned) gets
  `{"type": "error", "code": "cursor_expired", "detail", "after", "pruned_through", "oldest_kept_id"}`
  and the socket closes with 4410: reconnect with `?after=<pruned_through>` (or without a cursor).
Close codes: 4401 not authenticated (also when the sign-in ends and an action is tried),
4404 unknown session, 4400 bad query, 4410 cursor expired.

Ordering, replay and the merge of both live in coordination.livefeed; this module only
speaks the protocol.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import livefeed, selectors, socket_actions
from .models import Session
from .ws_auth import SERVER_SEND

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_CURSOR_EXPIRED = 4410


@database_sync_to_async
def _session_exists(session_id: int) -> bool:
    return Session.objects.filter(pk=session_id).exists()


class EventStreamConsumer(AsyncJsonWebsocketConsumer):
    """Streams coordination events to one client: replay after a cursor, then live.

    It has no channel-layer channel of its own: the process's live feed is the one
    subscriber to the event groups and hands events to every socket, so a hundred sockets
    cost one Redis message per batch, and a Redis outage cannot break a socket.
    """

    channel_layer_alias = None
    stream: livefeed.SocketStream | None = None

    async def connect(self):
        # Accept first so the client sees the close code (a refused handshake carries none).
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        session_id = await self._session_id()
        if session_id is False:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        after = None
        if "after" in query:
            raw = query["after"][0]
            if not raw.isdigit():
                await self.send_json({"type": "error", "detail": "after: must be a non-negative integer event id"})
                await self.close(code=CLOSE_BAD_REQUEST)
                return
            after = int(raw)
            if await self._cursor_expired(after):
                return

        # Event frames go straight to the server (see ws_auth.ServerSendMiddleware); the rest via self.send.
        server_send = self.scope.get(SERVER_SEND, self.base_send)
        self.stream = livefeed.SocketStream(session_id=session_id, send=server_send)
        watermark = await livefeed.subscribe(self.stream)
        newest = await database_sync_to_async(livefeed.newest_event_id)(session=session_id)
        await self.send_json({"type": "hello", "last_event_id": newest, "after": after})
        if after is None:
            await self.stream.go_live(start=max(newest, watermark))
            return
        count = await self.stream.replay(after=after, upto=watermark)
        if await self._cursor_expired(after):  # a prune committed while the replay read
            return
        await self.send_json({"type": "replay_done", "count": count, "last_event_id": self.stream.last_sent_id})
        await self.stream.go_live()

    async def _cursor_expired(self, after: int) -> bool:
        """Tell a client whose cursor is below the retention horizon, instead of skipping what it missed."""
        expired = await database_sync_to_async(selectors.cursor_expired)(after=after)
        if expired is None:
            return False
        await self.send_json({"type": "error", "code": "cursor_expired", **expired})
        await self.close(code=CLOSE_CURSOR_EXPIRED)
        return True

    async def _session_id(self) -> int | None | bool:
        """None for the global stream, the id for a session stream, False for an unknown session."""
        raw = self.scope.get("url_route", {}).get("kwargs", {}).get("session_id")
        if raw is None:
            return None
        if not str(raw).isdigit() or not await _session_exists(int(raw)):
            return False
        return int(raw)

    async def disconnect(self, code):
        if self.stream is not None:
            await livefeed.unsubscribe(self.stream)
            self.stream = None

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if text_data is None:
            await self.send_json({"type": "error", "detail": "messages must be JSON text"})
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.send_json({"type": "error", "detail": "messages must be JSON text"})
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ping":
            reply = {"type": "pong"}
            if "t" in content:
                reply["t"] = content["t"]
            await self.send_json(reply)
            return
        if kind in socket_actions.ACTIONS:
            reply = await database_sync_to_async(socket_actions.perform)(action=kind, content=content, scope=self.scope)
            ref = content.get("ref")
            if isinstance(ref, (str, int)) and not isinstance(ref, bool):
                reply["ref"] = ref if isinstance(ref, int) else ref[:200]
            await self.send_json(reply)
            if reply.get("status") == 401:
                await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        actions = ", ".join(socket_actions.ACTIONS)
        await self.send_json(
            {"type": "error", "detail": f'unknown message; send {{"type": "ping", "t": …}} or one of: {actions}'}
        )
