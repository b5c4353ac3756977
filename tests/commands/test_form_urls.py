"""The command bar's `form_url` carries what the command said (issue 14): the generate page gets the parsed
generation options, the model page the deploy's alias, canary share and reason, as the training form already
did (`/runs/new/?...`). Only what was parsed goes into the query string; the pages prefill from it
(tests/sources/test_generate_prefill.py, tests/registry/test_deploy_prefill.py)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from apps.commands.services import command_parse
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


def _query(url: str) -> dict:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


@pytest.fixture
def eliza(member):
    from apps.sources.models import Source

    return Source.objects.create(name="ElizaOS", kind="path", location="/srv/eliza", location_key="/srv/eliza",
                                 owner=member)


def test_generate_form_url_carries_the_parsed_options(member, eliza):
    out = command_parse(user=member, text="generate from ElizaOS with max 250 scenarios without tests, "
                                          "exclude complex, seed 7")
    assert out["form_url"].startswith(f"/sources/{eliza.pk}/generate/?")
    assert _query(out["form_url"]) == {"max_examples": ["250"], "seed": ["7"], "include_tests": ["false"],
                                       "exclude_complex": ["true"]}


def test_generate_form_url_carries_generators_and_the_teacher(member, eliza):
    out = command_parse(user=member, text="generate from ElizaOS with teacher production temperature 0.5")
    q = _query(out["form_url"])
    assert q == {"teacher": ["hub"], "teacher_model": ["production"], "temperature": ["0.5"]}
    out = command_parse(user=member, text="generate from ElizaOS with generators fim and docstring")
    gens = out["params"]["generators"]
    assert gens and _query(out["form_url"]) == {"generators": gens}


def test_generate_with_nothing_said_links_the_bare_page(member, eliza):
    out = command_parse(user=member, text="generate from ElizaOS")
    assert out["form_url"] == f"/sources/{eliza.pk}/generate/"


def test_deploy_form_url_carries_the_alias(admin_user):
    v = ModelVersionFactory(name="good one")
    out = command_parse(user=admin_user, text=f"deploy version {v.pk} to staging")
    assert out["form_url"] == f"/models/{v.pk}/?alias=staging"


def test_deploy_form_url_carries_the_canary_and_the_reason(admin_user):
    v = ModelVersionFactory(name="good one")
    out = command_parse(user=admin_user, text=f"deploy version {v.pk} to staging as a 10% canary because "
                                              "better tool calls")
    q = _query(out["form_url"])
    assert q == {"alias": ["staging"], "canary": ["true"], "canary_percent": ["10"],
                 "reason": [out["api"]["body"]["reason"]]} and "tool calls" in q["reason"][0]


def test_deploy_without_an_alias_links_the_bare_page(admin_user):
    v = ModelVersionFactory(name="good one")
    out = command_parse(user=admin_user, text=f"deploy version {v.pk}")
    assert out["form_url"] == f"/models/{v.pk}/" and "alias" in out["missing"]
