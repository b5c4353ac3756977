"""/api/monitoring/* and /api/alerts*: the shapes and numbers, who may write, and 422 bodies (field errors, no row
written) for bad input."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from apps.monitoring.models import Alert, AlertRule
from apps.monitoring.services import alerts_evaluate, rollup_run, worker_heartbeat_record
from tests.monitoring.conftest import log_rows

pytestmark = pytest.mark.django_db
M = dt.timedelta(minutes=1)


@pytest.fixture
def traffic():
    now = timezone.now()
    t = now.replace(second=0, microsecond=0) - 3 * M
    log_rows(*[{"at": t, "latency_ms": 100.0 + i, "served_by": "version:7"} for i in range(8)],
             *[{"at": t, "status_code": 500, "latency_ms": 10.0, "served_by": "version:8"} for _ in range(2)])
    rollup_run()
    return t


def test_series_of_an_alias(api, traffic):
    r = api.get("/api/monitoring/series", {"alias": "prod", "minutes": 30})
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["alias"], body["version"], body["minutes"], body["bucket_s"], body["breakdown"]) == (
        "prod", None, 30, 60, "target")
    total, *parts = body["series"]
    assert total["label"] == "prod (all versions)" and len(total["points"]) == 30
    point = next(p for p in total["points"] if p["requests"])
    assert (point["requests"], point["errors"], point["error_rate"], point["p50_ms"]) == (10, 2, 0.2, 103.5)
    assert [p["target"] for p in parts] == ["version:7", "version:8"]


def test_series_of_a_version_by_id(api, traffic):
    body = api.get("/api/monitoring/series?version=8&minutes=15").json()
    assert body["version"] == "version:8" and body["breakdown"] == "alias"
    assert sum(p["errors"] for p in body["series"][0]["points"]) == 2


@pytest.mark.parametrize("query, field", [
    ("minutes=0", "minutes"), ("minutes=4", "minutes"), ("minutes=10081", "minutes"), ("minutes=abc", "minutes"),
    ("alias=Not%20a%20slug", "alias"), ("alias=%2A", "alias"), ("version=0", "version"),
    ("version=version:abc", "version"), ("version=%2A", "version"), ("version=gpt", "version"),
    ("version=99999999999999999999", "version"),
])
def test_bad_series_parameters_are_422s(api, query, field):
    r = api.get(f"/api/monitoring/series?{query}")
    assert r.status_code == 422, (query, r.content)
    body = r.json()
    assert body["code"] == "invalid" and [e["field"] for e in body["errors"]] == [field]


def test_workers(api):
    now = timezone.now()
    worker_heartbeat_record(worker_id="h:1", host="h", pid=1, queues=["default"], started_at=now,
                            sample={"cpu_percent": 1.0, "rss_mb": 50.0, "host_cpu_percent": 10.0,
                                    "host_memory_percent": 20.0, "gpus": []})
    r = api.get("/api/monitoring/workers?minutes=60")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["live"] == 1 and body["broker"] is None
    assert body["workers"][0]["worker_id"] == "h:1" and body["workers"][0]["state"] == "live"
    assert api.get("/api/monitoring/workers?minutes=1").status_code == 422


def test_reads_need_a_credential(client):
    assert client.get("/api/monitoring/series").status_code == 401
    assert client.get("/api/alerts").status_code == 401


def test_rules_list_has_the_defaults(api):
    rules = api.get("/api/alerts/rules").json()
    assert {(r["metric"], r["threshold"], r["unit"], r["kind"]) for r in rules} == {
        ("error_rate", 5.0, "%", "traffic"), ("latency_p95", 1000.0, "ms", "traffic"), ("cpu", 80.0, "%", "resource"),
        ("memory", 80.0, "%", "resource"), ("gpu_memory", 80.0, "%", "resource")}


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def test_admins_write_rules(admin_api):
    r = post(admin_api, "/api/alerts/rules", {"name": "canary ttft", "metric": "ttft_p50", "threshold": 400,
                                              "alias": "canary", "window_minutes": 3})
    assert r.status_code == 201, r.content
    rule = r.json()
    assert (rule["alias"], rule["threshold"], rule["min_requests"], rule["enabled"]) == ("canary", 400.0, 10, True)
    r = admin_api.patch(f"/api/alerts/rules/{rule['id']}", json.dumps({"threshold": 250, "enabled": False}),
                        content_type="application/json")
    assert r.status_code == 200 and (r.json()["threshold"], r.json()["enabled"]) == (250.0, False)
    r = admin_api.patch(f"/api/alerts/rules/{rule['id']}", json.dumps({"metric": "cpu"}),
                        content_type="application/json")  # a resource rule cannot keep the alias
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "alias"
    assert admin_api.delete(f"/api/alerts/rules/{rule['id']}").status_code == 204
    assert admin_api.delete(f"/api/alerts/rules/{rule['id']}").status_code == 404


def test_members_cannot_write_rules(api):
    r = post(api, "/api/alerts/rules", {"name": "x", "metric": "cpu", "threshold": 90})
    assert r.status_code == 403
    assert AlertRule.objects.count() == 5


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "metric": "nope", "threshold": 1}, "metric"),
    ({"name": "x", "metric": "cpu", "threshold": 101}, "threshold"),
    ({"name": "x", "metric": "cpu", "threshold": -1}, "threshold"),
    ({"name": "x", "metric": "cpu", "threshold": "high"}, "threshold"),
    ({"name": "x", "metric": "cpu", "threshold": 50, "alias": "prod"}, "alias"),
    ({"name": "x", "metric": "error_rate", "threshold": 5, "alias": "Bad Alias"}, "alias"),
    ({"name": "x", "metric": "error_rate", "threshold": 5, "window_minutes": 0}, "window_minutes"),
    ({"name": "", "metric": "error_rate", "threshold": 5}, "name"),
    ({"name": "x\u0000", "metric": "error_rate", "threshold": 5}, "name"),
    ({"name": "x", "metric": "error_rate"}, "threshold"),
    ({"name": "x", "metric": "error_rate", "threshold": 5, "colour": "red"}, "colour"),
])
def test_bad_rules_are_422s_with_the_field(admin_api, body, field):
    r = post(admin_api, "/api/alerts/rules", body)
    assert r.status_code == 422, (body, r.content)
    assert field in [e["field"] for e in r.json()["errors"]]
    assert AlertRule.objects.count() == 5


def test_alerts_list_and_acknowledge(admin_api, traffic, api_key):
    from django.test import Client

    api = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")  # a member's, beside the admin's client
    alerts_evaluate()  # prod: 2 errors of 10 = 20 %
    body = api.get("/api/alerts?state=firing").json()
    assert [(a["metric"], a["subject"], a["value"], a["unit"]) for a in body] == [("error_rate", "prod", 20.0, "%")]
    alert_id = body[0]["id"]
    assert post(api, f"/api/alerts/{alert_id}/ack", {}).status_code == 403
    r = post(admin_api, f"/api/alerts/{alert_id}/ack", {})
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "boss" and r.json()["state"] == "firing"
    assert post(admin_api, "/api/alerts/999999/ack", {}).status_code == 404
    assert api.get("/api/alerts?state=sleeping").status_code == 422
    assert api.get("/api/alerts?limit=0").status_code == 422
    assert Alert.objects.get().acknowledged_at is not None
