"""Signing out leaves no console page in the service worker's cache and no overview snapshot."""

from __future__ import annotations

import contextlib

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CACHED_PAGES = "caches.open('hive-pages-v1').then(c => c.keys()).then(keys => keys.length)"


def test_sign_out_clears_the_cached_pages(new_page, operator, crew):
    page = new_page(operator)
    page.goto("/")
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.reload()  # this visit goes through the worker, which keeps a copy
    page.wait_for_selector("h1:has-text('Overview')")
    page.wait_for_function(f"{CACHED_PAGES}.then(n => n > 0)")
    assert page.evaluate("localStorage.getItem('hive:overview-snapshot') !== null")

    page.click("form[data-sign-out] button[type=submit]")
    page.wait_for_url("**/accounts/login/**")
    assert page.evaluate(CACHED_PAGES) == 0
    assert page.evaluate("localStorage.getItem('hive:overview-snapshot')") is None

    # Offline, the console is not shown from what the browser kept.
    page.context.set_offline(True)
    with contextlib.suppress(Exception):  # no cached copy: the navigation fails, as it should
        page.goto("/")
    assert page.locator("h1:has-text('Overview')").count() == 0
    page.context.set_offline(False)


def test_sign_out_answer_asks_the_browser_to_clear_site_data(client, operator):
    client.force_login(operator)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Clear-Site-Data"] == '"cache", "storage"'
