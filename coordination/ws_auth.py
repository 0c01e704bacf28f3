"""WebSocket authentication: the browser's session cookie, or an API token for other clients.

The origin rule: a socket that sends an `Origin` header (every browser does) must come from
an allowed host — that is what keeps another site from riding a signed-in operator's cookie.
A socket without `Origin` is a non-browser client: it is accepted, but its cookie is
ignored and only an API token can authenticate it.

A token comes as the header `Authorization: Token <secret>` or the query `?token=<secret>`
(browsers cannot set headers on a WebSocket). It is checked exactly as over HTTP
(coordination.access.services): a token that is unknown, revoked or expired, or whose user is
inactive, makes the socket anonymous — it never falls back to the session — and the
consumer refuses it (4401). The accepted token is kept in the scope under "token", so its
scope limits what the socket may do.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier
from django.contrib.auth.models import AnonymousUser

from .access.services import TokenRejected, token_authenticate

WITHOUT_ORIGIN = "hive.without_origin"


def token_from_scope(scope) -> str | None:
    """The token secret the client sent, if any (header first, then query string)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            keyword, _, key = value.decode("latin1").strip().partition(" ")
            if keyword.lower() == "token" and key.strip():
                return key.strip()
    keys = parse_qs(scope.get("query_string", b"").decode("latin1")).get("token")
    return keys[0] if keys and keys[0] else None


@database_sync_to_async
def token_for_secret(secret: str):
    try:
        return token_authenticate(secret=secret)
    except TokenRejected:
        return None


class TokenAuthMiddleware(BaseMiddleware):
    """Replaces the session user with the token's user when the client sends a token.

    Without a token, a socket that came without `Origin` is anonymous whatever cookie it sent.
    """

    async def __call__(self, scope, receive, send):
        secret = token_from_scope(scope)
        if secret is not None:
            token = await token_for_secret(secret)
            user = token.user if token is not None else AnonymousUser()
            scope = dict(scope, user=user, token=token)
        elif scope.get(WITHOUT_ORIGIN):
            scope = dict(scope, user=AnonymousUser(), token=None)
        else:
            scope = dict(scope, token=None)
        return await super().__call__(scope, receive, send)


class OriginDenier(WebsocketDenier):
    """Refuses the handshake. It uses no channel layer: Channels' own denier subscribes to the
    default layer and waits on Redis, so a refused socket outlived its client and, in a Redis
    hiccup, ended in "Exception inside application: Timeout reading from …"."""

    channel_layer_alias = None


class OriginRule:
    """Sockets with `Origin` must come from an allowed host; sockets without one are marked for token-only auth."""

    def __init__(self, inner):
        self.inner = inner
        self.checked = AllowedHostsOriginValidator(inner)

    async def __call__(self, scope, receive, send):
        origins = [value for name, value in scope.get("headers", ()) if name == b"origin"]
        if not origins:
            return await self.inner(dict(scope, **{WITHOUT_ORIGIN: True}), receive, send)
        try:
            parsed = urlparse(origins[-1].decode("latin1"))
        except UnicodeDecodeError:
            parsed = None
        if self.checked.valid_origin(parsed):
            return await self.inner(scope, receive, send)
        return await OriginDenier()(scope, receive, send)


SERVER_SEND = "hive.server_send"


class ServerSendMiddleware(BaseMiddleware):
    """Keeps the server's own `send` in the scope, under SERVER_SEND.

    Channels' session middleware wraps `send` to save the session on an HTTP response;
    it has nothing to do on a WebSocket frame but still costs a lazy session lookup per
    frame. The event stream sends its many frames through the server's send directly.
    """

    async def __call__(self, scope, receive, send):
        return await super().__call__(dict(scope, **{SERVER_SEND: send}), receive, send)


def HiveAuthMiddlewareStack(inner):
    """The origin rule, then session cookie authentication overridden by a token (named like Channels' stack)."""
    return OriginRule(ServerSendMiddleware(AuthMiddlewareStack(TokenAuthMiddleware(inner))))
