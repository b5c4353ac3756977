"""Issue 14, the playground in a real browser against the real ASGI app (uvicorn) and the fake upstream: a busy
state while it waits (spinner, elapsed seconds, Send disabled), the answer streamed and rendered as Markdown with
code blocks — raw HTML in it shown as text, never run —, a notice when the answer was cut off (finish_reason
"length"), and two models side by side answering the same prompt. Screenshots with HUB_SHOTS=<folder>."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import logged_in_page

pytestmark = [pytest.mark.browser]
SHOTS = os.environ.get("HUB_SHOTS")


def _shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def _send(page, text):
    page.fill("#pg-input", text)
    page.click("#pg-send")


def test_playground_busy_markdown_cutoff_and_compare(browser, hub_server, versions, wired, member):
    ctx, page, errors = logged_in_page(browser, hub_server, member)
    page.goto(f"{hub_server.url}/v1/playground/?model=production", wait_until="networkidle")
    # busy while waiting: spinner and elapsed seconds, Send disabled; all gone when the answer is done
    _send(page, "PACED 8 150")
    page.wait_for_selector("#pg-busy:not([hidden])")
    assert page.is_disabled("#pg-send") and page.locator("#pg-busy .spinner").is_visible()
    page.wait_for_function("() => parseFloat(document.getElementById('pg-elapsed').textContent) >= 0.3")
    _shot(page, "playground-busy")
    page.wait_for_selector("#pg-busy", state="hidden", timeout=15_000)
    assert not page.is_disabled("#pg-send")
    assert "tok7" in page.inner_text("#pg-transcript .turn-assistant >> nth=0")

    # Markdown and code rendered; HTML the model writes is text
    _send(page, "**bold** and `inline` <img src=x id=evil onerror=alert(1)>\n```python\nprint('hi')\n```")
    page.wait_for_selector("#pg-transcript .turn-assistant >> nth=1 >> pre code")
    answer = page.locator("#pg-transcript .turn-assistant").nth(1)
    assert answer.locator("strong").inner_text() == "bold"
    assert answer.locator("pre code").inner_text().strip() == "print('hi')"
    assert page.locator("#evil").count() == 0 and "<img src=x" in answer.inner_text()

    # an answer cut off by max tokens says so
    _send(page, "LENGTH")
    page.wait_for_selector(".pg-notice")
    assert "max tokens (256)" in page.inner_text(".pg-notice")
    _shot(page, "playground")

    # side by side: the same prompt to two models, each column its own answer
    page.check("#pg-compare")
    page.select_option("#pg-model-b", "cloud")
    assert page.locator("#pg-pane-b").is_visible()
    page.click("#pg-clear")
    _send(page, "compare me")
    page.wait_for_selector("#pg-transcript-b .turn-assistant .turn-body:has-text('echo: compare me')")
    page.wait_for_selector("#pg-busy", state="hidden")
    assert "echo: compare me" in page.inner_text("#pg-transcript .turn-assistant")
    assert page.inner_text("#pg-title-a") == "production" and page.inner_text("#pg-title-b") == "cloud"
    asked = {s["body"]["model"] for s in wired.seen if s["body"]["messages"][-1].get("content") == "compare me"}
    assert asked == {f"mv-{versions['local'].pk}", "acme/Remote-Model-ft-1"}  # both models got the prompt
    _shot(page, "playground-compare")
    assert errors == []
    ctx.close()
