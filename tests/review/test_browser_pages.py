"""The review pages in a real browser (Debian's chromium through Playwright) against pytest-django's live
server, which sends the real Content-Security-Policy: the review screen driven by the keyboard alone (turn
cursor, turn marks, inline edit with its live diff and a refused edit's message, help overlay, accept /
reject / skip / undo / previous), live progress applied from websocket events (mocked with Playwright's
route_web_socket: the live server speaks no websocket; tests/review/test_browser_review.py follows the real
socket of the whole stack), the agreement plots drawn at sizes that follow their data, and no CSP violation,
console error or uncaught exception on any review page.

With REVIEW_SHOTS=<folder> every page is also saved there as a 1440x900 screenshot (empty states and with
data), to be looked at."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from django.test import Client

from tests.review.conftest import chat_example
from tests.browser import PROBE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("REVIEW_SHOTS")
EXPECTED_STATUS = re.compile(r"Failed to load resource: the server responded with a status of (409|422)")

TOOL_EXAMPLE = {"messages": [
    {"role": "system", "content": "You are a coding agent. <b>Never</b> guess."},
    {"role": "user", "content": "Fix the failing test in `calc.py`:\n```python\ndef add(a, b):\n    return a - b\n```"},
    {"role": "assistant", "content": "<thinking>The test says add(2, 2) == 4, the code subtracts.</thinking>Let me read the file.",
     "tool_calls": [{"id": "call_7", "type": "function",
                     "function": {"name": "read_file", "arguments": json.dumps({"path": "calc.py"})}}]},
    {"role": "tool", "tool_call_id": "call_7", "content": "<file path=\"calc.py\">def add(a, b):\n    return a - b\n</file>"},
    {"role": "assistant", "content": "The function subtracts; it should add:\n```python\ndef add(a, b):\n    return a + b\n```"},
]}


def cookie_of(user) -> str:
    c = Client()
    c.force_login(user)
    return c.cookies["sessionid"].value


class Tab:
    """One logged-in page with the CSP probe, error collectors and an optional mocked review websocket."""

    def __init__(self, browser, live_server, user, *, ws_events=None):
        self.url = live_server.url
        self.ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        self.ctx.add_cookies([{"name": "sessionid", "value": cookie_of(user), "url": self.url}])
        self.ctx.add_init_script(PROBE)
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        # (a refused edit is a 422 and a conflict a 409 on purpose: the browser logs those responses)
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                     if (m.type == "error" and not EXPECTED_STATUS.search(m.text))
                     or "Content Security Policy" in m.text else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.sockets = []
        events = ws_events if ws_events is not None else []

        def on_ws(ws):
            self.sockets.append(ws)
            for msg in events:
                ws.send(json.dumps(msg))
        self.page.route_web_socket("**/ws/reviews/**", on_ws)

    def go(self, path: str, status: int = 200):
        r = self.page.goto(self.url + path, wait_until="load")
        assert r is not None and r.status == status, f"{path}: {r and r.status}"
        self.page.wait_for_load_state("networkidle")
        return r

    def key(self, *keys: str):
        for k in keys:
            self.page.keyboard.press(k)

    def settle(self):
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_timeout(150)

    def shot(self, name: str, full: bool = False):
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full)

    def problems(self) -> list[str]:
        return list(self.page.evaluate("() => window.__csp || []")) + self.errors

    def close(self):
        self.ctx.close()


@pytest.fixture
def task(people, make_version):
    from apps.review import services

    v = make_version(examples=[TOOL_EXAMPLE] + [chat_example(i) for i in range(1, 8)])
    return services.task_create(user=people.owner, version_id=v.pk, name="Agent traces", overlap=2,
                                assignees=["rev1", "rev2", "rev3"], lead="lead", labels=["tool misuse", "style"],
                                rating=True,
                                instructions="Accept an example only if every tool call is right.\n"
                                             "Reject turns that guess instead of reading the file.")


def test_keyboard_review_screen(browser, live_server, people, task):
    from apps.review.models import ReviewItem, ReviewResponse

    t = Tab(browser, live_server, people.rev1)
    t.go(f"/reviews/{task.pk}/review/")
    page = t.page
    assert page.inner_text("#example-title") == "Example #1"
    assert page.locator("details.thinking").count() == 1 and not page.locator("details.thinking").get_attribute("open")
    t.shot("review-screen")
    # ? opens the help, Esc closes it
    t.key("?")
    assert page.is_visible("#help-overlay")
    t.shot("review-help")
    t.key("Escape")
    assert not page.is_visible("#help-overlay")
    # j moves the cursor onto the turns; a marks the turn and moves on; r on the next one rejects it
    t.key("j", "j")
    assert page.get_attribute("#turn-1", "class").endswith("focused")
    t.key("a")
    page.wait_for_selector("#turn-1.decided-accept")
    t.key("r")  # the cursor moved to turn 3 (index 2)
    page.wait_for_selector("#turn-2.decided-reject")
    resp = ReviewResponse.objects.get(reviewer=people.rev1, item__example_index=0)
    assert resp.turn_decisions == {"1": "accept", "2": "reject"}
    # e edits the turn under the cursor: a broken tool call is refused in place, a good edit saved with its diff
    t.key("k", "e")
    assert page.is_visible("#turn-2 textarea[name=content]")
    calls = page.input_value("#turn-2 textarea[name=tool_calls]")
    page.fill("#turn-2 textarea[name=tool_calls]", calls[:-3])
    t.key("Control+Enter")
    page.wait_for_selector("#turn-2 .edit-error")
    assert "The tool calls are not valid JSON" in page.inner_text("#turn-2 .edit-error")
    t.shot("review-edit-refused")
    page.fill("#turn-2 textarea[name=tool_calls]", calls)
    page.fill("#turn-2 textarea[name=content]", "I will read calc.py before changing it.")
    page.wait_for_selector("#preview-2 .diff .add")  # the live diff while typing
    t.key("Control+Enter")
    page.wait_for_selector("#turn-2 .turn-state.edited")
    assert "+I will read calc.py before changing it." in page.inner_text("#turn-2 .turn-diff")
    # an empty answer is refused with a clear message; Esc cancels the edit
    t.key("j", "j", "e")
    page.fill("#turn-4 textarea[name=content]", "  ")
    t.key("Control+Enter")
    page.wait_for_selector("#turn-4 .edit-error")
    assert "an assistant turn cannot be empty" in page.inner_text("#turn-4 .edit-error")
    t.key("Escape")
    assert not page.is_visible("#turn-4 textarea[name=content]")
    t.shot("review-edited", full=True)
    # rating, a label and a flag by keys, then A accepts the example and brings the next
    t.key("Escape", "4", "l", "1", "f", "p")
    page.wait_for_selector('button[data-flag-key="p"][aria-pressed="true"]')
    t.key("A")
    page.wait_for_function("() => document.getElementById('example-title').textContent === 'Example #2'")
    first = ReviewResponse.objects.get(reviewer=people.rev1, item__example_index=0)
    assert (first.decision, first.rating, first.labels) == ("accept", 4, ["tool misuse"])
    # with no turn selected, r rejects the whole example; s skips; u undoes the last decision
    t.key("r")
    page.wait_for_function("() => document.getElementById('example-title').textContent === 'Example #3'")
    t.key("s")
    page.wait_for_function("() => document.getElementById('example-title').textContent === 'Example #4'")
    t.key("u")
    page.wait_for_function("() => document.getElementById('example-title').textContent === 'Example #2'")
    assert "Undone" in page.inner_text("#review-hint")
    t.key("R")
    page.wait_for_function("() => document.getElementById('example-title').textContent === 'Example #4'")
    # p walks back through the answers, n forward again
    t.key("p")
    page.wait_for_selector("#history-note")
    assert page.inner_text("#example-title") == "Example #2" and "reject" in page.inner_text("#history-note")
    t.shot("review-history")
    t.key("n")
    page.wait_for_function("() => document.getElementById('example-title').textContent === 'Example #4'")
    assert "/review/" in page.url and "item=" not in page.url
    decided = dict(ReviewResponse.objects.filter(reviewer=people.rev1, status="done")
                   .values_list("item__example_index", "decision"))
    assert decided == {0: "accept", 1: "reject"}
    assert ReviewResponse.objects.get(reviewer=people.rev1, item__example_index=2).status == "skipped"
    assert ReviewItem.objects.get(task=task, example_index=0).messages[2]["content"] == \
        "I will read calc.py before changing it."
    assert t.problems() == []
    t.close()


def test_live_progress_events_update_the_page(browser, live_server, people, task):
    payload = {"task_id": task.pk, "status": "open", "total": 8, "done": 3, "decisions": 7, "required": 16,
               "disputed": 1, "resolved": 0, "per_reviewer": {"rev1": 4, "rev2": 3, "newbie<b>": 0},
               "active": [{"username": "rev2", "item_id": 1, "example_index": 4, "since": None}]}
    t = Tab(browser, live_server, people.rev3, ws_events=[{"event": "snapshot", "payload": payload}])
    t.go(f"/reviews/{task.pk}/")
    t.page.wait_for_function("() => window.hubReviewEvents >= 1")
    assert t.page.inner_text('[data-reviewer-done="rev1"]') == "4"
    assert t.page.evaluate("() => document.querySelector('[data-reviewer-bar=\"rev2\"]').value") == 3
    assert t.page.inner_text("#reviewing-now") == "rev2 · #5"
    assert t.page.locator('[data-reviewer-name="newbie<b>"]').count() == 1  # a row added, as text
    assert t.page.evaluate("() => document.querySelector('progress[data-live-bar=answers]').value") == 7
    # `presence` carries only the change: rev1 takes example 3 (its dot lights up), rev2 gives #5 back
    t.sockets[0].send(json.dumps({"event": "presence", "payload": {"task_id": task.pk, "took": {
        "username": "rev1", "item_id": 9, "example_index": 2, "since": None}}}))
    t.page.wait_for_function("() => document.querySelectorAll('#reviewing-now .badge').length === 2")
    assert t.page.locator("#reviewing-now .badge").all_inner_texts() == ["rev1 · #3", "rev2 · #5"]
    assert "off" not in t.page.get_attribute('[data-reviewer-dot="rev1"]', "class")
    t.sockets[0].send(json.dumps({"event": "presence", "payload": {"task_id": task.pk, "left": {
        "username": "rev2", "item_id": 1}}}))
    t.page.wait_for_function("() => document.querySelectorAll('#reviewing-now .badge').length === 1")
    assert t.page.inner_text("#reviewing-now") == "rev1 · #3"
    assert "off" in t.page.get_attribute('[data-reviewer-dot="rev2"]', "class")
    t.sockets[0].send(json.dumps({"event": "progress", "payload": {**payload, "decisions": 8,
                                                                    "per_reviewer": {"rev1": 5}, "active": []}}))
    t.page.wait_for_function("() => document.querySelector('[data-reviewer-done=\"rev1\"]').textContent === '5'")
    assert t.page.inner_text("#reviewing-now") == "Nobody."
    t.sockets[0].send(json.dumps({"event": "finished", "payload": {"task_id": task.pk, "dataset_version_id": 77}}))
    t.page.wait_for_selector("#finished-note:not([hidden])")
    assert t.page.get_attribute("#finished-link", "href").endswith("?made=77")
    assert t.problems() == []
    t.close()


def test_task_page_follows_a_result_built_by_the_worker(browser, live_server, people, task, monkeypatch):
    """Finish on a result too big for the request: the page shows the build (its job's progress, a Cancel
    button) and follows its job's events over the task's websocket; when the job ends the page reloads and
    shows the task finished with its version ready."""
    from apps.review import services
    from tests.review.conftest import run_result_job

    monkeypatch.setattr("apps.core.jobs.enqueue.enqueue", lambda name, *args, **kw: None)
    monkeypatch.setattr("apps.review.services.results.INLINE_MAX", 0)
    _answer_everything(people, task)
    services.bulk_apply(user=people.owner, task_id=task.pk, filter={"q": "Question"}, action="accept")
    services.bulk_apply(user=people.owner, task_id=task.pk, filter={"q": "calc.py"}, action="reject")
    t = Tab(browser, live_server, people.owner)
    t.go(f"/reviews/{task.pk}/")
    t.page.click("#finish-button")
    t.page.wait_for_selector("[data-result-job]")
    snap = task.snapshots.get()
    job_id = snap.version.job_id
    assert t.page.inner_text("#task-status") == "finishing" and t.page.is_visible("#finishing-note")
    assert t.page.inner_text('[data-result-job] [data-field="message"]') == "waiting for a worker…"
    assert t.page.is_visible(f"#cancel-result-{job_id}") and not t.page.is_visible("#finish-button")
    event = {"job_id": job_id, "kind": "review.result", "status": "running", "phase": "validating",
             "progress": {"current": 4, "total": 7, "unit": "examples"}, "task_id": task.pk}
    t.sockets[-1].send(json.dumps({"event": "job_progress", "payload": event}))
    t.page.wait_for_function("() => document.querySelector('[data-result-job] [data-field=\"message\"]')"
                             ".textContent === '4 of 7 examples'")
    assert t.page.evaluate("() => document.querySelector('[data-result-job] progress').value") == 4
    assert t.page.inner_text('[data-result-job] [data-field="status"]') == "running"
    assert (snap.accepted, snap.rejected) == (7, 1)
    t.page.locator("[data-result-job]").scroll_into_view_if_needed()
    t.shot("task-finishing")
    run_result_job(snap)  # the worker builds it
    with t.page.expect_navigation():  # the job ended: the page reloads
        t.sockets[-1].send(json.dumps({"event": "status", "payload": {**event, "status": "succeeded"}}))
    t.page.wait_for_load_state("networkidle")
    assert t.page.inner_text("#task-status") == "finished" and t.page.locator("[data-result-job]").count() == 0
    assert t.page.locator("text=Train on it").count() == 1
    t.page.locator(".version-link").scroll_into_view_if_needed()
    t.shot("task-finished")
    assert t.problems() == []
    t.close()


def _answer_everything(people, task):
    """rev3 answers two examples (rejects), then rev1 accepts everything and rev2 rejects every third: pairs
    rev1·rev2 share 6 examples, rev1·rev3 share 2, rev2·rev3 none (no kappa)."""
    from apps.review import services

    for user, rule in ((people.rev3, lambda i: "reject"), (people.rev1, lambda i: "accept"),
                       (people.rev2, lambda i: "reject" if i % 3 == 0 else "accept")):
        for _ in range(8 if user != people.rev3 else 2):
            item = services.queue_next(user=user, task_id=task.pk)
            if item is None:
                break
            services.item_decide(user=user, task_id=task.pk, item_id=item.pk, decision=rule(item.example_index),
                                 rating=3 + item.example_index % 3)


def test_pages_render_without_violations_and_plots_follow_their_data(browser, live_server, people, make_version, task,
                                                                      tokenizer_loaded):
    from apps.review import services

    empty_v = make_version(examples=[chat_example(i) for i in range(3)], owner=people.member2)
    pages_empty = Tab(browser, live_server, people.member2)
    pages_empty.go("/reviews/")
    pages_empty.shot("list-empty")
    pages_empty.go("/reviews/new/")
    pages_empty.shot("new-task", full=True)
    pages_empty.page.fill("#id_name", "")
    pages_empty.page.select_option("#id_dataset_version", str(empty_v.pk))
    pages_empty.page.fill("#id_overlap", "3")
    pages_empty.page.click("#task-form button[type=submit]")
    pages_empty.page.wait_for_load_state("networkidle")
    assert pages_empty.page.locator(".errorlist").count() >= 2
    pages_empty.shot("new-task-errors", full=True)
    assert pages_empty.problems() == []
    pages_empty.close()

    owner = Tab(browser, live_server, people.owner)
    owner.go(f"/reviews/{task.pk}/")
    owner.shot("task-empty", full=True)
    owner.go(f"/reviews/{task.pk}/agreement/")
    assert owner.page.is_visible("#no-answers")
    owner.shot("agreement-empty")
    owner.go(f"/reviews/{task.pk}/bulk/")
    owner.page.fill("#id_q", "Question 1")
    owner.page.wait_for_function("() => document.getElementById('match-count') && document.getElementById('match-count').textContent === '1'")
    owner.shot("bulk", full=True)

    _answer_everything(people, task)
    owner.go("/reviews/")
    owner.shot("list")
    owner.go(f"/reviews/{task.pk}/")
    owner.shot("task", full=True)
    owner.go(f"/reviews/{task.pk}/agreement/")
    owner.page.wait_for_function("() => window.hubAgreementDrawn === true")
    heights = owner.page.evaluate("""() => ['chart-done', 'chart-pairs'].map(id => document.getElementById(id).getBoundingClientRect().height)""")
    assert heights == [90 + 30 * 3, 90 + 30 * 2]  # 3 reviewers; 2 of the 3 pairs have a kappa
    assert owner.page.locator("#kappa-matrix td.k-na, #kappa-matrix td[class^=k-]").count() == 6
    owner.shot("agreement", full=True)
    assert owner.problems() == []
    owner.close()

    lead = Tab(browser, live_server, people.lead)
    lead.go(f"/reviews/{task.pk}/adjudication/")
    lead.shot("adjudication", full=True)
    first = task.items.filter(state="disputed").order_by("example_index").first()
    assert first is not None
    lead.go(f"/reviews/{task.pk}/adjudication/{first.pk}/")
    assert lead.page.locator("#answers .answer").count() == 2
    lead.shot("adjudicate", full=True)
    assert lead.problems() == []
    lead.close()

    rev = Tab(browser, live_server, people.rev1)
    rev.go(f"/reviews/{task.pk}/review/")
    assert rev.page.is_visible("#nothing-left")
    rev.shot("review-nothing-left")
    assert rev.problems() == []
    rev.close()
    services.task_snapshot(user=people.owner, task_id=task.pk)
    owner = Tab(browser, live_server, people.owner)
    owner.go(f"/reviews/{task.pk}/")
    assert owner.page.locator(".version-link").count() == 1
    owner.shot("task-with-snapshot", full=True)
    owner.close()
