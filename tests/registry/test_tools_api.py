"""The tool registry over /api (list, define, edit, delete, scan, docs.md; writes for admins only, field errors
as 422) and its dashboard page (/models/tools/)."""
from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.registry.models import Tool
from tests.factories import DatasetVersionFactory

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
          "required": ["city"]}


@pytest.fixture
def api(api_key):
    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")


@pytest.fixture
def admin_api(admin_key):
    return Client(HTTP_AUTHORIZATION=f"Bearer {admin_key}")


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def tool_version(owner):
    return DatasetVersionFactory(owner=owner, examples=[
        {"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}]},
        {"messages": [{"role": "user", "content": "Attack"}, {"role": "assistant", "content": "Hit! [roll: d20+2]"}]},
    ])


def test_members_read_admins_write(api, admin_api):
    assert Client().get("/api/tools").status_code == 401
    r = api.get("/api/tools")
    assert r.status_code == 200 and {t["name"] for t in r.json()} >= {"roll", "health", "save"}
    roll = api.get("/api/tools/roll").json()
    assert roll["origin"] == "builtin" and roll["example_call"] == "[roll: d20+5]"
    assert roll["parameters"]["required"] == ["dice"]

    assert post(api, "/api/tools", {"name": "get_weather", "parameters": SCHEMA}).status_code == 403
    assert api.patch("/api/tools/roll", json.dumps({"description": "x"}), content_type="application/json").status_code == 403
    assert api.delete("/api/tools/roll").status_code == 403
    assert post(api, "/api/tools/scan", {"dataset_version_id": 1}).status_code == 403

    r = post(admin_api, "/api/tools", {"name": "get_weather", "parameters": SCHEMA, "description": "Weather."})
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["origin"] == "admin" and body["call_format"] == "openai" and body["parameters"] == SCHEMA
    assert json.loads(json.loads(body["example_call"])["function"]["arguments"]) == {"city": "<city>", "days": 1}
    r = admin_api.patch("/api/tools/get_weather", json.dumps({"call_format": "hermes"}), content_type="application/json")
    assert r.status_code == 200 and r.json()["call_format"] == "hermes" and r.json()["parameters"] == SCHEMA
    assert admin_api.delete("/api/tools/roll").status_code == 409
    assert admin_api.delete("/api/tools/get_weather").status_code == 204
    assert admin_api.get("/api/tools/get_weather").status_code == 404
    assert admin_api.delete("/api/tools/get_weather").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"name": "bad name", "parameters": SCHEMA}, "name"),
    ({"name": "ok", "parameters": {"type": "object", "properties": {"city": {"type": "str"}}}},
     "parameters.properties.city.type"),
    ({"name": "ok", "parameters": {"type": "array"}}, "parameters.type"),
    ({"name": "ok", "parameters": {"type": "object", "properties": {}, "required": ["city"]}}, "parameters.required"),
    ({"name": "ok", "parameters": "not an object"}, "parameters"),
    ({"name": "ok", "parameters": SCHEMA, "call_format": "xml"}, "call_format"),
])
def test_bad_definitions_are_422_with_the_field(admin_api, body, field):
    r = post(admin_api, "/api/tools", body)
    assert r.status_code == 422, r.content
    assert r.json()["errors"][0]["field"] == field and r.json()["errors"][0]["message"]
    assert not Tool.objects.filter(name="ok").exists()


def test_scan_and_docs_over_the_api(admin_api, admin_user):
    v = tool_version(admin_user)
    r = post(admin_api, "/api/tools/scan", {"dataset_version_id": v.pk})
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["calls"] == 2 and body["created"] == ["get_weather"] and body["examples"] == 2
    assert post(admin_api, "/api/tools/scan", {"dataset_version_id": v.pk}).json()["calls"] == 2
    w = admin_api.get("/api/tools/get_weather").json()
    assert w["origin"] == "scan" and w["observed"]["calls"] == 1 and w["parameters"]["required"] == ["city"]
    r = post(admin_api, "/api/tools/scan", {"dataset_version_id": v.pk + 999})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "dataset_version_id"

    r = admin_api.get("/api/tools/docs.md")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/markdown")
    assert 'filename="tools.md"' in r["Content-Disposition"]
    text = r.content.decode()
    assert "## `get_weather`" in text and "## `roll`" in text and "Seen 1 time in 1 dataset version" in text


