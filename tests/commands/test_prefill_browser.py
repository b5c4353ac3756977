"""The command bar's form_urls in a browser (issue 14): the generate page and the model page's deploy form open
with the command's values filled in, with no console error or CSP violation. Screenshots with
HUB_SHOTS=<folder>."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from apps.commands.services import command_parse
from tests.browser import logged_in_page
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db(transaction=True)
SHOTS = os.environ.get("HUB_SHOTS")


def _shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_prefilled_generate_and_deploy_forms(browser, live_server, admin_user):
    from apps.sources.models import Source

    src = Source.objects.create(name="ElizaOS", kind="path", location="/srv/eliza", location_key="/srv/eliza",
                                owner=admin_user)
    out = command_parse(user=admin_user, text="generate from ElizaOS with max 250 scenarios without tests, "
                                              "exclude complex, seed 7, generators fim and docstring")
    assert out["form_url"].startswith(f"/sources/{src.pk}/generate/?")
    ctx, page, errors = logged_in_page(browser, live_server, admin_user)
    try:
        page.goto(live_server.url + out["form_url"], wait_until="networkidle")
        assert page.input_value("#id_max_examples") == "250" and page.input_value("#id_seed") == "7"
        assert not page.is_checked("#id_include_tests") and page.is_checked("#id_exclude_complex")
        assert page.is_checked("input[name=generators][value=fim]")
        assert not page.is_checked("input[name=generators][value=commit]")
        assert "~250" in page.inner_text("#estimate")
        _shot(page, "generate-prefilled")

        v = ModelVersionFactory(name="good one")
        out = command_parse(user=admin_user, text=f"deploy version {v.pk} to staging as a 25% canary because "
                                                  "better tool calls")
        page.goto(live_server.url + out["form_url"], wait_until="networkidle")
        assert page.input_value("#id_alias") == "staging" and page.is_checked("#id_canary")
        assert page.input_value("#id_canary_percent") == "25"
        assert page.input_value("#id_reason") == "better tool calls"
        _shot(page, "deploy-prefilled")
        page.locator("#id_canary_percent").scroll_into_view_if_needed()
        _shot(page, "deploy-prefilled-canary")
        assert errors == []
    finally:
        ctx.close()
