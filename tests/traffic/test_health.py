"""GET /v1/health and the Proxy health page: per target (served_by) state, p50/p95 latency, error rate,
fallbacks and counts over the last hour and day; the circuit breaker's state when there is one."""
from __future__ import annotations

import pytest
from django.urls import reverse

from apps.traffic import health


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    health.clear_cache()
    monkeypatch.setattr(health, "breaker_states", lambda: None)  # derived from recent requests unless a test says
    yield
    health.clear_cache()


@pytest.fixture
def two_targets(log_request, member):
    for ms in (100.0, 200.0, 300.0, 400.0):
        log_request(user=member, latency_ms=ms, served_by="version:1")
    log_request(user=member, status_code=502, response={}, error="x", latency_ms=5.0, served_by="version:1")
    for _ in range(3):
        log_request(user=member, status_code=503, response={}, error="down", served_by="provider:acme/big")
    log_request(user=member, served_by="provider:backup/m", fallback=True, latency_ms=900.0)
    log_request(user=member, served_by="version:1", latency_ms=50.0, ago_s=5 * 3600)  # the day, not the hour


def test_stats_per_target(two_targets):
    body = health.health()
    rows = {t["target"]: t for t in body["targets"]}
    assert set(rows) == {"version:1", "provider:acme/big", "provider:backup/m"}
    v1 = rows["version:1"]
    assert v1["state"] == "up" and v1["state_source"] == "recent_requests"
    assert v1["last_hour"] == {"requests": 5, "errors": 1, "error_rate": 0.2, "fallbacks": 0,
                               "p50_ms": 250.0, "p95_ms": 385.0}  # successful requests only, interpolated
    assert v1["last_day"]["requests"] == 6 and v1["last_day"]["p50_ms"] == 200.0
    assert rows["provider:acme/big"]["state"] == "down" and rows["provider:acme/big"]["last_hour"]["error_rate"] == 1.0
    assert rows["provider:acme/big"]["last_hour"]["p50_ms"] is None
    assert rows["provider:backup/m"]["last_hour"]["fallbacks"] == 1
    assert body["status"] == "degraded"


def test_breaker_state_wins_when_there_is_one(two_targets, monkeypatch):
    monkeypatch.setattr(health, "breaker_states", lambda: {
        "version:1": {"target": "version:1", "state": "open", "failures": 5, "opened_at": 1.0},
        "provider:quiet/x": {"target": "provider:quiet/x", "state": "half_open", "failures": 5, "opened_at": 1.0}})
    rows = {t["target"]: t for t in health.health()["targets"]}
    assert rows["version:1"]["state"] == "down" and rows["version:1"]["state_source"] == "breaker"
    assert rows["version:1"]["breaker"]["failures"] == 5
    assert rows["provider:quiet/x"]["state"] == "half_open" and rows["provider:quiet/x"]["last_hour"]["requests"] == 0


def test_the_real_breaker_module_is_read(two_targets, monkeypatch):
    from apps.proxy import breaker

    monkeypatch.undo()  # the real breaker_states
    monkeypatch.setattr(breaker, "snapshot", lambda: [{"target": "version:1", "state": "closed", "failures": 0,
                                                       "opened_at": None}])
    rows = {t["target"]: t for t in health.health()["targets"]}
    assert rows["version:1"]["state_source"] == "breaker" and rows["version:1"]["state"] == "up"
    assert rows["provider:acme/big"]["state_source"] == "recent_requests"


def test_series_for_the_plots(two_targets):
    s = health.series("1h")
    assert s["bucket_s"] == 60 and set(s["targets"]) == {"version:1", "provider:acme/big", "provider:backup/m"}
    pts = s["targets"]["version:1"]
    assert sum(p["requests"] for p in pts) == 5 and sum(p["errors"] for p in pts) == 1
    assert all(p["p95_ms"] is None or p["p95_ms"] >= p["p50_ms"] for p in pts)
    assert sum(p["requests"] for p in health.series("24h")["targets"]["version:1"]) == 6


def test_v1_health_json(client, two_targets, api_key):
    anon = client.get("/v1/health")
    assert anon.status_code == 200 and anon.json() == {"status": "degraded", "time": anon.json()["time"]}
    full = client.get("/v1/health", HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert full.status_code == 200 and full["content-type"] == "application/json"
    rows = {t["target"]: t for t in full.json()["targets"]}
    assert rows["version:1"]["last_hour"]["p95_ms"] == 385.0
    wrong = client.get("/v1/health", HTTP_AUTHORIZATION="Bearer th_nope_nope")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert client.post("/v1/health").status_code == 405


def test_v1_health_with_no_traffic(client, db):
    assert client.get("/v1/health").json()["status"] == "ok"


def test_health_page(client, member, two_targets):
    client.force_login(member)
    resp = client.get(reverse("traffic:health"))
    body = resp.content.decode()
    assert resp.status_code == 200
    # targets named as the traffic pages name them: a version linked, a provider model as "provider · model"
    assert '<td class="mono">acme · big</td>' in body and "state-down" in body and "385 ms" in body
    assert f'<a href="{reverse("registry:detail", args=[1])}">mv-1</a>' in body
    assert resp.context["series"]["labels"] == {"version:1": "mv-1", "provider:acme/big": "acme · big",
                                                 "provider:backup/m": "backup · m"}
    assert 'id="health-series"' in body and "plotly-basic" in body and "traffic_health.js" in body
    assert client.get(reverse("traffic:health"), {"window": "7d"}).status_code == 200
    assert client.get(reverse("traffic:health"), {"window": "bogus"}).status_code == 200


def test_health_page_empty(client, member):
    client.force_login(member)
    body = client.get(reverse("traffic:health")).content.decode()
    assert "No traffic in the last 24 hours" in body and "nothing to plot yet" in body and "plotly" not in body
