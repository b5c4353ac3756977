"""Experiments in the /v1 proxy, through the real ASGI server: Claude Code / Codex sessions stick to one arm,
the arm's version answers, every request is logged with its experiment and arm (and its unit as an exposure),
the API reports per-arm metrics and feedback; a cached plan picks arms without the database."""
from __future__ import annotations

import asyncio
from collections import defaultdict

import httpx
import pytest

from tests.experiments.conftest import drain


def _chat(h, key, text="hi", headers=None, model="production"):
    return h.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}]},
                  headers={"Authorization": f"Bearer {key}", **(headers or {})})


def test_sessions_stick_to_arms_through_the_proxy(hub_server, two_local_versions, admin_user, api_key, member):
    import dramatiq

    from apps.experiments.models import Exposure
    from apps.experiments.services import experiment_create
    from apps.proxy.models import RequestLog

    v1, v2 = two_local_versions
    exp = experiment_create(actor=admin_user, alias="production", sticky_by="session", metric="error_rate",
                            arms=[{"model_version_id": v1.pk, "weight": 50}, {"model_version_id": v2.pk, "weight": 50}])
    dramatiq.get_broker().flush_all()
    seen = defaultdict(set)
    with httpx.Client(base_url=hub_server.url, timeout=20) as h:
        for rnd in range(2):
            for i in range(24):
                r = _chat(h, api_key, headers={"X-Claude-Code-Session-Id": f"cc-{i}"})
                assert r.status_code == 200, r.text
                exp_id, arm = r.headers["x-hub-arm"].split("/")
                assert int(exp_id) == exp.pk
                version = v1 if arm == "A" else v2
                assert r.headers["x-hub-served-by"] == f"version:{version.pk}"  # the arm's version answered
                seen[f"cc-{i}"].add(arm)
        for i in range(6):  # Codex's header; and Claude Code's own dialect keeps the session's arm
            a = _chat(h, api_key, headers={"session-id": f"codex-{i}"}).headers["x-hub-arm"]
            assert _chat(h, api_key, headers={"session-id": f"codex-{i}"}).headers["x-hub-arm"] == a
        r = h.post("/v1/messages", json={"model": "production", "max_tokens": 16,
                                         "messages": [{"role": "user", "content": "hey"}]},
                   headers={"x-api-key": api_key, "anthropic-version": "2023-06-01",
                            "X-Claude-Code-Session-Id": "cc-3"})
        assert r.status_code == 200, r.text
        assert r.headers["x-hub-arm"].endswith("/" + seen["cc-3"].copy().pop())
    assert all(len(arms) == 1 for arms in seen.values())  # the same session always got the same arm
    assert {a for arms in seen.values() for a in arms} == {"A", "B"}  # and both arms got sessions

    drain()
    logs = list(RequestLog.objects.filter(experiment_id=exp.pk))
    assert len(logs) == 48 + 12 + 1 and {r.arm for r in logs} == {"A", "B"}
    assert all(r.model_version_id == (v1.pk if r.arm == "A" else v2.pk) for r in logs)
    units = Exposure.objects.filter(experiment=exp)
    assert units.count() == 24 + 6  # one per session (hashed), not one per request
    assert all(len(u.unit) == 16 and "cc-" not in u.unit for u in units)


def test_experiment_api_reports_arms_and_feedback(hub_server, two_local_versions, admin_user, admin_api, api_key,
                                                  member, make_user):
    from django.test import Client

    from tests.factories import ApiKeyFactory

    v1, v2 = two_local_versions
    r = admin_api.post("/api/experiments", {"alias": "production", "sticky_by": "user", "metric": "feedback",
                                            "arms": [{"model_version_id": v1.pk, "weight": 1},
                                                     {"model_version_id": v2.pk, "weight": 1}]},
                       content_type="application/json")
    assert r.status_code == 201, r.content
    exp = r.json()
    assert exp["kind"] == "experiment" and [a["name"] for a in exp["per_arm"]] == ["A", "B"]
    assert exp["verdict"]["status"] == "collecting"
    rids = {}
    with httpx.Client(base_url=hub_server.url, timeout=20) as h:
        for i in range(20):
            r = h.post("/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
                       json={"model": "production", "user": f"u{i}", "messages": [{"role": "user", "content": "x"}]})
            rids[r.headers["x-request-id"]] = r.headers["x-hub-arm"].split("/")[1]
    drain()
    member_api = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    for n, (rid, arm) in enumerate(rids.items()):
        body = {"request_id": rid, "thumbs": arm == "B"} if n % 2 else {"request_id": rid, "score": 0.5,
                                                                          "comment": "ok", "edit_accepted": True}
        r = member_api.post("/api/feedback", body, content_type="application/json")
        assert r.status_code == 201, r.content
        assert r.json()["arm"] == arm and r.json()["experiment_id"] == exp["id"]
    rid = next(iter(rids))
    r = member_api.post("/api/feedback", {"request_id": rid, "thumbs": False}, content_type="application/json")
    assert r.status_code == 201 and r.json()["value"] == 0.0  # sending again updates the one row
    # someone else's request, an unknown id, bad values: clear errors, never a 500
    other = Client(HTTP_AUTHORIZATION=f"Bearer {ApiKeyFactory(user=make_user('eve')).plaintext}")
    r = other.post("/api/feedback", {"request_id": rid, "thumbs": True}, content_type="application/json")
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "request_id"
    assert member_api.post("/api/feedback", {"request_id": "nope", "thumbs": True},
                           content_type="application/json").status_code == 404
    for bad, field in [({"request_id": rid}, "thumbs"), ({"request_id": rid, "score": 1.5}, "score"),
                       ({"request_id": "a b", "thumbs": True}, "request_id"),
                       ({"request_id": rid, "thumbs": True, "extra": 1}, "extra")]:
        r = member_api.post("/api/feedback", bad, content_type="application/json")
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, (bad, r.content)

    d = admin_api.get(f"/api/experiments/{exp['id']}").json()
    per = {a["name"]: a for a in d["per_arm"]}
    assert sum(a["metrics"]["requests"] for a in per.values()) == 20
    assert sum(a["metrics"]["feedback_n"] for a in per.values()) == 20
    assert sum(a["units"] for a in per.values()) == 20  # sticky by the request's `user`: 20 users
    assert d["srm"]["ran"] and d["srm"]["mismatch"] is False
    assert set(d["comparisons"]) == {"feedback", "error_rate", "tool_call_validity", "latency_ms"}
    assert d["events"][0]["kind"] == "started"


