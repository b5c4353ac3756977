"""The Requests page: filters, full-text search, keyset pages, the viewer (escaped, JSON pretty), and who
sees what (members their own requests, admins everyone's)."""
from __future__ import annotations

import datetime as dt
import html

import pytest
from django.urls import reverse

from apps.traffic import selectors
from apps.traffic.models import RequestEntry
from tests.factories import ApiKeyFactory, UserFactory
from tests.traffic.conftest import chat_request, chat_response


@pytest.fixture
def traffic(log_request, member, admin_user):
    other = UserFactory(username="other")
    key = ApiKeyFactory(user=member, name="ci")
    rows = {
        "paris": log_request(user=member, text="What is the capital of France?", answer="Paris, of course.",
                             api_key_id=key.pk, latency_ms=90.0),
        "slow": log_request(user=member, text="Explain quantum tunnelling slowly", latency_ms=4000.0,
                            served_by="provider:openrouter/gpt-4o", fallback=True, alias="production"),
        "bad": log_request(user=member, text="broken request", status_code=422, response={}, error="bad body"),
        "down": log_request(user=member, text="upstream died", status_code=502, response={}, error="upstream 500",
                            model_requested="staging", alias="staging", served_by="version:2"),
        "old": log_request(user=member, text="an old question about penguins", ago_s=3 * 86400),
        "theirs": log_request(user=other, text="someone else's secret question about penguins"),
    }
    return {"rows": rows, "key": key, "other": other}


def _ids(qs):
    return {e.log.request_id for e in qs.select_related("log")}


def _f(user, **filters):
    return _ids(selectors.filtered(user=user, filters=filters))


def test_every_logged_request_gets_an_entry_with_the_proxy_fields(traffic):
    e = RequestEntry.objects.get(log=traffic["rows"]["slow"])
    assert e.served_by == "provider:openrouter/gpt-4o" and e.fallback and e.alias == "production"
    assert e.preview == "Explain quantum tunnelling slowly"
    assert RequestEntry.objects.get(log=traffic["rows"]["paris"]).api_key_id == traffic["key"].pk


def test_filters(traffic, member):
    r = {k: v.request_id for k, v in traffic["rows"].items()}
    assert _f(member) == {r["paris"], r["slow"], r["bad"], r["down"], r["old"]}  # not "theirs"
    assert _f(member, model="staging") == {r["down"]}
    assert _f(member, key=traffic["key"].pk) == {r["paris"]}
    assert _f(member, status="ok") == {r["paris"], r["slow"], r["old"]}
    assert _f(member, status="4xx") == {r["bad"]}
    assert _f(member, status="5xx") == {r["down"]}
    assert _f(member, status="error") == {r["bad"], r["down"]}
    assert _f(member, served_by="provider:openrouter/gpt-4o") == {r["slow"]}
    assert _f(member, fallback="yes") == {r["slow"]}
    assert r["slow"] not in _f(member, fallback="no")
    assert _f(member, latency_min=1000) == {r["slow"]}
    assert r["slow"] not in _f(member, latency_max=1000)
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    assert r["old"] not in _f(member, since=since) and r["paris"] in _f(member, since=since)
    assert _f(member, until=since) == {r["old"]}


def test_full_text_search(traffic, member, admin_user):
    r = {k: v.request_id for k, v in traffic["rows"].items()}
    assert _f(member, q="capital France") == {r["paris"]}
    assert _f(member, q="Paris") == {r["paris"]}  # the answer is searched too
    assert _f(member, q="penguins") == {r["old"]}  # the other member's request stays hidden
    assert _f(admin_user, q="penguins") == {r["old"], r["theirs"]}
    assert _f(member, q="nothing-like-this") == set()