def test_the_page_lists_defines_edits_scans_and_downloads(client, admin_user, member):
    v = tool_version(admin_user)
    client.force_login(member)
    r = client.get("/models/tools/")
    assert r.status_code == 200 and b"roll" in r.content and b"Only admins" in r.content
    assert b'id="tool-form"' not in r.content
    r = client.post("/models/tools/save", {"name": "x1", "parameters": "{}", "call_format": "openai"})
    assert r.status_code == 403 and not Tool.objects.filter(name="x1").exists()
    assert b"tool-registry-link" in client.get("/models/").content

    client.force_login(admin_user)
    r = client.post("/models/tools/save", {"name": "get_weather", "call_format": "openai",
                                          "parameters": '{"type": "object", "properties": {"city": {"type": "txt"}}}'})
    assert r.status_code == 422 and b"properties.city.type" in r.content and b"field-error" in r.content
    r = client.post("/models/tools/save", {"name": "get_weather", "call_format": "openai", "parameters": "{oops"})
    assert r.status_code == 422 and b"Not valid JSON" in r.content
    r = client.post("/models/tools/save", {"name": "<b>bad</b>", "call_format": "openai", "parameters": "{}"})
    assert r.status_code == 422 and b"&lt;b&gt;bad" in r.content and b"<b>bad" not in r.content
    r = client.post("/models/tools/save", {"name": "get_weather", "call_format": "openai",
                                          "description": "<script>x</script>", "parameters": json.dumps(SCHEMA)})
    assert r.status_code == 302 and Tool.objects.get(name="get_weather").origin == "admin"
    r = client.get("/models/tools/")
    assert b"<script>x</script>" not in r.content and b"&lt;script&gt;x&lt;/script&gt;" in r.content
    r = client.get("/models/tools/?edit=get_weather")
    assert b"Edit <span class=\"mono\">get_weather</span>" in r.content and b"readonly" in r.content
    r = client.post("/models/tools/save", {"name": "get_weather", "editing": "get_weather", "call_format": "bracket",
                                          "description": "Weather.", "parameters": json.dumps(SCHEMA)})
    assert r.status_code == 302 and Tool.objects.get(name="get_weather").call_format == "bracket"
    r = client.get("/models/tools/?edit=no%20such")
    assert r.status_code == 200 and b"No such tool to edit" in r.content  # a bad name: a message, not a 500
    assert client.get("/models/tools/?edit=%00").status_code == 422

    r = client.post("/models/tools/scan", {"dataset_version_id": str(v.pk)}, follow=True)
    assert r.status_code == 200 and b"Scanned" in r.content and b"2 tool call(s)" in r.content
    assert Tool.objects.get(name="roll").observed["calls"] == 1
    r = client.post("/models/tools/scan", {"dataset_version_id": "999999"})
    assert r.status_code == 422 and b"field-error" in r.content

    r = client.post("/models/tools/roll/delete", follow=True)
    assert b"cannot be deleted" in r.content and Tool.objects.filter(name="roll").exists()
    client.post("/models/tools/get_weather/delete")
    assert not Tool.objects.filter(name="get_weather").exists()

    r = client.get("/models/tools/docs.md")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/markdown") and b"## `roll`" in r.content


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_page_in_a_browser(browser, live_server, admin_user):
    """No CSP violation, console error or raw JSON on the page, empty (builtins only) and with scanned tools and a
    schema error. With TOOLS_SHOTS=<folder>: 1440x900 screenshots there."""
    import os
    from pathlib import Path

    from tests.browser import PROBE

    shots = os.environ.get("TOOLS_SHOTS")
    c = Client()
    c.force_login(admin_user)
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    ctx.add_cookies([{"name": "sessionid", "value": c.cookies["sessionid"].value, "url": live_server.url}])
    ctx.add_init_script(PROBE)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text)  # the form's 422 answer is expected
            if m.type == "error" and "status of 422" not in m.text else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def shot(name):
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"{name}.png"))
            page.screenshot(path=str(Path(shots) / f"{name}-full.png"), full_page=True)

    try:
        page.goto(live_server.url + "/models/tools/")
        assert page.locator("#tools tr").count() == 7  # the header and the six builtin tools
        assert "not yet" in page.locator("#tools").inner_text()
        shot("tools-empty")
        assert "No ready dataset versions" in page.locator("#scan").inner_text()
        v = tool_version(admin_user)
        page.reload()
        page.select_option("#id_dataset_version_id", str(v.pk))
        page.click("#scan button[type=submit]")
        page.wait_for_selector(".messages")
        assert "Scanned" in page.locator(".messages").inner_text()
        page.fill("#id_name", "lookup_rule")
        page.fill("#id_parameters", '{"type": "object", "properties": {"rule": {"type": "sting"}}}')
        page.click("#tool-form button[type=submit]")
        assert "properties.rule.type" in page.locator("#tool-form .field-error").first.inner_text()
        page.locator("#tool-form").scroll_into_view_if_needed()
        shot("tools-schema-error")
        page.fill("#id_parameters", '{"type": "object", "properties": {"rule": {"type": "string", '
                                    '"description": "Rule name"}}, "required": ["rule"]}')
        page.fill("#id_description", "Look up a rule of the game.")
        page.click("#tool-form button[type=submit]")
        page.wait_for_selector("text=Tool lookup_rule added.")
        text = page.locator("#tools").inner_text()
        assert "get_weather" in text and "lookup_rule" in text and "{'" not in text and '\\"' not in text
        assert 'get_weather({"city": "Oslo"})' in text
        shot("tools-with-tools")
        page.click("#docs summary")
        page.locator("#docs pre").scroll_into_view_if_needed()
        shot("tools-docs")
        assert "## `get_weather`" in page.locator("#docs pre").inner_text()
        assert list(page.evaluate("() => window.__csp || []")) + errors == []
    finally:
        ctx.close()
