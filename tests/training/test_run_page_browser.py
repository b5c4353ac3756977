"""The dashboard's page scripts in a real browser (Debian's chromium through Playwright), the HTML rendered
by Django's test client and the websocket mocked: a run page loaded while the run was queued follows the
live status events; the new-run form's placeholders follow the chosen method."""
from __future__ import annotations

import mimetypes
import shutil
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [pytest.mark.django_db, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
STATIC_DIR = Path(settings.BASE_DIR) / "static"


@pytest.fixture
def page_for():
    if not CHROMIUM:
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    # started lazily: Playwright's sync API runs an event loop, after which Django refuses ORM calls
    started: list = []

    def open_page(html: str, path: str, events: list[dict]):
        if not started:
            pw = sync_playwright().start()
            started.append(pw)
            started.append(pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--no-first-run"]))
        browser = started[1]
        page = browser.new_page()
        page.set_default_timeout(15_000)
        origin = "http://hub.test"

        def serve(route):
            url = route.request.url[len(origin):]
            if url.startswith(settings.STATIC_URL):
                f = STATIC_DIR / url[len(settings.STATIC_URL):].split("?")[0]
                if f.is_file():
                    return route.fulfill(body=f.read_bytes(),
                                         content_type=mimetypes.guess_type(f.name)[0] or "text/plain")
                return route.fulfill(status=404, body="")
            if url.split("?")[0] == path:
                return route.fulfill(body=html, content_type="text/html")
            return route.fulfill(status=404, body="")

        def ws_handler(ws):
            import json
            for msg in events:
                ws.send(json.dumps(msg))

        page.route(f"{origin}/**", serve)
        page.route_web_socket("**/ws/runs/**", ws_handler)
        page.goto(origin + path)
        return page

    yield open_page
    if started:
        started[1].close()
        started[0].stop()


def _queued_run_page(client, member, qa_version):
    from apps.training.services import run_create

    run = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="queue-position"' in html
    return run, html


def test_queue_position_disappears_when_the_run_starts(client, member, qa_version, tiny_base_model, page_for):
    run, html = _queued_run_page(client, member, qa_version)
    page = page_for(html, f"/runs/{run.pk}/", [
        {"event": "snapshot", "payload": {"status": "queued", "queue_position": 1, "summary": {}, "points": []}},
        {"event": "status", "payload": {"status": "running"}},
    ])
    page.wait_for_function("() => document.getElementById('run-status').dataset.status === 'running'")
    assert page.inner_text("#run-status").strip() == "running"
    assert page.query_selector("#queue-position") is None
    assert "GPU queue" not in page.inner_text("body")


def test_queue_position_follows_the_snapshot_while_queued(client, member, qa_version, tiny_base_model, page_for):
    run, html = _queued_run_page(client, member, qa_version)
    page = page_for(html, f"/runs/{run.pk}/", [
        {"event": "snapshot", "payload": {"status": "queued", "queue_position": 3, "summary": {}, "points": []}},
    ])
    page.wait_for_function("() => document.getElementById('queue-position').textContent.includes('3')")
    assert page.inner_text("#queue-position").strip() == "Position 3 in the GPU queue"


def test_new_run_placeholders_follow_the_method_select(client, member, qa_version, tiny_base_model, page_for):
    client.force_login(member)
    html = client.get(f"/runs/new/?dataset_version={qa_version.pk}").content.decode()
    page = page_for(html, "/runs/new/", [])
    lr = "#run-form input[name=learning_rate]"
    assert page.get_attribute(lr, "placeholder") == "0.0002"
    page.select_option("select[name=method]", "full")
    assert page.get_attribute(lr, "placeholder") == "2e-05"
    assert page.get_attribute("#run-form input[name=lora_r]", "placeholder") == ""
    page.select_option("select[name=method]", "scratch")
    assert page.get_attribute(lr, "placeholder") == "0.001"
    assert page.get_attribute("#run-form input[name=max_seq_len]", "placeholder") == "512"
    page.select_option("select[name=backend]", "together")
    assert page.get_attribute(lr, "placeholder") == ""


def test_new_run_form_shows_only_the_fields_of_the_method_and_backend(client, member, qa_version, tiny_base_model,
                                                                       page_for):
    """static/js/run_form.js: the inputs that do not apply are hidden and disabled (so not submitted)."""
    from apps.training.hyperparameters import TABLE, applicable

    client.force_login(member)
    html = client.get(f"/runs/new/?dataset_version={qa_version.pk}").content.decode()
    page = page_for(html, "/runs/new/", [])
    rows = [s.name for s in TABLE if s.in_form]

    def state():
        return page.evaluate("""(rows) => {
            const form = document.getElementById('run-form');
            const out = {};
            for (const name of rows) {
                const el = form.elements[name];
                out[name] = !el.closest('.hp-field').hidden && !el.disabled && !el.closest('details').hidden;
            }
            out.__posted = [...new FormData(form).keys()];
            return out;
        }""", rows)

    for method, backend in [("lora", "local"), ("full", "local"), ("scratch", "local"), ("lora", "together"),
                            ("full", "together")]:
        page.select_option("select[name=backend]", backend)
        page.select_option("select[name=method]", method)
        seen = state()
        expected = {s.name for s in applicable(method, backend) if s.in_form}
        assert {n for n in rows if seen[n]} == expected, (method, backend)
        assert not (set(rows) - expected) & set(seen["__posted"]), (method, backend)
    # scratch on Together is not offered: no hyperparameter input at all
    page.select_option("select[name=method]", "scratch")
    assert not any(state()[n] for n in rows)
    assert page.is_hidden("#run-form input[name=remote_model]") and page.is_hidden("#run-form select[name=base_model]")
