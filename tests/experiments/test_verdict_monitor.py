"""The verdict and the monitor over request-log rows written as the worker writes them: a clear winner is found
and recorded once, the running minimum of the p-value never rises, a sample-ratio mismatch is named, canary
thresholds on latency and tool-call validity, too few observations wait, a canary is rolled back by hand."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from tests.factories import ModelVersionFactory


def _log(exp, arm, *, status=200, latency=100.0, ttft=None, request=None, response=None, at=None, fallback=False):
    from apps.proxy.models import RequestLog

    return RequestLog.objects.create(
        request_id=uuid.uuid4().hex, endpoint="chat.completions", model_requested=exp.alias, alias=exp.alias,
        status_code=status, latency_ms=latency, ttft_ms=ttft, request=request or {}, response=response or {},
        created_at=at or timezone.now(), experiment_id=exp.pk, arm=arm, fallback=fallback)


def _exposures(exp, counts: dict):
    from apps.experiments.models import Exposure

    Exposure.objects.bulk_create([Exposure(experiment=exp, arm=arm, unit=f"{arm}{i:015d}", first_at=timezone.now())
                                  for arm, n in counts.items() for i in range(n)])


@pytest.fixture
def experiment(db, admin_user):
    from apps.registry.services import alias_deploy
    from apps.experiments.services import experiment_create

    v1, v2 = ModelVersionFactory(), ModelVersionFactory()
    alias_deploy(actor=admin_user, version_id=v1.pk, alias="production")
    return experiment_create(actor=admin_user, alias="production", metric="error_rate", sticky_by="request",
                             arms=[{"model_version_id": v1.pk, "weight": 1}, {"model_version_id": v2.pk, "weight": 1}])


def test_a_clear_winner_is_found_and_recorded_once(experiment):
    from apps.experiments.canary import monitor_tick
    from apps.experiments.models import RolloutEvent
    from apps.experiments.verdict import experiment_report

    for i in range(400):
        _log(experiment, "A", status=500 if i % 5 == 0 else 200)  # 20 % errors
        _log(experiment, "B", status=500 if i % 50 == 0 else 200)  # 2 % errors
    _exposures(experiment, {"A": 400, "B": 400})
    report = experiment_report(experiment)
    assert report["verdict"]["status"] == "winner" and report["verdict"]["winner"] == "B"
    r = report["comparisons"]["error_rate"]["B"]
    assert r["better"] and r["p"] < 0.05 and r["ci_high"] < 0  # B's error rate is lower, interval below 0
    assert report["srm"]["ran"] and not report["srm"]["mismatch"]
    assert monitor_tick() == {experiment.pk: "winner"}
    monitor_tick()
    assert RolloutEvent.objects.filter(experiment=experiment, kind="ready").count() == 1  # recorded once
    experiment.refresh_from_db()
    p_min = experiment.stats["p_min"]["error_rate"]["B"]
    # more data that looks like no difference cannot take the decision back: the p-value is a running minimum
    for _ in range(400):
        _log(experiment, "A", status=200)
        _log(experiment, "B", status=500 if _ % 4 == 0 else 200)
    monitor_tick()
    experiment.refresh_from_db()
    assert experiment.stats["p_min"]["error_rate"]["B"] == p_min
    assert experiment_report(experiment)["comparisons"]["error_rate"]["B"]["p"] == p_min


def test_no_difference_and_a_sample_ratio_mismatch(experiment):
    from apps.experiments.verdict import experiment_report

    for i in range(100):
        _log(experiment, "A", status=500 if i % 10 == 0 else 200)
        _log(experiment, "B", status=500 if i % 10 == 0 else 200)
    _exposures(experiment, {"A": 700, "B": 300})  # 50 / 50 weights
    report = experiment_report(experiment)
    assert report["verdict"]["status"] == "no_difference_yet" and report["verdict"]["winner"] is None
    assert report["srm"]["mismatch"] and report["verdict"]["message"].startswith("Sample ratio mismatch")


def test_too_little_data_is_collecting(experiment):
    from apps.experiments.verdict import experiment_report

    for _ in range(5):
        _log(experiment, "A")
        _log(experiment, "B", status=500)
    assert experiment_report(experiment)["verdict"]["status"] == "collecting"


@pytest.fixture
def canary(db, admin_user):
    from apps.experiments.canary import canary_start
    from apps.registry.services import alias_deploy

    v1, v2 = ModelVersionFactory(), ModelVersionFactory()
    alias_deploy(actor=admin_user, version_id=v1.pk, alias="staging")

    def make(**kw):
        return canary_start(actor=admin_user, version_id=v2.pk, alias="staging", percent=10, **kw)

    return make


TOOLS = {"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]}


def _tool_answer(args):
    return {"choices": [{"message": {"tool_calls": [{"function": {"name": "get_weather", "arguments": args}}]}}]}


def test_canary_thresholds_on_latency_and_tool_calls(canary):
    from apps.experiments.canary import canary_evaluate

    exp = canary(thresholds={"p95_ms": 500, "tool_call_validity": 0.9}, min_requests=10)
    for _ in range(9):
        _log(exp, "canary", latency=2000)
    assert canary_evaluate(exp) == "waiting"  # 9 < min_requests: nothing judged
    _log(exp, "canary", latency=100)
    for i in range(10):
        _log(exp, "canary", latency=100, request=TOOLS, response=_tool_answer('{"city": "Paris"}' if i < 8 else
                                                                               '{"town": 1}'))
    assert canary_evaluate(exp) == "rolled_back"
    exp.refresh_from_db()
    event = exp.events.get(kind="breach")
    assert event.metric == "p95_ms" and event.value > 500 and event.threshold == 500


def test_canary_tool_call_validity_breach(canary):
    from apps.experiments.canary import canary_evaluate

    exp = canary(thresholds={"tool_call_validity": 0.9}, min_requests=10)
    for i in range(10):
        _log(exp, "canary", request=TOOLS, response=_tool_answer('{"city": "Paris"}' if i < 8 else '{"town": 1}'))
    assert canary_evaluate(exp) == "rolled_back"
    event = exp.events.get(kind="breach")
    assert event.metric == "tool_call_validity" and event.value == 0.8


def test_old_requests_fall_out_of_the_window(canary):
    from apps.experiments.canary import canary_evaluate

    exp = canary(min_requests=5, window_minutes=5, hold_minutes=60)
    past = timezone.now() + dt.timedelta(minutes=1)  # rows 1 min after start, evaluated 10 min later
    for _ in range(10):
        _log(exp, "canary", status=500, at=past)
    assert canary_evaluate(exp, now=past + dt.timedelta(minutes=10)) == "waiting"
    assert canary_evaluate(exp, now=past + dt.timedelta(minutes=2)) == "rolled_back"


def test_canary_held_and_ready_without_auto_promote(canary):
    from apps.experiments.canary import canary_evaluate

    exp = canary(min_requests=3, hold_minutes=0)
    for _ in range(3):
        _log(exp, "canary")
    assert canary_evaluate(exp) == "ready"
    assert canary_evaluate(exp) == "ready"
    assert exp.events.filter(kind="ready").count() == 1 and exp.running


def test_canary_start_validation_and_manual_rollback(canary, admin_user, member):
    from apps.core.exceptions import Conflict, PermissionDenied, ValidationFailed
    from apps.experiments.canary import canary_rollback, canary_start
    from apps.registry.models import Alias, Deployment

    with pytest.raises(ValidationFailed) as e:
        canary(thresholds={"error_rate": 2})
    assert e.value.errors[0]["field"] == "thresholds.error_rate"
    with pytest.raises(ValidationFailed) as e:
        canary(thresholds={"latency": 5})
    assert e.value.errors[0]["field"] == "thresholds.latency"
    with pytest.raises(ValidationFailed) as e:
        canary(thresholds={})
    assert e.value.errors[0]["field"] == "thresholds"
    with pytest.raises(ValidationFailed) as e:
        canary_start(actor=admin_user, version_id=ModelVersionFactory().pk, alias="nowhere", percent=10)
    assert e.value.errors[0]["field"] == "alias"
    current = Alias.objects.get(name="staging").model_version_id
    with pytest.raises(ValidationFailed) as e:  # already serves it: a canary would change nothing
        canary_start(actor=admin_user, version_id=current, alias="staging", percent=10)
    assert e.value.errors[0]["field"] == "alias"
    with pytest.raises(ValidationFailed) as e:
        canary_start(actor=admin_user, version_id=ModelVersionFactory().pk, alias="staging", percent=100)
    assert e.value.errors[0]["field"] == "canary_percent"
    with pytest.raises(PermissionDenied):
        canary_start(actor=member, version_id=ModelVersionFactory().pk, alias="staging", percent=5)
    exp = canary()
    with pytest.raises(Conflict):
        canary()
    with pytest.raises(PermissionDenied):
        canary_rollback(actor=member, experiment_id=exp.pk)
    canary_rollback(actor=admin_user, experiment_id=exp.pk, reason="looked wrong")
    exp.refresh_from_db()
    assert exp.status == "rolled_back" and exp.ended_by == admin_user
    d = Deployment.objects.filter(alias_name="staging").first()
    assert d.action == "rollback" and d.reason == "looked wrong" and d.actor == admin_user
    assert Alias.objects.get(name="staging").model_version_id == current
    with pytest.raises(Conflict):
        canary_rollback(actor=admin_user, experiment_id=exp.pk)
