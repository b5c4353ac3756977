"""The command bar in a real browser (Debian's chromium through Playwright) against pytest-django's live server
with the real Content-Security-Policy: Ctrl+K opens it on any page; typing "train demo with lr 1e-5 and 3 epochs"
shows a confirmation with those values, the API call and the `hub do` equivalent; confirming creates the run (the
broker is the test settings' stub) and links to it. An unknown command gets suggestions that fill the bar; `?`
lists the keyboard shortcuts; Esc closes; no CSP violation, console error or uncaught exception.

With COMMAND_SHOTS=<folder> the bar is also saved there as 1440x900 screenshots, to be looked at."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from apps.training.models import TrainingRun
from tests.browser import logged_in_page
from tests.factories import DatasetVersionFactory, qa_example

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("COMMAND_SHOTS")


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_command_bar_end_to_end(browser, live_server, member, tiny_base_model):
    demo = DatasetVersionFactory(owner=member, dataset__name="demo", examples=[qa_example(i) for i in range(12)],
                                 examples__validation=[qa_example(i) for i in range(12, 14)])
    ctx, page, errors = logged_in_page(browser, live_server, member)
    try:
        assert page.goto(live_server.url + "/datasets/").status == 200
        page.keyboard.press("Control+k")
        page.wait_for_selector("#cmdk[open]")
        assert page.evaluate("document.activeElement.id") == "cmdk-input"
        assert "train demo with lr 1e-5 and 3 epochs" in page.inner_text("#cmdk-panel")  # the examples
        page.keyboard.type("train demo with lr 1e-5 and 3 epochs")
        page.wait_for_selector('.cmdk-preview[data-input="train demo with lr 1e-5 and 3 epochs"] #cmdk-confirm')
        values = dict(zip(page.locator(".cmdk-values dt").all_inner_texts(),
                          page.locator(".cmdk-values dd").all_inner_texts()))
        assert values["Learning rate"] == "1e-5" and values["Epochs"] == "3" and values["Dataset"] == "demo"
        assert values["Version"] == f"v1 (id {demo.pk})" and values["Base model"] == "tiny"
        assert page.inner_text(".cmdk-api") == "POST /api/runs"
        assert page.inner_text(".cmdk-cli") == 'hub do "train demo with lr 1e-5 and 3 epochs"'
        assert "Train a LoRA adapter from tiny on demo v1 (14 examples) with learning rate 1e-5 and 3 epochs." in \
            page.inner_text(".cmdk-summary")
        assert not TrainingRun.objects.exists()  # nothing ran on preview
        shot(page, "bar-train")
        page.keyboard.press("Control+Enter")
        link = page.wait_for_selector("#cmdk-result-link")
        run = TrainingRun.objects.get()
        assert run.hyperparameters["learning_rate"] == 1e-5 and run.hyperparameters["epochs"] == 3
        assert run.dataset_version_id == demo.pk and run.owner_id == member.pk
        assert link.get_attribute("href") == f"/runs/{run.pk}/" and link.inner_text() == f"Open run {run.pk}"
        shot(page, "bar-train-done")

        page.fill("#cmdk-input", "trian demo with lr 1e-5")
        page.wait_for_selector('.cmdk-preview[data-input="trian demo with lr 1e-5"] .cmdk-unknown')
        assert page.locator("[data-cmdk-fill]").first.inner_text() == "train demo with lr 1e-5"
        shot(page, "bar-unknown")
        page.locator("[data-cmdk-fill]").first.click()  # the suggestion fills the bar and previews it
        page.wait_for_selector('.cmdk-preview[data-input="train demo with lr 1e-5"] #cmdk-confirm')
        assert page.input_value("#cmdk-input") == "train demo with lr 1e-5"

        page.keyboard.press("Escape")
        page.wait_for_selector("#cmdk", state="hidden")
        page.keyboard.press("?")
        page.wait_for_selector("#hub-help[open]")
        keys = page.inner_text("#hub-help").lower()
        assert re.search(r"ctrl\s*\+\s*k", keys) and "review screen" in keys and "arena voting" in keys
        shot(page, "help")
        page.keyboard.press("Escape")
        page.wait_for_selector("#hub-help", state="hidden")
        page.click("[data-cmdk-open]")  # the topbar's button
        page.wait_for_selector("#cmdk[open]")
        assert list(page.evaluate("() => window.__csp || []")) + errors == []
    finally:
        ctx.close()
