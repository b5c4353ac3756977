"""A real browser (Debian's chromium driven by Playwright): log in, start a run from the dashboard,
and see the loss chart receive live points over the websocket."""
import pytest

from tests.e2e.conftest import chat_jsonl, upload_ready

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_login_start_run_and_watch_live_loss(stack, browser):
    c = stack.client()
    version_id = upload_ready(c, "browser data", "browser.jsonl", chat_jsonl(40))

    page = browser.new_page()
    page.set_default_timeout(30_000)
    # the real stack sends the Content-Security-Policy: the live chart must work under it (websocket included)
    csp_violations = []
    page.on("console", lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{stack.url}/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "admin")
    page.fill("#id_password", stack.admin_password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.url}/")

    page.goto(f"{stack.url}/runs/new/?dataset_version={version_id}")
    page.select_option("select[name=base_model]", "tiny")
    page.fill("input[name=max_steps]", "400")
    page.fill("input[name=batch_size]", "2")
    page.fill("input[name=max_seq_len]", "256")
    page.click("form#run-form button[value=create]")
    page.wait_for_url("**/runs/*/")
    page.wait_for_selector("#loss-chart")
    # Points pushed over the websocket while the page is open, not only those rendered at load.
    page.wait_for_function("() => (window.hubLivePoints || 0) >= 2", timeout=120_000)
    status = page.inner_text("#run-status")
    assert status.strip() in ("running", "succeeded")
    n_traces = page.evaluate("() => document.getElementById('loss-chart').data[0].x.length")
    assert n_traces >= 2
    assert csp_violations == []
    page.screenshot(path=str(stack.data_dir / "run-page.png"), full_page=True)
    # Stop the long run so the suite stays short.
    run_id = int(page.url.rstrip("/").split("/")[-1])
    assert c.post(f"/api/runs/{run_id}/cancel").status_code in (200, 202)
