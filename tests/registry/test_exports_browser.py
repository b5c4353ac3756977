"""The export pages in a real browser (Debian's chromium through Playwright, pytest-django's live server with the real
Content-Security-Policy): the version page's Exports section (the quantization select shows only for GGUF, the list
with a succeeded, a degraded, a failed and a running export, sizes and checks in words) and an export's own page
(checks table, timings, answers compared, the #bundles slot); no CSP violation, console error or uncaught exception.

With EXPORT_SHOTS=<folder> both pages (and the empty state) are saved there as 1440x900 screenshots, to be looked at."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import logged_in_page
from tests.registry.exports_fixtures import lora_version, tiny_adapter_dir  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = os.environ.get("EXPORT_SHOTS")


def _tab(browser, live_server, user):
    return logged_in_page(browser, live_server, user, timeout_ms=15_000, ignore=("status of 404",))


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def _exports(version, user, monkeypatch):
    """A succeeded adapter export, a degraded merged one, a failed GGUF one and a GGUF one still converting."""
    from apps.core.jobs import services as job_services
    from apps.registry.exports import checks, services
    from workers.engine.llamacpp import toolchain

    ok = services.export_create(actor=user, model_version_id=version.pk, format="adapter", inline=True)
    monkeypatch.setitem(checks.THRESHOLDS, "merged", {"ppl_delta_pct": 0.5, "greedy_agreement": 1.01,
                                                      "tool_validity_drop": 0.0})
    degraded = services.export_create(actor=user, model_version_id=version.pk, format="merged", inline=True)
    monkeypatch.setattr(toolchain, "find", lambda **kw: None)

    def failing(**kw):
        raise toolchain.LlamaCppError("Compiling llama.cpp failed.",
                                      "ggml.c:12:3: error: expected ';' before '}'\nninja: build stopped: subcommand failed.")

    monkeypatch.setattr(toolchain, "ensure", failing)
    failed = services.export_create(actor=user, model_version_id=version.pk, format="gguf", quantization="q8_0",
                                    inline=True)
    running = services.export_create(actor=user, model_version_id=version.pk, format="gguf", quantization="q4_k_m")
    job = job_services.job_claim(job_id=services.export_job(running).pk, holder="gpu-worker:4242")
    job_services.job_set_phase(job_id=job.pk, phase="converting")
    job_services.job_progress(job_id=job.pk, current=40, total=100, unit="%", message="convert", force=True)
    assert (ok.status, degraded.status, failed.status) == ("succeeded", "degraded", "failed")
    return ok, degraded, failed, running


def test_export_pages(browser, live_server, lora_version, member, monkeypatch):
    ctx, page, errors = _tab(browser, live_server, member)
    page.goto(f"{live_server.url}/models/{lora_version.pk}/", wait_until="networkidle")
    assert page.locator("#exports").is_visible() and "No exports yet." in page.locator("#export-list").inner_text()
    page.select_option("#id_format", "merged")
    assert not page.locator("#id_quantization").is_visible()
    page.select_option("#id_format", "gguf")
    assert page.locator("#id_quantization").is_visible()
    page.locator("#exports").scroll_into_view_if_needed()
    _shot(page, "version-exports-empty")

    ok, degraded, failed, running = _exports(lora_version, member, monkeypatch)
    page.reload(wait_until="networkidle")  # (a goto that only adds "#exports" would not reload)
    rows = page.locator("#export-list tbody tr")
    assert rows.count() == 4
    text = page.locator("#export-list").inner_text()
    assert "greedy agreement 4/4" in text and "perplexity ±0.0 %" in text
    assert "Greedy answers agree on 100 % of their tokens" in text  # the degraded one's reason, in words
    assert "Compiling llama.cpp failed." in text and "converting" in text and "40 / 100 %" in text
    assert "\xa0KB" in text or "\xa0MB" in text  # sizes formatted (filesizeformat)
    assert "#4 GGUF q4_k_m" in text or "GGUF" in text
    assert page.locator(f"#export-{ok.pk} a.button", has_text="Download").count() == 1
    page.locator("#exports").scroll_into_view_if_needed()
    _shot(page, "version-exports")

    page.goto(f"{live_server.url}/models/exports/{degraded.pk}/", wait_until="networkidle")
    body = page.locator("main").inner_text() if page.locator("main").count() else page.inner_text("body")
    assert "Round-trip checks" in body and "Degraded:" in body and "Load, merge and save the weights" in body and "Answers compared" in body
    assert page.locator("#bundles").count() == 1
    _shot(page, "export-degraded")
    page.goto(f"{live_server.url}/models/exports/{failed.pk}/", wait_until="networkidle")
    assert "expected ';' before '}'" in page.locator("pre.export-error").inner_text()
    _shot(page, "export-failed")
    page.goto(f"{live_server.url}/models/exports/{ok.pk}/", wait_until="networkidle")
    _shot(page, "export-succeeded")
    assert not [e for e in errors if "bundles" not in e], errors
    assert page.evaluate("window.__csp") == []
    ctx.close()