def test_full_text_search_uses_postgres_when_available(traffic, member):
    from django.db import connection

    qs = selectors.filtered(user=member, filters={"q": "france"})
    sql = str(qs.query)
    if connection.vendor == "postgresql":
        assert "websearch_to_tsquery" in sql and RequestEntry.objects.exclude(search=None).count() == 6
        assert _ids(qs) == {traffic["rows"]["paris"].request_id}  # stemmed: "france" finds "France?"
    else:
        assert "LIKE" in sql.upper()


def test_keyset_pages(log_request, member):
    rows = [log_request(user=member, text=f"question number {i}") for i in range(7)]
    qs = selectors.filtered(user=member, filters={})
    first = selectors.page(qs, size=3)
    assert [e.log_id for e in first.rows] == [r.pk for r in reversed(rows)][:3]
    assert first.total == 7 and first.newer is None and first.older
    second = selectors.page(qs, before=first.older, size=3)
    assert [e.log_id for e in second.rows] == [r.pk for r in reversed(rows)][3:6]
    third = selectors.page(qs, before=second.older, size=3)
    assert [e.log_id for e in third.rows] == [rows[0].pk] and third.older is None
    back = selectors.page(qs, after=second.newer, size=3)
    assert [e.log_id for e in back.rows] == [e.log_id for e in first.rows]
    assert selectors.page(qs, before="garbage", size=3).rows == first.rows  # a bad cursor is the first page


def test_page_renders_filters_and_rows(client, traffic, member):
    client.force_login(member)
    resp = client.get(reverse("traffic:requests"), {"status": "5xx"})
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "upstream died" in body and "capital of France" not in body
    assert 'name="ids"' in body and "Add to dataset" in body
    assert "someone else" not in client.get(reverse("traffic:requests")).content.decode()


def test_bad_filters_are_field_errors(client, member, traffic):
    client.force_login(member)
    resp = client.get(reverse("traffic:requests"), {"latency_min": "fast", "key": "999999", "since": "yesterday"})
    assert resp.status_code == 422
    body = resp.content.decode()
    assert body.count('class="field-error"') >= 3 and "Fix the filters" in body
    resp = client.get(reverse("traffic:requests"), {"latency_min": "500", "latency_max": "100"})
    assert resp.status_code == 422 and "at least the minimum" in resp.content.decode()


def test_admin_sees_everyone_and_the_users(client, admin_user, traffic):
    client.force_login(admin_user)
    body = client.get(reverse("traffic:requests")).content.decode()
    assert "someone else" in body and "other" in body


def test_viewer_escapes_content_and_shows_tools_and_pretty_json(client, log_request, member):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Find <b>things</b>",
                                               "parameters": {"type": "object"}}}]
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": \"<x>\"}"}}
    row = log_request(user=member, request=chat_request(evil, tools=tools),
                      response=chat_response(tool_calls=[call], finish="tool_calls"))
    client.force_login(member)
    resp = client.get(reverse("traffic:detail", args=[row.pk]))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "<script>alert" not in body and "<img src=x" not in body
    assert html.escape(evil, quote=False) in body or "&lt;script&gt;" in body
    assert "tool call <strong>lookup</strong>" in body  # the answer's tool call, rendered as a turn
    assert "Find &lt;b&gt;things&lt;/b&gt;" in body
    assert '&quot;role&quot;: &quot;user&quot;' in body  # pretty JSON (indented), escaped: not a Python repr
    assert "{'role'" not in body and "&#x27;role&#x27;" not in body
    assert '<a href="/models/1/">mv-1</a>' in body and "version:1" not in body and "100 ms" in body  # served by, attempts


def test_viewer_of_someone_elses_request_is_404(client, traffic, member, admin_user):
    client.force_login(member)
    assert client.get(reverse("traffic:detail", args=[traffic["rows"]["theirs"].pk])).status_code == 404
    client.force_login(admin_user)
    assert client.get(reverse("traffic:detail", args=[traffic["rows"]["theirs"].pk])).status_code == 200


def test_pages_need_a_login(client):
    for name in ("traffic:requests", "traffic:rules", "traffic:health"):
        resp = client.get(reverse(name))
        assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]
