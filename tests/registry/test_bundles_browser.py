"""The deploy-bundle fragment in a real browser (Debian's chromium through Playwright) against pytest-django's live
server with the real Content-Security-Policy: standalone and inside the export's page (which loads it with hx-get),
the empty state, a finished and a failed bundle, a bad setting answered in place with its field error (a 422 the
fragment's script swaps in), and a bundle queued from the form; no CSP violation, console error or uncaught
exception.

With BUNDLE_SHOTS=<folder> the pages are also saved there as 1440x900 screenshots, to be looked at."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from apps.registry.bundles import services
from apps.registry.models import Bundle
from tests.browser import logged_in_page
from tests.registry.bundle_fixtures import CHECKS, DM, GGUF, make_export, version  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("BUNDLE_SHOTS")


def open_page(browser, live_server, user, path):
    ctx, page, errors = logged_in_page(browser, live_server, user, ignore=("422",))
    r = page.goto(live_server.url + path, wait_until="load")
    assert r is not None and r.status == 200
    page.wait_for_load_state("networkidle")
    return ctx, page, errors


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))
        page.screenshot(path=str(Path(SHOTS) / f"{name}-full.png"), full_page=True)


def test_bundles_fragment_standalone_and_in_the_export_page(browser, live_server, member, version):
    export = make_export(version, "gguf", quantization="q4_k_m", files={"dragon-v1-q4_k_m.gguf": GGUF},
                         checks=CHECKS, llama_cpp_version="b6000")
    url = f"/models/exports/{export.pk}/bundles"
    ctx, page, errors = open_page(browser, live_server, member, url)
    try:
        assert "No bundles yet" in page.locator("#bundle-list").inner_text()
        assert page.locator("#id_system_prompt").input_value() == DM
        shot(page, "standalone-empty")
    finally:
        ctx.close()

    done = services.bundle_build(bundle_id=services.bundle_create(actor=member, export_id=export.pk,
                                                                  config={"temperature": 0.2}).pk)
    assert done.status == "succeeded", done.error
    Bundle.objects.create(export=export, status="failed", config=done.config, created_by=member,
                          error="Not enough disk space for the bundle: it needs about 120 MiB and 80 MiB are free.")
    ctx, page, errors = open_page(browser, live_server, member, url)
    try:
        rows = page.locator("#bundle-list tbody tr")
        assert rows.count() == 2
        assert page.locator(f"a[href='/api/bundles/{done.pk}/download']").is_visible()
        assert "Not enough disk space" in rows.nth(0).inner_text()
        shot(page, "standalone-with-bundles")

        page.fill("#id_temperature", "9")
        page.evaluate("document.getElementById('bundle-form').noValidate = true")  # past the browser's own check
        page.click("#bundle-form button[type=submit]")
        page.wait_for_selector("#bundle-form .field-error")
        assert "less than or equal to 2" in page.locator("#bundle-form").inner_text()
        shot(page, "field-error")

        page.fill("#id_temperature", "0.5")
        page.click("#bundle-form button[type=submit]")
        page.wait_for_selector("text=is queued")
        assert page.locator("#bundle-list tbody tr").count() == 3
        assert page.locator("#bundle-list").get_attribute("hx-trigger") == "every 3s"  # it follows the build
        shot(page, "queued")
        problems = list(page.evaluate("() => window.__csp || []")) + errors
        assert problems == []
    finally:
        ctx.close()

    ctx, page, errors = open_page(browser, live_server, member, f"/models/exports/{export.pk}/")
    try:
        page.wait_for_selector("#bundles #bundles-box #bundle-form")
        assert page.locator("#bundles #bundle-list tbody tr").count() == 3
        page.locator("#bundles-box").scroll_into_view_if_needed()
        shot(page, "in-export-page")
        page.fill("#id_top_k", "5000")
        page.evaluate("document.getElementById('bundle-form').noValidate = true")
        page.click("#bundle-form button[type=submit]")
        page.wait_for_selector("#bundles-box .field-error")  # swapped in place inside the export page too
        problems = list(page.evaluate("() => window.__csp || []")) + errors
        assert problems == []
    finally:
        ctx.close()
