"""/api/providers and /api/aliases/{name}/chain: admins only, field errors for bad input, the provider key
encrypted at rest and never in an answer or a log line, model lists fetched from the provider."""
from __future__ import annotations

import json
import logging

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "sk-test"


def _post(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def _put(client, path, body):
    return client.put(path, data=json.dumps(body), content_type="application/json")


def _patch(client, path, body):
    return client.patch(path, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def provider_body(fault_upstream):
    return {"name": "faulty", "kind": "openai", "base_url": fault_upstream.url + "/v1", "api_key": SECRET,
            "timeouts": {"connect_s": 2, "first_byte_s": 10, "total_s": 60}, "max_concurrency": 4}


def test_create_list_patch_delete_a_provider(admin_api, provider_body):
    from apps.proxy.models import Provider

    r = _post(admin_api, "/api/providers", provider_body)
    assert r.status_code == 201, r.content
    out = r.json()
    assert out["name"] == "faulty" and out["kind"] == "openai" and out["has_key"] is True
    assert out["timeouts"] == {"connect_s": 2.0, "first_byte_s": 10.0, "total_s": 60.0}
    assert out["max_concurrency"] == 4 and out["used_by"] == [] and "api_key" not in out
    assert SECRET not in r.content.decode()
    row = Provider.objects.get(pk=out["id"])
    assert row.api_key_encrypted and SECRET not in row.api_key_encrypted  # encrypted at rest
    from apps.proxy import crypto

    assert crypto.decrypt(row.api_key_encrypted) == SECRET

    r = admin_api.get("/api/providers")
    assert r.status_code == 200 and [p["name"] for p in r.json()] == ["faulty"] and SECRET not in r.content.decode()
    r = _patch(admin_api, f"/api/providers/{out['id']}", {"enabled": False, "timeouts": {"total_s": 30}})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["has_key"] is True
    assert r.json()["timeouts"]["total_s"] == 30.0 and r.json()["timeouts"]["connect_s"] == 2.0
    r = _patch(admin_api, f"/api/providers/{out['id']}", {"api_key": None})
    assert r.status_code == 200 and r.json()["has_key"] is False
    assert admin_api.delete(f"/api/providers/{out['id']}").status_code == 204
    assert admin_api.get(f"/api/providers/{out['id']}").status_code == 404


def test_provider_field_errors(admin_api, provider_body):
    r = _post(admin_api, "/api/providers", {**provider_body, "name": "a/b", "base_url": "ftp://x",
                                            "timeouts": {"connect_s": 0}, "max_concurrency": 0})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"name", "base_url", "timeouts.connect_s", "max_concurrency"}
    assert _post(admin_api, "/api/providers", provider_body).status_code == 201
    r = _post(admin_api, "/api/providers", {**provider_body, "name": "FAULTY"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name"
    r = _post(admin_api, "/api/providers", {**provider_body, "kind": "gemini"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "kind"
    from apps.proxy.models import Provider

    assert Provider.objects.count() == 1  # nothing half-written


def test_members_and_anonymous_cannot_touch_providers_or_chains(api, client, provider_body, admin_user):
    from apps.proxy import providers

    p = providers.provider_create(actor=admin_user, name="p", kind="openai", base_url="http://127.0.0.1:9/v1")
    for method, path, body in [("post", "/api/providers", provider_body), ("get", "/api/providers", None),
                               ("get", f"/api/providers/{p.pk}", None), ("patch", f"/api/providers/{p.pk}", {}),
                               ("delete", f"/api/providers/{p.pk}", None),
                               ("get", f"/api/providers/{p.pk}/models", None),
                               ("put", "/api/aliases/x/chain", {"targets": [{"provider": "p", "model": "m"}]}),
                               ("delete", "/api/aliases/x/chain", None)]:
        kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body is not None else {}
        r = getattr(api, method)(path, **kwargs)
        assert r.status_code == 403, (method, path, r.content)
        assert r.json()["code"] == "permission_denied"
    from django.test import Client

    assert Client().get("/api/providers").status_code == 401


def test_put_chain_creates_the_alias_and_returns_it(admin_api, api_key, provider_body, versions):
    from django.test import Client

    api = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")  # a member, beside the admin's client
    assert _post(admin_api, "/api/providers", provider_body).status_code == 201
    body = {"targets": [{"model_version_id": versions["local"].pk}, {"provider": "faulty", "model": "ok-b"}],
            "settings": {"temperature": 0.2, "max_tokens": 512, "timeout_s": 20, "system_prefix": "Hi.",
                         "tools_allow": ["Read", "Bash"]}}
    r = _put(admin_api, "/api/aliases/coder/chain", body)
    assert r.status_code == 200, r.content
    out = r.json()
    assert out["alias"] == "coder" and out["configured"] is True
    assert [(t["kind"], t["label"]) for t in out["targets"]] == [
        ("model_version", f"version:{versions['local'].pk}"), ("provider", "provider:faulty/ok-b")]
    assert out["settings"] == {"temperature": 0.2, "max_tokens": 512, "timeout_s": 20.0, "system_prefix": "Hi.",
                               "tools_allow": ["Read", "Bash"]}
    assert all(t["breaker"] == "closed" for t in out["targets"])
    assert api.get("/api/aliases/coder/chain").json() == out  # members may read it
    # settings omitted: unchanged; the alias is on /v1/models
    r = _put(admin_api, "/api/aliases/coder/chain", {"targets": [{"provider": "faulty", "model": "ok"}]})
    assert r.json()["settings"]["max_tokens"] == 512 and len(r.json()["targets"]) == 1
    r = admin_api.get("/v1/models")
    assert "coder" in [m["id"] for m in r.json()["data"]]
    # an alias without a chain shows its deployed version; deleting a chain goes back to it
    r = api.get("/api/aliases/production/chain")
    assert r.json()["configured"] is False and r.json()["targets"][0]["model_version_id"] == versions["local"].pk
    assert admin_api.delete("/api/aliases/coder/chain").status_code == 204
    assert api.get("/api/aliases/coder/chain").status_code == 404
    # a provider in a chain cannot be deleted
    _put(admin_api, "/api/aliases/coder/chain", {"targets": [{"provider": "faulty", "model": "ok"}]})
    pid = admin_api.get("/api/providers").json()[0]["id"]
    r = admin_api.delete(f"/api/providers/{pid}")
    assert r.status_code == 409 and "coder" in r.json()["detail"]


def test_put_chain_field_errors(admin_api, provider_body, versions):
    assert _post(admin_api, "/api/providers", provider_body).status_code == 201
    r = _put(admin_api, "/api/aliases/coder/chain", {"targets": [
        {"model_version_id": 999999}, {"provider": "nope", "model": "x"}, {"provider": "faulty"},
        {"model_version_id": versions["local"].pk, "provider": "faulty", "model": "x"}, {}],
        "settings": {"temperature": 3, "max_tokens": 0}})
    assert r.status_code == 422
    fields = [e["field"] for e in r.json()["errors"]]
    assert fields == ["targets.0.model_version_id", "targets.1.provider", "targets.2.model", "targets.3",
                      "targets.4", "settings.temperature", "settings.max_tokens"]
    r = _put(admin_api, "/api/aliases/brand-new/chain", {"targets": []})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "targets"
    r = _put(admin_api, "/api/aliases/coder/chain", {"targets": [{"deployed": True}]})
    assert r.status_code == 422
    assert admin_api.get("/api/aliases/coder/chain").status_code == 404  # nothing written
    assert _put(admin_api, "/api/aliases/Not_A_Slug/chain", {"targets": []}).status_code == 422


def test_provider_models_are_fetched(admin_api, provider_body, fault_upstream):
    pid = _post(admin_api, "/api/providers", provider_body).json()["id"]
    r = admin_api.get(f"/api/providers/{pid}/models")
    assert r.status_code == 200 and "ok-b" in r.json()["models"] and r.json()["fetched_at"]
    assert "ok-b" in admin_api.get(f"/api/providers/{pid}").json()["models"]
    anth = _post(admin_api, "/api/providers", {"name": "claude", "kind": "anthropic", "base_url": fault_upstream.url,
                                               "api_key": "sk-ant-test"}).json()["id"]
    assert admin_api.get(f"/api/providers/{anth}/models").json()["models"] == ["claude-test-1"]
    _patch(admin_api, f"/api/providers/{pid}", {"api_key": "wrong"})
    r = admin_api.get(f"/api/providers/{pid}/models")
    assert r.status_code == 502 and "check the key" in r.json()["detail"] and "wrong" not in r.content.decode()


def test_the_key_never_reaches_a_response_or_a_log(chains, oai, caplog, monkeypatch):
    """Faults, fallbacks and errors: the provider key is in no answer, no log line and no request-log row."""
    import openai as sdk

    from apps.proxy import services

    logged = []
    monkeypatch.setattr(services, "request_log_enqueue", logged.append)
    caplog.set_level(logging.DEBUG)
    chains.set("fb", [{"provider": "faulty", "model": "401"}, {"provider": "faulty", "model": "500"}])
    with pytest.raises(sdk.InternalServerError) as info:
        oai.chat.completions.create(model="fb", messages=[{"role": "user", "content": "x"}])
    assert SECRET not in info.value.response.text and SECRET not in str(dict(info.value.response.headers))
    chains.set("fb", [{"provider": "faulty", "model": "ok"}])
    r = oai.chat.completions.with_raw_response.create(model="fb", messages=[{"role": "user", "content": "x"}])
    assert SECRET not in r.text and SECRET not in str(dict(r.headers))
    assert chains.upstream.seen[-1]["headers"]["authorization"] == f"Bearer {SECRET}"  # it was sent upstream
    assert SECRET not in caplog.text
    assert logged and SECRET not in json.dumps(logged)
