"""Debian's chromium through Playwright, for every browser test: where it is, how it is launched, and the
init script that collects Content-Security-Policy violations (`window.__csp`). The `browser` fixture in
tests/conftest.py uses `launch()`."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
PROBE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.effectiveDirective + " blocked " + (e.blockedURI || "?") + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


def launch() -> Iterator:
    """Yield a headless chromium (skipped where it is not installed). Playwright's sync API runs an event loop
    in this thread while the test still reads the ORM, so DJANGO_ALLOW_ASYNC_UNSAFE is set meanwhile."""
    if not CHROMIUM:
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get)")
    from playwright.sync_api import sync_playwright

    old = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()
        if old is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = old


def logged_in_page(browser, live_server, user, *, timeout_ms: int = 20_000, ignore: tuple[str, ...] = ()):
    """A 1440x900 tab signed in as `user` (a session cookie from Django's test client), with the CSP probe, and
    `errors`: every console error (unless its text contains one of `ignore`, e.g. an expected "422"), every CSP
    violation and every uncaught exception. Returns (context, page, errors)."""
    from django.test import Client

    c = Client()
    c.force_login(user)
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    ctx.add_cookies([{"name": "sessionid", "value": c.cookies["sessionid"].value, "url": live_server.url}])
    ctx.add_init_script(PROBE)
    page = ctx.new_page()
    page.set_default_timeout(timeout_ms)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
            if (m.type == "error" and not any(s in m.text for s in ignore)) or "Content Security Policy" in m.text
            else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    return ctx, page, errors
