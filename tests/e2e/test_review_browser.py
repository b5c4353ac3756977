"""Team review in a real browser on the real stack (tests/e2e/conftest.py: the launcher with the embedded
PostgreSQL and Redis, uvicorn with websockets, the workers), under the real Content-Security-Policy.

An admin creates two reviewers on the Users page and a review task with the dashboard's form. Reviewer 1
reviews several examples with the keyboard only (accept, turn marks, an inline edit typed and saved with
Ctrl+Enter, reject, skip, undo), while reviewer 2, in a second browser context, watches the task page: the
first reviewer's progress and presence arrive over the websocket (/ws/reviews/<id>/) without a reload."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.browser import PROBE
from tests.e2e.conftest import chat_jsonl, upload_ready  # `stack`: a fixture of tests/e2e/conftest.py

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "review-pass-2024"
EXPECTED = re.compile(r"status of (409|422)")  # refused edits answer 422 on purpose; the browser logs it


def open_as(browser, stack, username, password):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    ctx.add_init_script(PROBE)
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text)
            if (m.type == "error" and not EXPECTED.search(m.text)) or "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.goto(f"{stack.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.url}/")
    return ctx, page, errors


def title_is(page, n: int):
    page.wait_for_function(f"() => (document.getElementById('example-title') || {{}}).textContent === 'Example #{n}'")


def test_keyboard_review_with_live_progress_for_another_reviewer(stack, browser):
    version_id = upload_ready(stack.client(), "review e2e", "review.jsonl", chat_jsonl(6))

    # the admin makes two reviewers and the task, through the pages
    admin_ctx, admin, admin_errors = open_as(browser, stack, "admin", stack.admin_password)
    for name in ("rev1", "rev2"):
        admin.goto(f"{stack.url}/accounts/users/")
        admin.fill("#id_username", name)
        admin.fill("#id_password", PASSWORD)
        admin.select_option("#id_role", "reviewer")
        admin.click("form:has(#id_username) button[type=submit]")
        admin.wait_for_selector(f"text=User {name} created")
    admin.goto(f"{stack.url}/reviews/new/?dataset_version={version_id}")
    admin.fill("#id_name", "Arithmetic answers")
    admin.fill("#id_instructions", "Accept correct sums; reject wrong ones.")
    admin.check("#id_assignees input[value=rev1]")
    admin.check("#id_assignees input[value=rev2]")
    admin.fill("#id_overlap", "2")
    admin.click("#task-form button[type=submit]")
    admin.wait_for_url(re.compile(r".*/reviews/\d+/$"))
    task_url = admin.url
    task_id = int(task_url.rstrip("/").split("/")[-1])
    assert admin.inner_text("#task-status") == "open"

    # reviewer 2 watches the task page
    watch_ctx, watch, watch_errors = open_as(browser, stack, "rev2", PASSWORD)
    watch.goto(task_url)
    watch.wait_for_function("() => document.getElementById('ws-text').textContent === 'live'")
    watch.evaluate("() => { window.__samePage = true; }")  # gone if the page reloads
    assert watch.inner_text('[data-reviewer-done="rev1"]') == "0"

    # reviewer 1 reviews with the keyboard only
    rev_ctx, rev, rev_errors = open_as(browser, stack, "rev1", PASSWORD)
    rev.goto(f"{stack.url}/reviews/{task_id}/review/")
    title_is(rev, 1)
    watch.wait_for_function("() => document.getElementById('reviewing-now').textContent.includes('rev1 · #1')")
    kb = rev.keyboard
    kb.press("A")  # accept example 1
    title_is(rev, 2)
    watch.wait_for_function("() => document.querySelector('[data-reviewer-done=\"rev1\"]').textContent === '1'")
    # example 2: mark the user turn accepted, edit the answer in place, then accept the example
    kb.press("j"); kb.press("j"); kb.press("a")
    rev.wait_for_selector("#turn-1.decided-accept")
    kb.press("e")  # the cursor moved on to the assistant turn
    rev.wait_for_selector("#turn-2 textarea[name=content]:focus")
    kb.press("Control+a")
    kb.type("The sum is correct, and here is why: counting on.")
    rev.wait_for_selector("#preview-2 .diff .add")
    kb.press("Control+Enter")
    rev.wait_for_selector("#turn-2 .turn-state.edited")
    kb.press("Escape"); kb.press("A")
    title_is(rev, 3)
    kb.press("R")  # reject example 3
    title_is(rev, 4)
    kb.press("s")  # skip example 4
    title_is(rev, 5)
    kb.press("u")  # undo: example 3 comes back
    title_is(rev, 3)
    kb.press("A")
    title_is(rev, 5)
    kb.press("?")
    rev.wait_for_selector("#help-overlay", state="visible")
    kb.press("Escape")
    rev.wait_for_selector("#help-overlay", state="hidden")

    # reviewer 2 saw it all arrive, on the same page
    watch.wait_for_function("() => document.querySelector('[data-reviewer-done=\"rev1\"]').textContent === '3'")
    assert watch.evaluate("() => window.__samePage === true")
    assert watch.evaluate("() => document.querySelector('[data-reviewer-bar=\"rev1\"]').value") == 3
    assert watch.inner_text('[data-live="decisions"]') == "3"
    assert "rev1 · #5" in watch.inner_text("#reviewing-now")
    shots = Path(os.environ.get("REVIEW_SHOTS") or stack.data_dir)  # REVIEW_SHOTS=<folder> keeps them
    shots.mkdir(parents=True, exist_ok=True)
    watch.screenshot(path=str(shots / "e2e-watching-reviewer.png"), full_page=True)
    rev.screenshot(path=str(shots / "e2e-reviewer.png"), full_page=True)

    # what reviewer 1 did is what the API reports
    c = stack.client()
    body = c.get(f"/api/reviews/{task_id}").json()
    assert body["progress"]["per_reviewer"] == {"rev1": 3, "rev2": 0}
    lines = c.get(f"/api/reviews/{task_id}/export").text.splitlines()
    records = {r["example_index"]: r for r in map(json.loads, lines)}
    decided = {i: [x["decision"] for x in r["responses"] if x["reviewer"] == "rev1"] for i, r in records.items()}
    assert decided[0] == ["accept"] and decided[1] == ["accept"] and decided[2] == ["accept"]
    assert records[1]["messages"][2]["content"] == "The sum is correct, and here is why: counting on."

    for page, errors in ((rev, rev_errors), (watch, watch_errors), (admin, admin_errors)):
        assert page.evaluate("() => window.__csp") == [] and errors == []
    for ctx in (rev_ctx, watch_ctx, admin_ctx):
        ctx.close()
