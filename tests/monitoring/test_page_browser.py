"""The Monitoring page in a real browser (Debian's chromium through Playwright) against pytest-django's live server,
which sends the real Content-Security-Policy: the server-drawn SVG plots give way to plotly ones sized to their
card, with a date axis; no CSP violation, console error or uncaught exception; the empty page too.

With MONITORING_SHOTS=<folder> the page is also saved there as 1440x900 screenshots (the first screen and the
whole page, with data and empty), to be looked at."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.browser import logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("MONITORING_SHOTS")


def open_page(browser, live_server, user, path, *, block_plotly=False):
    ctx, page, errors = logged_in_page(browser, live_server, user)
    if block_plotly:
        page.route("**/plotly-basic.min.js", lambda route: route.abort())
    r = page.goto(live_server.url + path, wait_until="load")
    assert r is not None and r.status == 200
    page.wait_for_load_state("networkidle")
    return ctx, page, errors


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))
        page.screenshot(path=str(Path(SHOTS) / f"{name}-full.png"), full_page=True)


def test_plots_replace_the_svgs(browser, live_server, admin_user, monitoring_data):
    import datetime as dt

    from apps.monitoring.services import rollup_run
    from tests.factories import ModelVersionFactory
    from tests.monitoring.conftest import log_rows

    mv = ModelVersionFactory(pk=77, name="<b>bold</b> & co")  # a name is text, in the SVG and plotly's legend
    log_rows(*[{"at": monitoring_data - dt.timedelta(minutes=5), "served_by": f"version:{mv.pk}"}] * 3)
    rollup_run()
    ctx, page, errors = open_page(browser, live_server, admin_user, "/monitoring/?alias=prod&range=1h")
    try:
        page.wait_for_selector("#chart-p95_ms .main-svg")
        boxes = page.evaluate("""() => [...document.querySelectorAll('.mon-chart')].map((el) => ({
            id: el.id, plotly: !!el.querySelector('.main-svg'), svg: !!el.querySelector('svg.svg-chart'),
            note: el.classList.contains('empty'), w: el.getBoundingClientRect().width,
            h: el.getBoundingClientRect().height}))""")
        drawn = [b for b in boxes if not b["note"]]
        assert len(drawn) == 12 and all(b["plotly"] and not b["svg"] for b in drawn), boxes
        assert all(500 <= b["w"] <= 600 and 255 <= b["h"] <= 275 for b in drawn), boxes  # two per row, 260 px high
        ticks = page.locator("#chart-requests_per_min .xtick text").all_text_contents()
        assert ticks and all(":" in t for t in ticks), ticks  # a time axis (HH:MM), not minutes-before-now
        legend = page.locator("#chart-requests_per_min .legendtext").all_text_contents()
        assert legend == ["prod (all versions)", "deleted version (#1)", "deleted version (#2)",
                          f"<b>bold</b> & co (#{mv.pk})"]
        assert page.locator("#firing-alerts tbody tr").count() == 2
        shot(page, "with-data")
        problems = list(page.evaluate("() => window.__csp || []")) + errors
        assert problems == []
    finally:
        ctx.close()


def test_the_svgs_stay_when_plotly_cannot_load(browser, live_server, member, monitoring_data):
    ctx, page, errors = open_page(browser, live_server, member, "/monitoring/?alias=prod", block_plotly=True)
    try:
        svgs = page.evaluate("""() => [...document.querySelectorAll('.mon-chart')].map((el) => {
            const svg = el.querySelector('svg.svg-chart'); const r = svg && svg.getBoundingClientRect();
            return svg ? {w: r.width, h: r.height, lines: svg.querySelectorAll('polyline').length} : null; })""")
        assert len(svgs) == 12 and all(s and s["w"] > 500 and s["h"] > 200 and s["lines"] for s in svgs), svgs
        shot(page, "svg-first-paint")
        # the blocked script is the only error
        assert [e for e in errors if "plotly" not in e and "ERR_FAILED" not in e] == []
    finally:
        ctx.close()


def test_empty_page(browser, live_server, member):
    ctx, page, errors = open_page(browser, live_server, member, "/monitoring/")
    try:
        assert page.locator("#traffic-empty").is_visible()
        assert page.locator(".mon-chart").count() == 0
        shot(page, "empty")
        assert list(page.evaluate("() => window.__csp || []")) + errors == []
    finally:
        ctx.close()
