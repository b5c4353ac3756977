"""The model page's deploy form prefills from the query string (issue 14: the command bar's form_url, e.g.
`/models/3/?alias=staging&canary=true&canary_percent=10&reason=...`). Each value is checked by its form field
and a bad one is left out (never a 500); nothing is deployed on GET, and the deploy is still confirmed."""
from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from apps.commands.services import command_parse
from apps.registry.models import Alias
from tests.factories import ModelVersionFactory
from tests.test_url_fuzz import BAD_QUERY_VALUES

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss(client, admin_user):
    client.force_login(admin_user)
    return client


def _input(html: str, name: str) -> str:
    m = re.search(rf'<input\b[^>]*name="{name}"[^>]*>', html)
    assert m, f"no input {name}"
    return m.group(0)


def test_the_command_bars_form_url_prefills_the_alias(boss, admin_user):
    v = ModelVersionFactory(name="good one")
    out = command_parse(user=admin_user, text=f"deploy version {v.pk} to staging")
    r = boss.get(out["form_url"])
    assert r.status_code == 200
    html = r.content.decode()
    assert 'value="staging"' in _input(html, "alias") and "checked" not in _input(html, "canary")
    assert '<details class="hp-group" open>' not in html  # the canary options stay folded
    assert not Alias.objects.exists()  # nothing moves on GET


def test_a_canary_command_prefills_the_canary_and_the_reason(boss, admin_user):
    v = ModelVersionFactory(name="good one")
    out = command_parse(user=admin_user, text=f"deploy version {v.pk} to staging as a 25% canary because "
                                              "better tool calls")
    html = boss.get(out["form_url"]).content.decode()
    assert 'value="staging"' in _input(html, "alias") and "checked" in _input(html, "canary")
    assert 'value="25"' in _input(html, "canary_percent") and "better tool calls" in _input(html, "reason")
    assert '<details class="hp-group" open>' in html  # shown unfolded


def test_without_a_query_the_alias_is_empty(boss):
    v = ModelVersionFactory(name="good one")
    html = boss.get(f"/models/{v.pk}/").content.decode()
    assert "value=" not in _input(html, "alias") and 'value="10"' in _input(html, "canary_percent")


@pytest.mark.parametrize("bad", [b for b in BAD_QUERY_VALUES if b != "\x00"] + ["not a slug!", "maybe", "x" * 101,
                                                                                "<script>"])
def test_bad_values_are_left_out(boss, bad):
    v = ModelVersionFactory(name="good one")
    keys = ("alias", "reason", "canary", "canary_percent", "error_rate", "p95_ms", "window_minutes", "hold_minutes",
            "auto_promote", "confirm")
    r = boss.get(f"/models/{v.pk}/?" + "&".join(f"{k}={quote(bad)}" for k in keys))
    assert r.status_code == 200, bad
    html = r.content.decode()
    assert 'id="deploy-form"' in html and "<script>" not in _input(html, "reason")
    alias = _input(html, "alias")
    assert "value=" not in alias or (re.fullmatch(r"[-\w]+", bad) and len(bad) <= 100), alias
    pct = re.search(r'value="([^"]*)"', _input(html, "canary_percent")).group(1)
    assert pct == "10" or (bad.isdigit() and 1 <= int(bad) <= 99 and pct == bad)
    assert "Yes, deploy to" not in html  # never the confirmation step from a link
    assert not Alias.objects.exists()
