"""Guarded rollouts end to end: the real ASGI server, the fault-injecting upstream (tests/proxy/fault_upstream.py),
the request-log worker and the monitor actor (called as the scheduler would, twice, instead of waiting two
minutes). A canary whose upstream answers 500 is rolled back within two evaluations, with the event and the
registry's history recording why; a healthy one that held is promoted on its own and its webhook is called."""
from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.experiments.conftest import drain
from tests.proxy.fake_upstream import ServerThread


@pytest.fixture
def faulty_remote(wired, fault_upstream, settings):
    """Remote versions are served by the fault upstream, whose behaviour follows the model name."""
    from apps.proxy.gateway import caches_clear

    settings.TOGETHER_BASE_URL = fault_upstream.url + "/v1"
    caches_clear()
    fault_upstream.hits.clear()
    return fault_upstream


@pytest.fixture
def webhook_sink():
    got: list = []

    async def hook(request):
        got.append(await request.json())
        return JSONResponse({"ok": True})

    with ServerThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as srv:
        srv.got = got
        yield srv


def _traffic(hub_server, api_key, n: int) -> dict:
    arms: dict = {}
    with httpx.Client(base_url=hub_server.url, timeout=20) as h:
        for i in range(n):
            r = h.post("/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
                       json={"model": "production", "messages": [{"role": "user", "content": f"q{i}"}]})
            arm = r.headers.get("x-hub-arm", "/").split("/")[1]
            arms.setdefault(arm, []).append(r.status_code)
    return arms


def test_a_bad_canary_rolls_back_within_two_evaluations(hub_server, faulty_remote, admin_user, admin_api, api_key,
                                                        webhook_sink):
    import dramatiq

    from apps.experiments.models import Experiment, RolloutEvent
    from apps.registry.models import Alias, Deployment
    from apps.registry.services import alias_deploy, model_version_register
    from workers.experiments import experiments_monitor

    stable = model_version_register(name="stable", kind="remote", base_model=None, remote_model_id="ok")
    bad = model_version_register(name="broken build", kind="remote", base_model=None, remote_model_id="500")
    alias_deploy(actor=admin_user, version_id=stable.pk, alias="production", reason="first release")
    r = admin_api.post(f"/api/models/{bad.pk}/deploy", {
        "alias": "production", "canary_percent": 30, "thresholds": {"error_rate": 0.05, "p95_ms": 60000},
        "min_requests": 10, "window_minutes": 5, "hold_minutes": 60, "reason": "new tokenizer",
        "webhook_url": webhook_sink.url + "/hook"}, content_type="application/json")
    assert r.status_code == 200, r.content
    alias = r.json()
    assert alias["model_version_id"] == stable.pk and alias["experiment_kind"] == "canary"
    exp = Experiment.objects.get(pk=alias["experiment_id"])
    dramatiq.get_broker().flush_all()

    arms = _traffic(hub_server, api_key, 80)
    assert set(arms) == {"stable", "canary"} and 10 <= len(arms["canary"]) <= 45  # ~30 % per request
    assert all(s == 200 for s in arms["stable"]) and all(s >= 500 for s in arms["canary"])
    drain()

    evaluations = 0
    for _ in range(2):  # two evaluation periods, as the scheduler would send them a minute apart
        experiments_monitor()
        evaluations += 1
        exp.refresh_from_db()
        if exp.status != "running":
            break
    assert exp.status == "rolled_back" and evaluations <= 2
    assert Alias.objects.get(name="production").model_version_id == stable.pk
    event = RolloutEvent.objects.get(experiment=exp, kind="breach")
    assert event.metric == "error_rate" and event.value == 1.0 and event.threshold == 0.05
    assert event.window_start <= event.window_end and event.values["canary"]["requests"] == len(arms["canary"])
    assert event.values["stable"]["errors"] == 0
    rollback = Deployment.objects.filter(alias_name="production").first()
    assert rollback.action == "rollback" and rollback.model_version_id == stable.pk
    assert rollback.previous_version_id == bad.pk and "error rate" in rollback.reason and rollback.actor is None
    assert [d.action for d in Deployment.objects.filter(alias_name="production")] == ["rollback", "canary", "deploy"]

    # what the Monitoring page shows
    from apps.experiments.selectors import rollout_events_recent

    recent = rollout_events_recent(limit=5)
    assert recent[0]["kind"] == "breach" and recent[0]["url"] == f"/experiments/{exp.pk}/"
    # the webhook got the breach (queued after commit, sent by the worker)
    drain()
    assert [e["event"] for e in webhook_sink.got][-1] == "rollout.breach"
    assert RolloutEvent.objects.get(pk=event.pk).webhook_status == "HTTP 200"

    # afterwards every request goes to the stable version again, without an arm
    after = _traffic(hub_server, api_key, 10)
    assert after == {"": [200] * 10}


def test_a_healthy_canary_that_held_is_promoted(hub_server, faulty_remote, admin_user, admin_api, api_key):
    import dramatiq

    from apps.experiments.models import Experiment, RolloutEvent
    from apps.registry.models import Alias, Deployment
    from apps.registry.services import alias_deploy, model_version_register
    from workers.experiments import experiments_monitor

    stable = model_version_register(name="stable", kind="remote", base_model=None, remote_model_id="ok")
    good = model_version_register(name="good build", kind="remote", base_model=None, remote_model_id="ok-b")
    alias_deploy(actor=admin_user, version_id=stable.pk, alias="production")
    r = admin_api.post(f"/api/models/{good.pk}/deploy", {
        "alias": "production", "canary_percent": 50, "min_requests": 5, "hold_minutes": 0, "auto_promote": True},
        content_type="application/json")
    assert r.status_code == 200, r.content
    exp = Experiment.objects.get(pk=r.json()["experiment_id"])
    assert exp.thresholds == {"error_rate": 0.05}  # the default
    dramatiq.get_broker().flush_all()
    arms = _traffic(hub_server, api_key, 30)
    assert all(s == 200 for codes in arms.values() for s in codes)
    drain()
    experiments_monitor()
    exp.refresh_from_db()
    assert exp.status == "promoted" and exp.winner == "canary"
    assert Alias.objects.get(name="production").model_version_id == good.pk
    d = Deployment.objects.filter(alias_name="production").first()
    assert d.action == "promote" and d.actor is None and "held" in d.reason
    assert RolloutEvent.objects.filter(experiment=exp, kind="promoted").exists()


def test_the_monitor_runs_every_minute():
    from dramatiq_crontab import scheduler

    import workers.tasks  # noqa: F401  - what the scheduler process imports

    jobs = {j.name: j for j in scheduler.get_jobs()}
    assert jobs["experiments_monitor"].trigger.interval.total_seconds() == 60
