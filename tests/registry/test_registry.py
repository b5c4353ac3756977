"""Registry: /api (base models, versions with lineage, deploy/rollback permissions) and the pages."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(api_key):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")


@pytest.fixture
def admin_api(admin_key):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {admin_key}")


@pytest.fixture
def two_versions(tiny_base_model, tmp_path):
    from apps.registry.services import model_version_register

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    v1 = model_version_register(name="first", kind="adapter", base_model=tiny_base_model, source_dir=adapter,
                                hyperparameters={"lora_r": 8, "learning_rate": 2e-4}, final_loss=1.25)
    v2 = model_version_register(name="second <b>", kind="adapter", base_model=tiny_base_model, parent=v1,
                                hyperparameters={"lora_r": 16}, final_loss=0.75)
    return v1, v2


def test_base_models_list_and_register(api, admin_api, tiny_model_dir, tmp_path):
    r = api.get("/api/base-models")
    assert r.status_code == 200 and r.json() == []
    r = api.post("/api/base-models", {"id": "tiny2", "path": str(tiny_model_dir)}, content_type="application/json")
    assert r.status_code == 403
    r = admin_api.post("/api/base-models", {"id": "tiny2", "path": str(tiny_model_dir), "name": "T"},
                       content_type="application/json")
    assert r.status_code == 201 and r.json()["id"] == "tiny2" and r.json()["architecture"] == "LlamaForCausalLM"
    r = admin_api.post("/api/base-models", {"id": "Bad Id", "path": str(tiny_model_dir)},
                       content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "id"
    r = admin_api.post("/api/base-models", {"id": "nofolder", "path": str(tmp_path / "missing")},
                       content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "path"
    assert [b["id"] for b in api.get("/api/base-models").json()] == ["tiny2"]


def test_models_list_and_detail_lineage(api, two_versions):
    v1, v2 = two_versions
    body = api.get("/api/models").json()
    assert [m["id"] for m in body] == [v2.pk, v1.pk]
    assert body[0]["served_name"] == f"mv-{v2.pk}"
    d = api.get(f"/api/models/{v2.pk}").json()
    assert d["lineage"]["base_model"]["id"] == "tiny"
    assert d["lineage"]["parent"] == {"id": v1.pk, "name": "first"}
    assert d["hyperparameters"] == {"lora_r": 16} and d["final_loss"] == 0.75
    assert api.get("/api/models/9999").status_code == 404


def test_member_cannot_deploy_or_rollback(api, two_versions):
    from apps.registry.models import Alias

    v1, _ = two_versions
    r = api.post(f"/api/models/{v1.pk}/deploy", {"alias": "production"}, content_type="application/json")
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    assert not Alias.objects.exists()
    assert api.post("/api/aliases/production/rollback", content_type="application/json").status_code == 403


def test_deploy_and_rollback(admin_api, two_versions):
    v1, v2 = two_versions
    r = admin_api.post(f"/api/models/{v1.pk}/deploy", {"alias": "production"}, content_type="application/json")
    assert r.status_code == 200, r.content
    a = r.json()
    assert a["name"] == "production" and a["model_version_id"] == v1.pk and a["id"] and not a["can_rollback"]
    a = admin_api.post(f"/api/models/{v2.pk}/deploy", {"alias": "production"}, content_type="application/json").json()
    assert a["model_version_id"] == v2.pk and a["can_rollback"]
    assert [x["name"] for x in admin_api.get("/api/aliases").json()] == ["production"]
    r = admin_api.post("/api/aliases/production/rollback", content_type="application/json")  # no body: one back
    assert r.status_code == 200 and r.json()["model_version_id"] == v1.pk
    assert admin_api.post("/api/aliases/nope/rollback", content_type="application/json").status_code == 404
    d = admin_api.get(f"/api/models/{v1.pk}").json()
    assert [h["action"] for h in d["deployments"]] == ["rollback", "deploy"]


def test_deploy_validation(admin_api, two_versions):
    v1, _ = two_versions
    r = admin_api.post(f"/api/models/{v1.pk}/deploy", {"alias": "Not A Slug"}, content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "alias"
    r = admin_api.post(f"/api/models/{v1.pk}/deploy", {}, content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "alias"
    r = admin_api.post("/api/models/424242/deploy", {"alias": "x"}, content_type="application/json")
    assert r.status_code == 404


def test_registry_requires_auth(client):
    assert client.get("/api/models").status_code == 401


def test_pages(client, admin_user, member, two_versions):
    v1, v2 = two_versions
    client.force_login(member)
    r = client.get("/models/")
    assert r.status_code == 200 and b"second &lt;b&gt;" in r.content and b"second <b>" not in r.content
    r = client.get(f"/models/{v2.pk}/")
    assert r.status_code == 200 and b"Only admins can deploy" in r.content and b"tiny" in r.content
    r = client.post(f"/models/{v1.pk}/deploy", {"alias": "production"})
    assert r.status_code == 403 and b"Only admins can do this." in r.content
    assert client.get("/models/999/").status_code == 404

    client.force_login(admin_user)
    r = client.get(f"/models/{v1.pk}/")
    assert b'id="deploy-form"' in r.content
    r = client.post(f"/models/{v1.pk}/deploy", {"alias": "bad alias!"})
    assert r.status_code == 422 and b"field-error" in r.content
    r = client.post(f"/models/{v1.pk}/deploy", {"alias": "production"})  # production: confirmed first
    assert r.status_code == 200 and b"Yes, deploy to production" in r.content
    r = client.post(f"/models/{v1.pk}/deploy", {"alias": "production", "confirm": "on"})
    assert r.status_code == 302
    client.post(f"/models/{v2.pk}/deploy", {"alias": "production", "confirm": "on"})
    r = client.get("/models/")
    assert b"Roll back" in r.content
    r = client.post("/models/aliases/production/rollback", {"next": f"/models/{v1.pk}/"})
    assert r.status_code == 302 and r["Location"] == f"/models/{v1.pk}/"
    from apps.registry.models import Alias

    assert Alias.objects.get(name="production").model_version_id == v1.pk
    # htmx deploy errors come back as the form fragment only
    r = client.post(f"/models/{v1.pk}/deploy", {"alias": ""}, HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and b"<html" not in r.content and b"deploy-form" in r.content


def test_base_model_form(client, admin_user, member, tiny_model_dir, tmp_path):
    client.force_login(member)
    r = client.post("/models/", {"id": "x", "path": str(tiny_model_dir)})
    assert r.status_code == 403
    client.force_login(admin_user)
    r = client.post("/models/", {"id": "x", "path": str(tmp_path / "nope")})
    assert r.status_code == 422 and b"is not a folder" in r.content
    r = client.post("/models/", {"id": "x", "path": "/tmp/" + "a" * 300})  # a name longer than the OS allows
    assert r.status_code == 422 and b"Not a usable path" in r.content
    r = client.post("/models/", {"id": "x", "path": str(tiny_model_dir)})
    assert r.status_code == 302