def test_a_cached_plan_picks_arms_without_the_database(limits_redis, two_local_versions, admin_user, monkeypatch):
    """With the invalidation listener live (as in production), 300 callers cost one plan lookup; stopping the
    experiment publishes invalidation.ROUTES and the next call serves the alias's own version again."""
    from apps.accounts.key_cache import KeyInfo
    from apps.experiments.services import experiment_create, experiment_stop
    from apps.proxy import gateway, selectors

    v1, v2 = two_local_versions
    exp = experiment_create(actor=admin_user, alias="production", sticky_by="session",
                            arms=[{"model_version_id": v1.pk, "weight": 70}, {"model_version_id": v2.pk, "weight": 30}])
    calls = []
    original = selectors.plan_resolve

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(selectors, "plan_resolve", counting)

    async def resolve_many(n):
        out = []
        for i in range(n):
            call = gateway.Call(endpoint="chat.completions", key=KeyInfo(id=1, user_id=1, name="k"))
            plan = await gateway.resolve_plan(call, "production", headers={"x-session-id": f"s{i}"})
            out.append((call.arm, plan.targets[0].version_id))
        return out

    picks = asyncio.run(resolve_many(300))
    assert len(calls) == 1  # one lookup, then the cached split: no database per request
    assert {a for a, _ in picks} == {"A", "B"}
    assert all(vid == (v1.pk if arm == "A" else v2.pk) for arm, vid in picks)
    share_a = sum(a == "A" for a, _ in picks) / len(picks)
    assert 0.6 < share_a < 0.8
    assert asyncio.run(resolve_many(300)) == picks  # sticky

    experiment_stop(actor=admin_user, experiment_id=exp.pk, reason="done")
    after = asyncio.run(resolve_many(5))
    assert len(calls) == 2 and all(a == "" and vid == v1.pk for a, vid in after)


def test_experiment_validation_and_permissions(admin_api, api_key, two_local_versions, admin_user):
    from django.test import Client

    api = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")  # a member (admin_api is the admin's own client)
    v1, v2 = two_local_versions
    arms = [{"model_version_id": v1.pk, "weight": 50}, {"model_version_id": v2.pk, "weight": 50}]

    def post(body, client=admin_api):
        return client.post("/api/experiments", body, content_type="application/json")

    assert post({"alias": "production", "arms": arms}, client=api).status_code == 403
    for body, field in [
        ({"alias": "production", "arms": arms[:1]}, "arms"),
        ({"alias": "production", "arms": arms, "sticky_by": "cookie"}, "sticky_by"),
        ({"alias": "production", "arms": [arms[0], {"model_version_id": 99999, "weight": 5}]},
         "arms.1.model_version_id"),
        ({"alias": "production", "arms": [arms[0], {**arms[0]}]}, "arms.1.model_version_id"),
        ({"alias": "production", "arms": [{**a, "weight": 0} for a in arms]}, "arms"),
        ({"alias": "production", "arms": [{**arms[0], "weight": -1}, arms[1]]}, "arms.0.weight"),
        ({"alias": "nowhere", "arms": arms}, "alias"),
        ({"alias": "Bad Alias", "arms": arms}, "alias"),
    ]:
        r = post(body)
        assert r.status_code == 422, (body, r.content)
        assert r.json()["errors"][0]["field"] == field, (body, r.json())
    r = post({"alias": "production", "arms": arms})
    assert r.status_code == 201
    exp_id = r.json()["id"]
    r = post({"alias": "production", "arms": arms})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "alias"
    # a plain deploy or a rollback would be hidden by the split: refused until it ends
    r = admin_api.post(f"/api/models/{v2.pk}/deploy", {"alias": "production"}, content_type="application/json")
    assert r.status_code == 409
    assert admin_api.get("/api/experiments/424242").status_code == 404
    assert api.post(f"/api/experiments/{exp_id}/promote", content_type="application/json").status_code == 403
    r = admin_api.post(f"/api/experiments/{exp_id}/promote", content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "arm"  # no winner yet: name the arm
    r = admin_api.post(f"/api/experiments/{exp_id}/promote", {"arm": "Z"}, content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "arm"
    r = admin_api.post(f"/api/experiments/{exp_id}/promote", {"arm": "B", "reason": "users liked it"},
                       content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "promoted" and r.json()["winner"] == "B"
    a = admin_api.get("/api/aliases/production/deployments").json()
    assert a["model_version_id"] == v2.pk and a["experiment_id"] is None
    assert a["deployments"][0]["action"] == "promote" and "users liked it" in a["deployments"][0]["reason"]
    assert a["deployments"][0]["actor"] == admin_user.username
    r = admin_api.post(f"/api/experiments/{exp_id}/stop", content_type="application/json")
    assert r.status_code == 409  # already ended
    r = admin_api.post(f"/api/experiments/{exp_id}/rollback", content_type="application/json")
    assert r.status_code == 422  # only a canary rolls back
