"""Rollback done properly and guarded deploys (issue 11): roll back to any earlier deployment with who, when and
why; no rollback that would change nothing; canary deploys through /api/models/{id}/deploy with field errors;
the pages: a deploy to production is confirmed first, an alias's history offers every earlier version."""
from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import ModelVersionFactory


@pytest.fixture
def three(db, admin_user):
    """production served v1, then v2, then v3 (now)."""
    from apps.registry.services import alias_deploy

    vs = [ModelVersionFactory(name=f"v{i} <i>") for i in (1, 2, 3)]
    for v in vs:
        alias_deploy(actor=admin_user, version_id=v.pk, alias="production", reason=f"ship {v.name}")
    return vs


def _json(client, url, body=None):
    return client.post(url, body or {}, content_type="application/json")


def test_roll_back_to_any_earlier_deployment(admin_api, three, admin_user):
    v1, v2, v3 = three
    h = admin_api.get("/api/aliases/production/deployments").json()
    assert h["model_version_id"] == v3.pk
    assert [d["reason"] for d in h["deployments"]] == [f"ship {v.name}" for v in (v3, v2, v1)]
    assert [t["model_version_id"] for t in h["rollback_targets"]] == [v2.pk, v1.pk]  # never the current one
    first = h["deployments"][-1]
    r = _json(admin_api, "/api/aliases/production/rollback", {"to_deployment_id": first["id"], "reason": "v2 and v3 regressed"})
    assert r.status_code == 200 and r.json()["model_version_id"] == v1.pk  # two steps back at once
    d = admin_api.get("/api/aliases/production/deployments").json()["deployments"][0]
    assert d["action"] == "rollback" and d["model_version_id"] == v1.pk and d["previous_version_id"] == v3.pk
    assert d["actor"] == admin_user.username and d["reason"] == "v2 and v3 regressed" and d["created_at"]
    # no rollback that would change nothing
    r = _json(admin_api, "/api/aliases/production/rollback", {"to_deployment_id": first["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "to_deployment_id"
    assert "change nothing" in r.json()["detail"]
    r = _json(admin_api, "/api/aliases/production/rollback", {"to_version_id": v1.pk})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "to_version_id"
    r = _json(admin_api, "/api/aliases/production/rollback", {"to_version_id": ModelVersionFactory().pk})
    assert r.status_code == 422 and "never served" in r.json()["detail"]
    r = _json(admin_api, "/api/aliases/production/rollback", {"to_deployment_id": 987654})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "to_deployment_id"
    r = _json(admin_api, "/api/aliases/production/rollback", {"to_version_id": v2.pk})
    assert r.status_code == 200 and r.json()["model_version_id"] == v2.pk
    # default: the most recent other version (the one before the last change)
    assert _json(admin_api, "/api/aliases/production/rollback").json()["model_version_id"] == v1.pk


def test_nothing_to_roll_back_to(admin_api, admin_user, db):
    from apps.registry.services import alias_deploy

    v = ModelVersionFactory()
    alias_deploy(actor=admin_user, version_id=v.pk, alias="staging")
    alias_deploy(actor=admin_user, version_id=v.pk, alias="staging")  # redeployed: still only v
    a = [x for x in admin_api.get("/api/aliases").json() if x["name"] == "staging"][0]
    assert a["can_rollback"] is False
    r = _json(admin_api, "/api/aliases/staging/rollback")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "alias"


def test_canary_deploy_api_validation(admin_api, api_key, three):
    v1, v2, v3 = three
    new = ModelVersionFactory()
    url = f"/api/models/{new.pk}/deploy"
    for body, field in [
        ({"alias": "production", "thresholds": {"error_rate": 0.1}}, "thresholds"),
        ({"alias": "production", "auto_promote": True}, "auto_promote"),
        ({"alias": "production", "canary_percent": 0}, "canary_percent"),
        ({"alias": "production", "canary_percent": 100}, "canary_percent"),
        ({"alias": "production", "canary_percent": 10, "thresholds": {"error_rate": 1.5}}, "thresholds.error_rate"),
        ({"alias": "production", "canary_percent": 10, "thresholds": {"latency": 5}}, "thresholds.latency"),
        ({"alias": "production", "canary_percent": 10, "thresholds": {}}, "thresholds"),
        ({"alias": "production", "canary_percent": 10, "webhook_url": "ftp://x"}, "webhook_url"),
        ({"alias": "production", "canary_percent": 10, "sticky_by": "cookie"}, "sticky_by"),
        ({"alias": "new-alias", "canary_percent": 10}, "alias"),
    ]:
        r = _json(admin_api, url, body)
        assert r.status_code == 422, (body, r.content)
        assert r.json()["errors"][0]["field"] == field, (body, r.json())
    r = _json(admin_api, f"/api/models/{v3.pk}/deploy", {"alias": "production", "canary_percent": 10})
    assert r.status_code == 422 and "already serves" in r.json()["detail"]
    member = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert _json(member, url, {"alias": "production", "canary_percent": 10}).status_code == 403
    r = _json(admin_api, url, {"alias": "production", "canary_percent": 10, "reason": "try it"})
    assert r.status_code == 200 and r.json()["experiment_kind"] == "canary" and r.json()["model_version_id"] == v3.pk
    # while it runs, neither a deploy nor a rollback may move the alias under it
    assert _json(admin_api, f"/api/models/{v1.pk}/deploy", {"alias": "production"}).status_code == 409
    assert _json(admin_api, "/api/aliases/production/rollback").status_code == 409
    h = admin_api.get("/api/aliases/production/deployments").json()
    assert h["deployments"][0]["action"] == "canary" and h["deployments"][0]["reason"] == "try it"
    # a canary row is not something the alias served: never a rollback target
    assert new.pk not in [t["model_version_id"] for t in h["rollback_targets"]]


def test_pages_confirm_production_and_roll_back(client, admin_user, member, three):
    from apps.registry.models import Alias

    v1, v2, v3 = three
    new = ModelVersionFactory(name="fresh")
    client.force_login(admin_user)
    r = client.post(f"/models/{new.pk}/deploy", {"alias": "production", "reason": "better evals"})
    assert r.status_code == 200 and b"Yes, deploy to production" in r.content
    assert f"mv-{v3.pk}".encode() in r.content  # says what it serves now
    assert Alias.objects.get(name="production").model_version_id == v3.pk  # nothing moved yet
    r = client.post(f"/models/{new.pk}/deploy", {"alias": "production", "reason": "better evals"},
                    HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and b"<html" not in r.content and b"confirm-box" in r.content
    r = client.post(f"/models/{new.pk}/deploy", {"alias": "production", "reason": "better evals", "confirm": "on"})
    assert r.status_code == 302 and Alias.objects.get(name="production").model_version_id == new.pk
    r = client.post(f"/models/{new.pk}/deploy", {"alias": "staging"})  # every alias is confirmed first (issue 14)
    assert r.status_code == 200 and b"Yes, deploy to staging" in r.content and b"nothing" in r.content
    assert not Alias.objects.filter(name="staging").exists()
    r = client.post(f"/models/{new.pk}/deploy", {"alias": "staging", "confirm": "on"})
    assert r.status_code == 302 and Alias.objects.get(name="staging").model_version_id == new.pk
    # a canary from the page: field errors, then the experiment's page
    r = client.post(f"/models/{v1.pk}/deploy", {"alias": "staging", "canary": "on", "canary_percent": ""})
    assert r.status_code == 422 and b"share of requests" in r.content
    r = client.post(f"/models/{v1.pk}/deploy", {"alias": "staging", "canary": "on", "canary_percent": "20",
                                                "error_rate": "7", "p95_ms": "3000", "window_minutes": "5",
                                                "min_requests": "20", "hold_minutes": "30", "confirm": "on"})
    assert r.status_code == 302 and r["Location"].startswith("/experiments/")
    from apps.experiments.models import Experiment

    exp = Experiment.objects.get(alias="staging", status="running")
    assert exp.thresholds == {"error_rate": 0.07, "p95_ms": 3000.0}
    # the alias page: who, when, why; every earlier version offered; no no-op option
    r = client.get("/models/aliases/production/")
    page = r.content.decode()
    assert r.status_code == 200 and "better evals" in page and "ship v1 &lt;i&gt;" in page and "<i>" not in page
    assert page.count("Roll back to this") == 3  # v3, v2, v1: every version but the current one
    assert f'<option value="' in page and f"mv-{new.pk} ·" not in page
    target = next(d for d in __import__("apps.registry.selectors", fromlist=["x"]).alias_rollback_targets("production")
                  if d.model_version_id == v1.pk)
    r = client.post("/models/aliases/production/rollback", {"to": target.pk, "reason": "fresh was slow"})
    assert r.status_code == 302 and Alias.objects.get(name="production").model_version_id == v1.pk
    r = client.post("/models/aliases/production/rollback", {"to": target.pk})  # now a no-op: refused
    assert r.status_code == 302 and Alias.objects.get(name="production").model_version_id == v1.pk
    page = client.get("/models/aliases/production/").content.decode()
    assert "would change nothing" in page and "fresh was slow" in page
    assert client.get("/models/aliases/nope/").status_code == 404
    # members see the history but cannot roll back
    client.force_login(member)
    page = client.get("/models/aliases/production/").content.decode()
    assert "Only admins can roll back" in page and "Roll back to this" not in page
    r = client.post("/models/aliases/production/rollback", {"to": target.pk})
    assert r.status_code == 302 and Alias.objects.get(name="production").model_version_id == v1.pk
