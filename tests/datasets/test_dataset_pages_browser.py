"""Issue 14, the dataset pages in a real browser (chromium, the live server, the strict CSP): the charts are sized
to the data (no 8192-token context line stretching the token axis, a note instead), titles are the cards'
headings, count axes have whole ticks, a single "(none)" category is a one-line note, a click on a bar lists the
examples behind it; the list shows the current version with a failed attempt as a note; an example is edited with
the structured form. Screenshots with HUB_SHOTS=<folder>."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.browser import logged_in_page
from tests.factories import DatasetVersionFactory

from .conftest import good_rows

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = os.environ.get("HUB_SHOTS")


def _shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


@pytest.fixture
def dataset(member):
    from apps.datasets import services

    rows = good_rows(14) + [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"},
                      {"role": "assistant", "content": "Because air scatters blue light more than red light."}]},
        {"messages": [{"role": "user", "content": "Tell me a long story about a dragon and a knight " * 8},
                      {"role": "assistant", "content": "Once upon a time there was a dragon who guarded gold. " * 6}]}]
    f = SimpleUploadedFile("d.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    v = services.dataset_import(user=member, name="charts", file=f)
    DatasetVersionFactory(dataset=v.dataset, status="failed", error="The file holds no examples.", example_count=0)
    return v


def test_charts_sized_to_the_data_and_clickable(browser, live_server, member, dataset):
    ctx, page, errors = logged_in_page(browser, live_server, member)
    page.goto(f"{live_server.url}/datasets/{dataset.dataset_id}/", wait_until="networkidle")
    page.wait_for_selector("#chart-tokens .main-svg")  # plotly replaced the server-rendered SVG
    # the version shown is the ready v1, not the failed v2
    assert "current version v1 (the newest ready one)" in page.inner_text("main p.muted >> nth=0")
    # the context (8192 tokens in production, more with the tests' tokenizer) is far beyond the data: a note, no
    # line; the x axis ends near the longest example
    assert "is far beyond the longest example" in page.inner_text("#context-note")
    assert page.locator("#chart-tokens .shapelayer path").count() == 0
    longest = dataset.stats["tokens"]["max"]
    xticks = [float(t.replace(",", "").replace("k", "e3")) for t in page.locator("#chart-tokens .xtick text").all_text_contents()]
    assert xticks and max(xticks) <= longest * 1.5, (xticks, longest)
    # whole-number ticks on every count axis
    for chart in ("#chart-tokens", "#chart-roles", "#chart-turns"):
        yticks = page.locator(f"{chart} .ytick text").all_text_contents()
        assert yticks and all(re.fullmatch(r"[\d,]+", t) for t in yticks), (chart, yticks)
    # a single "(none)" category: a one-line note, no panel
    assert page.locator("#chart-categories").count() == 0
    assert "No example has a category (16 examples)." in page.inner_text("#category-note")
    # titles are headings, not clipped plot titles
    headings = page.locator(".dataset-charts h3").all_text_contents()
    assert headings == ["Tokens per example", "Content tokens by role", "Turns per example"]
    page.locator("#chart-tokens").scroll_into_view_if_needed()
    page.evaluate("() => window.scrollBy(0, -120)")
    _shot(page, "dataset-detail-charts")
    # a click on a bar lists the examples behind it
    bars = dataset.stats["turns"]["hist"]
    box = page.locator("#chart-turns .point path").last.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] - 2)
    with page.expect_navigation():
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] - 2)
    assert "turns=3-3" in page.url and page.url.endswith("#examples")
    assert page.inner_text("#bucket-filter").startswith("From the chart: turns 3")
    assert "1 example · page 1 of 1" in page.inner_text("#examples")
    assert bars["counts"][-1] == 1
    assert "Why is the sky blue?" in page.inner_text("#examples")
    _shot(page, "dataset-detail-filtered")
    assert errors == []
    ctx.close()


def test_list_and_structured_edit(browser, live_server, member, dataset):
    ctx, page, errors = logged_in_page(browser, live_server, member)
    page.goto(f"{live_server.url}/datasets/", wait_until="networkidle")
    row = page.locator("#dataset-list tbody tr", has_text="charts")
    text = row.inner_text()
    assert "v1" in text and "ready" in text and "v2 failed" in text and "16" in text
    _shot(page, "dataset-list")
    page.goto(f"{live_server.url}/datasets/versions/{dataset.pk}/examples/0/edit/", wait_until="networkidle")
    assert page.locator("#m-0-role").input_value() == "user" and page.locator("#m-1-role").input_value() == "assistant"
    assert not page.locator("#raw-json").evaluate("d => d.open")  # the raw JSON is the advanced, folded mode
    page.fill("#m-1-content", "A new answer about **lists**, written in the structured form.")
    _shot(page, "dataset-edit")
    with page.expect_navigation():
        page.click("#edit-form button[value=form]")
    assert "/diff/" in page.url
    from apps.datasets.models import DatasetVersion

    new = DatasetVersion.objects.filter(dataset_id=dataset.dataset_id, status="ready").order_by("-number").first()
    assert new.number == 3
    assert new.examples.get(index=0).messages[1]["content"].startswith("A new answer about **lists**")
    # a tool call that is not JSON: the row says so, nothing is created
    page.goto(f"{live_server.url}/datasets/versions/{dataset.pk}/examples/0/edit/", wait_until="networkidle")
    page.click("#msg-1 details summary")
    page.fill("#m-1-tool_calls", "[not json")
    page.click("#edit-form button[value=form]")
    page.wait_for_selector("#edit-error")
    assert "not valid JSON" in page.inner_text("#msg-1")
    assert DatasetVersion.objects.filter(dataset_id=dataset.dataset_id).count() == 3
    assert [e for e in errors if "422" not in e] == []
    ctx.close()
