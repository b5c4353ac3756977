"""Issue 14, polish: a styled 404 and 500 in the app's layout, /api/docs inside the app's frame (its name and a way
back), a favicon. Client tests, then the 404 and the API docs in a browser (screenshots with HUB_SHOTS=<folder>)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import RequestFactory

from tests.browser import logged_in_page

SHOTS = os.environ.get("HUB_SHOTS")


def _shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


@pytest.mark.django_db
def test_404_is_a_page_of_the_app(client, member):
    r = client.get("/no/such/page/")
    assert r.status_code == 404 and b'id="error-page"' in r.content and b"Page not found" in r.content
    assert b"Log in" in r.content  # signed out: the way in
    client.force_login(member)
    r = client.get("/no/such/page/")
    body = r.content.decode()
    assert r.status_code == 404 and 'class="topbar"' in body and "/no/such/page/" in body
    assert 'href="/datasets/"' in body and "css/pages.css" in body
    assert client.get("/datasets/999999/").status_code == 404  # a NotFound from a view: the same look
    assert b'id="error-page"' in client.get("/datasets/999999/").content


def test_500_renders_without_a_request_context():
    from django.views.defaults import server_error

    r = server_error(RequestFactory().get("/boom"))
    body = r.content.decode()
    assert r.status_code == 500 and 'id="error-page"' in body and "Something went wrong" in body
    assert "Training Hub" in body and "css/hub.css" in body and 'class="topbar"' in body


@pytest.mark.django_db
def test_api_docs_keep_the_app_frame_and_favicon(client, member):
    client.force_login(member)
    body = client.get("/api/docs").content.decode()
    assert 'id="hub-docs-bar"' in body and ">Training Hub</a>" in body and "Back to the hub" in body
    assert 'href="/api/openapi.json"' in body and 'id="swagger-ui"' in body
    page = client.get("/datasets/").content.decode()
    assert 'rel="icon" type="image/svg+xml" href="/static/img/favicon.svg"' in page
    r = client.get("/favicon.ico")
    assert r.status_code == 302 and r["Location"].endswith("favicon.svg")
    assert client.get("/static/img/favicon.svg").status_code == 200


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_error_page_and_api_docs_in_a_browser(browser, live_server, member):
    ctx, page, errors = logged_in_page(browser, live_server, member, ignore=("status of 404",))
    resp = page.goto(f"{live_server.url}/no/such/page/", wait_until="networkidle")
    assert resp.status == 404 and page.locator(".topbar .brand").is_visible()
    assert page.locator("#error-page h1").inner_text() == "Page not found"
    _shot(page, "404")
    page.goto(f"{live_server.url}/api/docs", wait_until="networkidle")
    page.wait_for_selector("#swagger-ui .info")
    assert page.locator("#hub-docs-bar").is_visible()
    _shot(page, "api-docs")
    with page.expect_navigation():
        page.click("#hub-docs-bar >> text=Back to the hub")
    assert page.url.rstrip("/") == live_server.url
    assert [e for e in errors if "favicon" not in e] == []
    ctx.close()
