"""Console and admin sign-in: the lockout page, and how long a signed-in session lasts.

- A session lasts at most SESSION_COOKIE_AGE seconds from sign-in: the expiry is fixed at
  sign-in (an absolute date), so activity does not stretch it.
- It ends after HIVE_SESSION_IDLE_TIMEOUT seconds without a request (0: never). The last
  request's time is kept in the session, written at most every IDLE_PRECISION seconds.
- Sign-out (Django's LogoutView) flushes the session: its row is deleted on the server.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.shortcuts import render
from django.utils import timezone

LAST_SEEN_KEY = "hive_last_seen"


def idle_timeout() -> int:
    return max(0, int(getattr(settings, "HIVE_SESSION_IDLE_TIMEOUT", 0)))


def idle_precision(timeout: int) -> float:
    # Writing the session on every request would cost a write per page; a tenth of the limit,
    # at most a minute, keeps the timeout accurate to within that.
    return min(60.0, timeout / 10)


def session_is_idle(session, *, now: float | None = None) -> bool:
    """Whether this session went longer than the idle timeout without a request."""
    timeout = idle_timeout()
    if not timeout:
        return False
    last_seen = session.get(LAST_SEEN_KEY)
    now = time.time() if now is None else now
    return last_seen is not None and now - float(last_seen) > timeout


@receiver(user_logged_in, dispatch_uid="hive_session_absolute_expiry")
def _fix_session_expiry(sender, request, user, **kwargs):
    """Pin the session's end to sign-in time + SESSION_COOKIE_AGE, however active it is."""
    session = getattr(request, "session", None)
    if session is None:
        return
    session.set_expiry(timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE))
    session[LAST_SEEN_KEY] = time.time()


class SessionIdleTimeoutMiddleware:
    """Signs out a session idle for longer than HIVE_SESSION_IDLE_TIMEOUT (the row is deleted)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        timeout = idle_timeout()
        session = getattr(request, "session", None)
        if timeout and session is not None and request.user.is_authenticated:
            now = time.time()
            if session_is_idle(session, now=now):
                logout(request)
                minutes = math.ceil(timeout / 60)
                unit = "minute" if minutes == 1 else "minutes"
                messages.info(request, f"You were signed out after {minutes} {unit} without activity.")
            else:
                last_seen = session.get(LAST_SEEN_KEY)
                if last_seen is None or now - float(last_seen) >= idle_precision(timeout):
                    session[LAST_SEEN_KEY] = now
        return self.get_response(request)


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out sign-in (console or admin): why, until when, how to get unlocked."""
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    context = {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cool_off_minutes": math.ceil(seconds / 60) if seconds else 0,
        "until": timezone.now() + cool_off if cool_off else None,
    }
    response = render(request, "registration/locked_out.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
