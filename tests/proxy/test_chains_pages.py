"""Dashboard pages of providers and chains: admins only, htmx forms with field errors, the key never shown."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_members_get_403(client, member):
    client.force_login(member)
    for url in ("/proxy/providers/", "/proxy/aliases/coder/chain"):
        assert client.get(url).status_code == 403
    assert client.post("/proxy/providers/", {"name": "x"}).status_code == 403


def test_add_edit_and_fetch_models(admin_client, fault_upstream):
    from apps.proxy.models import Provider

    r = admin_client.get("/proxy/providers/")
    assert r.status_code == 200 and b"No providers yet" in r.content
    data = {"name": "faulty", "kind": "openai", "base_url": fault_upstream.url + "/v1", "api_key": "sk-test",
            "connect_s": "2", "first_byte_s": "", "total_s": "", "max_concurrency": "", "context_length": "",
            "enabled": "on"}
    r = admin_client.post("/proxy/providers/", {**data, "base_url": "not a url"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and b"an http(s) URL" in r.content and b'id="provider-form"' in r.content
    assert b"<html" not in r.content  # the form's partial only
    r = admin_client.post("/proxy/providers/", data, HTTP_HX_REQUEST="true")
    p = Provider.objects.get(name="faulty")
    assert r.status_code == 204 and r["HX-Redirect"] == f"/proxy/providers/{p.pk}/"
    assert p.connect_timeout_s == 2.0 and p.first_byte_timeout_s == 60.0 and p.has_key
    r = admin_client.get(f"/proxy/providers/{p.pk}/")
    assert r.status_code == 200 and b"sk-test" not in r.content and b"stored (encrypted)" in r.content
    r = admin_client.post(f"/proxy/providers/{p.pk}/models", HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and b"ok-b" in r.content and b'id="models"' in r.content
    # edit: an empty key field keeps the key; "remove" removes it
    r = admin_client.post(f"/proxy/providers/{p.pk}/", {**data, "api_key": "", "max_concurrency": "3"})
    p.refresh_from_db()
    assert r.status_code == 302 and p.has_key and p.max_concurrency == 3
    admin_client.post(f"/proxy/providers/{p.pk}/", {**data, "api_key": "", "remove_key": "on"})
    p.refresh_from_db()
    assert not p.has_key
    r = admin_client.post(f"/proxy/providers/{p.pk}/models", HTTP_HX_REQUEST="true")
    assert b"answered HTTP 401" in r.content
    assert admin_client.get("/proxy/providers/999999/").status_code == 404


def test_chain_editor(admin_client, chains, versions):
    assert admin_client.get("/proxy/aliases/coder/chain").status_code == 404  # no such alias yet
    r = admin_client.post("/proxy/chains/new", {"name": "coder"})
    assert r.status_code == 302 and r["Location"] == "/proxy/aliases/coder/chain?new=1"
    r = admin_client.get(r["Location"])
    assert r.status_code == 200 and b"saving a chain creates it" in r.content
    assert admin_client.get("/proxy/aliases/-1/chain?new=1").status_code == 404
    form = {"target_0": f"version:{versions['local'].pk}", "target_1": "", "target_2": "faulty/ok-b",
            "max_tokens": "256", "temperature": "", "timeout_s": "", "system_prefix": "Be brief.",
            "limit_tools": "on", "tools_allow": "Read\nBash"}
    r = admin_client.post("/proxy/aliases/coder/chain", {**form, "target_2": "nope/ok"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and b"no provider named" in r.content
    r = admin_client.post("/proxy/aliases/coder/chain", form, HTTP_HX_REQUEST="true")
    assert r.status_code == 204, r.content
    from apps.proxy.selectors import chain_get

    chain = chain_get("coder")
    assert [t["label"] for t in chain["targets"]] == [f"version:{versions['local'].pk}", "provider:faulty/ok-b"]
    assert chain["settings"]["max_tokens"] == 256 and chain["settings"]["tools_allow"] == ["Read", "Bash"]
    r = admin_client.get("/proxy/aliases/coder/chain")
    assert b"provider:faulty/ok-b" in r.content
    r = admin_client.get("/proxy/providers/")
    assert b"coder" in r.content and b"max 256 tokens" in r.content
    r = admin_client.post("/proxy/aliases/coder/chain/delete")
    assert r.status_code == 302 and admin_client.get("/proxy/aliases/coder/chain").status_code == 404
