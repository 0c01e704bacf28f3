"""Sign-in lockout (console and admin), its cool-off and unlock paths; sign-out and session lifetime."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.sessions.models import Session as StoredSession
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from hive_project.signin import LAST_SEEN_KEY

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
RIGHT = "operator-pass-123"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in(username: str, password: str, *, address: str = "10.0.0.1", path: str = LOGIN, client=None):
    client = client or Client()
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def assert_locked(response):
    assert response.status_code == 429
    body = response.content.decode()
    assert "Sign-in locked" in body and "Too many failed sign-in attempts" in body
    assert "axes_reset_username" in body  # the unlock path is named
    assert response["Retry-After"] == str(15 * 60)


def test_failures_for_one_user_name_lock_it_from_every_address(operator):
    for attempt in range(4):
        response = sign_in("operator", "wrong", address=f"10.0.0.{attempt + 1}")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    assert_locked(sign_in("operator", "wrong", address="10.0.0.5"))
    # Locked: even the right password from a fresh address is refused.
    assert_locked(sign_in("operator", RIGHT, address="10.0.0.9"))
    assert sign_in("viewer-less", "x", address="10.0.0.9").status_code == 200  # other names are not locked


def test_failures_from_one_address_lock_it_for_every_user_name(operator):
    for name in ["a", "b", "c", "d"]:
        assert sign_in(name, "wrong", address="10.9.9.9").status_code == 200
    assert_locked(sign_in("e", "wrong", address="10.9.9.9"))
    assert_locked(sign_in("operator", RIGHT, address="10.9.9.9"))
    assert sign_in("operator", RIGHT, address="10.1.1.1").status_code == 302  # the user is not locked elsewhere


def test_the_admin_login_is_locked_the_same_way(admin_user):
    for _ in range(4):
        assert sign_in("admin", "wrong", path="/admin/login/").status_code == 200
    assert_locked(sign_in("admin", "wrong", path="/admin/login/"))
    assert_locked(sign_in("admin", "password", path="/admin/login/"))


def lock(username: str = "operator") -> None:
    for attempt in range(5):
        sign_in(username, "wrong", address=f"10.0.1.{attempt}")
    assert_locked(sign_in(username, RIGHT))


def test_the_lockout_ends_after_the_cool_off(operator):
    lock()
    # Let the cool-off pass: every failure happened 15 minutes and a second ago.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))
    assert sign_in("operator", RIGHT).status_code == 302
    # A success forgets the failures.
    assert not AccessAttempt.objects.filter(username="operator").exists()


def test_a_success_clears_earlier_failures(operator):
    for attempt in range(4):
        sign_in("operator", "wrong", address=f"10.0.2.{attempt}")
    assert sign_in("operator", RIGHT).status_code == 302
    assert sign_in("operator", "wrong").status_code == 200  # counting starts again


def test_an_operator_unlocks_with_the_command(operator):
    lock()
    call_command("axes_reset_username", "operator", stdout=StringIO())
    assert sign_in("operator", RIGHT).status_code == 302


def test_an_operator_unlocks_in_the_admin(operator, admin_client):
    lock()
    # Five failures and the refused right password: one record per address.
    assert AccessAttempt.objects.filter(username="operator").count() == 6
    url = reverse("admin:axes_accessattempt_changelist")
    assert "Locked Out" in admin_client.get(url).content.decode()
    one = AccessAttempt.objects.get(username="operator", ip_address="10.0.1.0")
    response = admin_client.post(url, {"action": "unlock", ACTION_CHECKBOX_NAME: [one.pk]}, follow=True)
    assert "Unlocked operator, 10.0.1.0" in response.content.decode()
    assert not AccessAttempt.objects.filter(username="operator").exists()
    assert sign_in("operator", RIGHT).status_code == 302


# --- sessions ------------------------------------------------------------------------------


def signed_in_client(operator) -> tuple[Client, str]:
    client = Client()
    assert sign_in("operator", RIGHT, client=client).status_code == 302
    return client, client.cookies["sessionid"].value


def test_sign_out_deletes_the_session_on_the_server(operator):
    client, key = signed_in_client(operator)
    assert client.get("/").status_code == 200
    assert StoredSession.objects.filter(session_key=key).exists()

    assert client.post("/accounts/logout/").status_code == 302
    assert not StoredSession.objects.filter(session_key=key).exists()
    # A copy of the old cookie is worth nothing now.
    replay = Client()
    replay.cookies["sessionid"] = key
    response = replay.get("/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert replay.get("/api/coordination/status").status_code in (401, 403)


def test_a_session_ends_at_its_age_however_active(operator, settings):
    settings.SESSION_COOKIE_AGE = 3600
    settings.HIVE_SESSION_IDLE_TIMEOUT = 600
    client, key = signed_in_client(operator)
    expires = StoredSession.objects.get(session_key=key).expire_date
    assert timedelta(minutes=59) < expires - timezone.now() <= timedelta(hours=1)

    store = client.session
    store[LAST_SEEN_KEY] = time.time() - 120  # the next request records activity, so the session is saved
    store.save()
    assert client.get("/").status_code == 200
    assert StoredSession.objects.get(session_key=key).expire_date == expires
    assert client.session[LAST_SEEN_KEY] > time.time() - 10


def test_an_idle_session_is_signed_out(operator, settings):
    settings.HIVE_SESSION_IDLE_TIMEOUT = 60
    client, key = signed_in_client(operator)
    assert client.get("/").status_code == 200

    store = client.session
    store[LAST_SEEN_KEY] = time.time() - 61
    store.save()
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0].startswith(LOGIN)
    assert "You were signed out after 1 minute without activity." in response.content.decode()
    assert not StoredSession.objects.filter(session_key=key).exists()


def test_no_idle_limit_when_it_is_zero(operator, settings):
    settings.HIVE_SESSION_IDLE_TIMEOUT = 0
    client, _ = signed_in_client(operator)
    store = client.session
    store[LAST_SEEN_KEY] = time.time() - 10 * 24 * 3600
    store.save()
    assert client.get("/").status_code == 200
