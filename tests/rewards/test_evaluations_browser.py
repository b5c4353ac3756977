"""The evaluation pages in a real browser (Debian's chromium through Playwright, the live server with the real
Content-Security-Policy): the list, the new-evaluation form (prefilled from the version page's link, with its
parent to compare with; a refused submission shows the field error), a queued evaluation's live progress, a
finished comparison of a tiny version with its parent (totals, the difference with its interval, plotly bars per
category and per component, the per-task table) and one task's drill-down; no CSP violation, console error or
uncaught exception.

With EVAL_SHOTS=<folder> the pages are saved there as 1440x900 screenshots, to be looked at."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = os.environ.get("EVAL_SHOTS")
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
TASKS = [{"prompt": "What is 2 plus 2?", "answer": "4"},
         {"prompt": "What is 7 plus 7?", "answer": "14"},
         {"prompt": "Write a Python function add(a, b) that returns the sum.", "language": "python",
          "tests": "def test_add():\n    assert add(1, 2) == 3\n"},
         {"prompt": "What is the weather in Oslo?", "tools": TOOLS, "metadata": {"expected_tool": "get_weather"}}]


def _shot(page, name: str, full: bool = False) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full)


def test_evaluation_pages(browser, live_server, versions, member):
    from apps.evaluations import services
    from apps.evaluations.run import evaluation_process

    child, parent = versions
    weights = {"answer_match": 2, "tests_pass": 2, "tool_calls": 1, "code_parses": 1, "lint": 1, "complexity": 1,
               "length": 1, "distinct_ngrams": 1}
    ev = services.evaluation_create(user=member, model_version_id=child.pk, compare_to_version_id=parent.pk,
                                    tasks=TASKS, weights=weights, max_new_tokens=24, name="child vs parent")
    ev = evaluation_process(evaluation_id=ev.pk)
    assert ev.status == "succeeded", ev.error
    queued = services.evaluation_create(user=member, model_version_id=child.pk, tasks=["Say hello."],
                                        preset="autonomous-agent", name="still queued")

    ctx, page, errors = logged_in_page(browser, live_server, member, ignore=("status of 422",))
    base = live_server.url
    page.goto(f"{base}/evaluations/", wait_until="networkidle")
    assert page.locator("#evaluation-list tbody tr").count() == 2
    assert page.locator("nav a", has_text="Evaluations").count() == 1
    _shot(page, "list")

    page.goto(f"{base}/evaluations/{ev.pk}/", wait_until="networkidle")
    page.wait_for_function("window.hubEvaluationChartsDrawn === true")
    assert page.locator("#chart-components .main-svg").count() >= 1
    assert page.locator("#chart-categories .main-svg").count() >= 1
    assert page.locator("#component-table tbody tr").count() == len(weights)
    assert page.locator("#task-table tbody tr").count() == 4
    assert page.locator("#total-diff").inner_text().strip() not in ("", "—")
    assert page.locator("#verdict").inner_text() in ("better", "worse", "no clear difference")
    body = page.inner_text("body")
    assert "None" not in body and "[]" not in body and "{}" not in body
    _shot(page, "detail")
    _shot(page, "detail-full", full=True)

    page.locator("#task-table a", has_text="answers").nth(3).click()
    page.wait_for_load_state("networkidle")
    assert page.locator("#component-scores tbody tr").count() == len(weights)
    assert page.locator("#answer-a pre, #answer-a .field-error").count() == 1
    assert "get_weather" in page.inner_text("body")
    _shot(page, "task")

    page.goto(f"{base}/evaluations/{queued.pk}/", wait_until="networkidle")
    assert page.locator("#ev-progress progress").count() == 1
    assert "0/1 answers" in page.inner_text("#ev-progress")
    _shot(page, "queued")

    page.goto(f"{base}/models/{child.pk}/", wait_until="networkidle")
    page.click("#evaluate-version")
    page.wait_for_load_state("networkidle")
    assert page.locator("#id_model_version").input_value() == str(child.pk)
    assert page.locator("#id_compare_to").input_value() == str(parent.pk)  # its parent, by default
    assert page.locator("#custom-weights").is_hidden()
    _shot(page, "new")
    page.check("input[name=source][value=tasks]")
    page.fill("#id_tasks_text", '{"prompt": "What is 1 plus 1?", "answer": "2"}')
    page.select_option("#id_preset", "custom")
    assert page.locator("#custom-weights").is_visible()
    page.fill("#id_w_answer_match", "-1")
    page.click("#evaluation-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator(".field-error").count() >= 1
    _shot(page, "new-refused")
    page.fill("#id_w_answer_match", "1")
    page.click("#evaluation-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/evaluations/" in page.url and "still queued" not in page.inner_text("h1")
    assert page.locator("#ev-progress").count() == 1
    assert errors == [], errors
    ctx.close()
