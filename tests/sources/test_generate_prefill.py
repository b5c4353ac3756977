"""The generate page prefills its options from the query string (issue 14: the command bar's form_url, e.g.
`/sources/3/generate/?max_examples=250&include_tests=false`): each value checked by its form field, a bad one
left out (the page keeps its own value, never a 500). Nothing starts on GET."""
from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from apps.commands.services import command_parse
from apps.sources.models import Generation, Source
from tests.test_url_fuzz import BAD_QUERY_VALUES

pytestmark = pytest.mark.django_db


@pytest.fixture
def eliza(member):
    return Source.objects.create(name="ElizaOS", kind="path", location="/srv/eliza", location_key="/srv/eliza",
                                 owner=member)


def _input(html: str, name: str, value: str | None = None) -> str:
    """The <input> (or <select>) tag of field `name` (of the checkbox with `value`)."""
    for tag in re.findall(r"<(?:input|select)\b[^>]*>", html):
        if f'name="{name}"' in tag and (value is None or f'value="{value}"' in tag):
            return tag
    raise AssertionError(f"no input {name}={value}")


def _selected(html: str, name: str) -> str | None:
    m = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.DOTALL)
    chosen = re.search(r'<option value="([^"]*)"[^>]*selected', m.group(1)) if m else None
    return chosen.group(1) if chosen else None


def test_the_command_bars_form_url_opens_the_form_prefilled(owner_client, member, eliza):
    out = command_parse(user=member, text="generate from ElizaOS with max 250 scenarios without tests, exclude "
                                          "complex, seed 7, generators fim and docstring")
    r = owner_client.get(out["form_url"])
    assert r.status_code == 200
    html = r.content.decode()
    assert 'value="250"' in _input(html, "max_examples") and 'value="7"' in _input(html, "seed")
    assert "checked" not in _input(html, "include_tests") and "checked" in _input(html, "exclude_complex")
    assert "checked" not in _input(html, "include_config")
    chosen = out["params"]["generators"]
    for g in ("fim", "docstring", "commit"):
        assert ("checked" in _input(html, "generators", g)) == (g in chosen), g
    assert "~250" in html  # the estimate is of the prefilled options
    assert not Generation.objects.exists()


def test_the_teacher_is_prefilled(owner_client, member, eliza):
    out = command_parse(user=member, text="generate from ElizaOS with teacher production temperature 0.5")
    html = owner_client.get(out["form_url"]).content.decode()
    assert _selected(html, "teacher") == "hub"
    assert 'value="production"' in _input(html, "teacher_model") and 'value="0.5"' in _input(html, "temperature")


def test_without_a_query_the_page_keeps_its_defaults(owner_client, eliza):
    html = owner_client.get(f"/sources/{eliza.pk}/generate/").content.decode()
    assert 'value="1000"' in _input(html, "max_examples") and "checked" in _input(html, "include_tests")


@pytest.mark.parametrize("bad", [b for b in BAD_QUERY_VALUES if b != "\x00"] + ["maybe", "0", "nan", "fim,nope"])
def test_bad_values_are_left_out(owner_client, eliza, bad):
    keys = ("max_examples", "seed", "include_tests", "include_config", "exclude_complex", "run_tests", "generators",
            "teacher", "teacher_model", "teacher_provider", "temperature", "requests_per_minute", "price_in",
            "test_timeout", "max_test_runs")
    query = "&".join(f"{k}={quote(bad)}" for k in keys)
    r = owner_client.get(f"/sources/{eliza.pk}/generate/?{query}")
    assert r.status_code == 200, bad
    html = r.content.decode()
    assert 'id="options-form"' in html
    shown = re.search(r'value="([^"]*)"', _input(html, "max_examples")).group(1)
    assert shown == "1000" or (bad.isdigit() and 1 <= int(bad) <= 100_000 and shown == bad)


def test_a_nul_byte_is_refused_before_the_view(owner_client, eliza):
    assert owner_client.get(f"/sources/{eliza.pk}/generate/?max_examples=%00").status_code == 422
