"""The review task page's "Preference pairs" part in a real browser (Debian's chromium, the live server's real
Content-Security-Policy): before any edit the export answers with its reason; after a reviewer's edit the export
makes the version, the page names it and offers "Train DPO on them", whose click lands on the new DPO run's page.
No CSP violation, console error (but the refused live sockets: the live server has none) or uncaught exception. With PREFERENCE_SHOTS=<folder> each state is saved as a
1440x900 screenshot."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import logged_in_page
from tests.review.test_preferences import _conversation, _decide

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("PREFERENCE_SHOTS")


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_export_then_train_from_the_task_page(browser, live_server, people, make_task, make_version, tiny_base_model,
                                              tokenizer_loaded):
    from apps.training.models import TrainingRun

    task = make_task(overlap=1, assignees=[people.rev1], name="Arithmetic answers",
                     version=make_version(examples=[_conversation(i) for i in range(4)]))
    # the live server speaks no websocket: the task page's and the run page's live sockets are refused (404)
    ctx, page, errors = logged_in_page(browser, live_server, people.owner, ignore=("WebSocket connection",))
    try:
        page.goto(f"{live_server.url}/reviews/{task.pk}/")
        section = page.locator("#preference-pairs")
        assert section.is_visible() and page.locator("#review-dpo-button").count() == 0
        _shot(page, "1-nothing-edited")
        page.click("#preference-export-button")
        page.wait_for_load_state()
        assert "No edited assistant turn to build pairs from" in page.content()
        _shot(page, "2-nothing-to-export")

        _decide(task, people.rev1, 0, edits={2: "Answer 0: 0 plus 1 is 1."})
        _decide(task, people.rev1, 1, edits={2: "Answer 1:  it is 7,\n I think."})  # whitespace only
        page.click("#preference-export-button")
        page.wait_for_load_state()
        assert "Exported 1 preference pair to" in page.content() and "(1 edited turn left out)" in page.content()
        assert "1 pair" in page.locator("#preference-export").inner_text()
        _shot(page, "3-exported")
        page.select_option("#dpo-base-model", "tiny")
        page.click("#review-dpo-button")
        page.wait_for_url(f"{live_server.url}/runs/*/")
        run = TrainingRun.objects.get()
        assert page.url.endswith(f"/runs/{run.pk}/") and run.method == "dpo" and run.base_model_id == "tiny"
        assert errors == [], errors
    finally:
        ctx.close()
