"""The experiments pages: the list (running, ended, rollout events, the new-experiment form with field errors),
an experiment's page (verdict, arms, comparisons, SRM, plots as SVG first, events) and the admin actions."""
from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from tests.factories import ModelVersionFactory


@pytest.fixture
def setup(db, admin_user):
    from apps.registry.services import alias_deploy

    v1, v2 = ModelVersionFactory(name="base <script>"), ModelVersionFactory(name="tuned")
    alias_deploy(actor=admin_user, version_id=v1.pk, alias="production")
    return v1, v2


def _logs(exp, arm, n, status=200):
    from apps.proxy.models import RequestLog

    RequestLog.objects.bulk_create([RequestLog(
        request_id=uuid.uuid4().hex, endpoint="chat.completions", model_requested=exp.alias, status_code=status,
        latency_ms=120.0 + i, ttft_ms=40.0, prompt_tokens=10, completion_tokens=5, created_at=timezone.now(),
        experiment_id=exp.pk, arm=arm) for i in range(n)])


def test_list_and_create(client, admin_user, member, setup):
    v1, v2 = setup
    client.force_login(member)
    r = client.get("/experiments/")
    assert r.status_code == 200 and b"Nothing running" in r.content and b"New experiment" not in r.content
    client.force_login(admin_user)
    r = client.get("/experiments/")
    assert b"New experiment" in r.content and b'value="production"' in r.content
    # field errors: a second arm is required; a duplicate version is named on its row
    r = client.post("/experiments/", {"alias": "production", "sticky_by": "session", "metric": "feedback",
                                      "arm_version_0": v1.pk, "arm_weight_0": 50})
    assert r.status_code == 422 and b"field-error" in r.content
    r = client.post("/experiments/", {"alias": "production", "sticky_by": "session", "metric": "feedback",
                                      "arm_version_0": v1.pk, "arm_weight_0": 50, "arm_version_2": v1.pk,
                                      "arm_weight_2": 50, "arm_version_1": v2.pk, "arm_weight_1": 50})
    assert r.status_code == 422 and b"Each arm needs its own version" in r.content
    r = client.post("/experiments/", {"alias": "production", "sticky_by": "session", "metric": "feedback",
                                      "name": "tone <b>test</b>", "arm_version_0": v1.pk, "arm_weight_0": 50,
                                      "arm_version_1": v2.pk, "arm_weight_1": 50})
    assert r.status_code == 302
    from apps.experiments.models import Experiment

    exp = Experiment.objects.get()
    assert exp.sticky_by == "session" and [a.weight for a in exp.arms.all()] == [50, 50]
    r = client.get("/experiments/")
    page = r.content.decode()
    assert "tone &lt;b&gt;test&lt;/b&gt;" in page and "<b>test</b>" not in page and "started" in page
    r = client.post("/experiments/", {"alias": "production", "sticky_by": "session", "metric": "feedback",
                                      "arm_version_0": v1.pk, "arm_weight_0": 50, "arm_version_1": v2.pk,
                                      "arm_weight_1": 50})
    assert r.status_code == 409 and b"is running on alias" in r.content


def test_detail_with_data_and_actions(client, admin_user, member, setup):
    from apps.experiments.services import experiment_create
    from apps.registry.models import Alias

    v1, v2 = setup
    exp = experiment_create(actor=admin_user, alias="production", metric="error_rate", sticky_by="api_key",
                            arms=[{"model_version_id": v1.pk, "weight": 50}, {"model_version_id": v2.pk, "weight": 50}])
    client.force_login(member)
    r = client.get(f"/experiments/{exp.pk}/")
    assert r.status_code == 200 and b"No requests through this experiment yet" in r.content
    assert b"Collecting" in r.content and b"Promote" not in r.content  # members see, admins act
    _logs(exp, "A", 60)
    _logs(exp, "A", 20, status=500)
    _logs(exp, "B", 80)
    r = client.get(f"/experiments/{exp.pk}/")
    page = r.content.decode()
    assert "<svg" in page and 'id="experiment-series"' in page and "Requests per arm" in page
    assert "25.0 %" in page and "0.0 %" in page  # error rates per arm
    assert "base &lt;script&gt;" in page and "<script>" not in page.split("</h1>")[0]
    assert "Arm B beats A on error rate: difference −25.00 pts" in page  # in the arms table's unit, not −0.25
    assert client.get("/experiments/999999/").status_code == 404
    client.force_login(admin_user)
    r = client.post(f"/experiments/{exp.pk}/action", {"action": "promote", "arm": "B", "reason": "fewer errors"})
    assert r.status_code == 302
    assert Alias.objects.get(name="production").model_version_id == v2.pk
    page = client.get(f"/experiments/{exp.pk}/").content.decode()
    assert "outcome-promoted\">promoted<" in page and "fewer errors" in page
    r = client.post(f"/experiments/{exp.pk}/action", {"action": "stop"}, follow=True)
    assert b"already promoted" in r.content
    r = client.post(f"/experiments/{exp.pk}/action", {"action": "explode"}, follow=True)
    assert b"Unknown action" in r.content


def test_canary_page(client, admin_user, setup):
    from apps.experiments.canary import canary_evaluate, canary_start

    v1, v2 = setup
    exp = canary_start(actor=admin_user, version_id=v2.pk, alias="production", percent=20, min_requests=10,
                       thresholds={"error_rate": 0.05, "p95_ms": 2000})
    _logs(exp, "stable", 40)
    _logs(exp, "canary", 12)
    assert canary_evaluate(exp) == "holding"
    client.force_login(admin_user)
    page = client.get(f"/experiments/{exp.pk}/").content.decode()
    assert "Hold: 0 of 30 min" in page and "≤ 5 %" in page and "Promote canary" in page and "Roll back" in page
    r = client.post(f"/experiments/{exp.pk}/action", {"action": "rollback", "reason": "not today"})
    assert r.status_code == 302
    page = client.get(f"/experiments/{exp.pk}/").content.decode()
    assert "outcome-rolled_back\">rolled back<" in page and "not today" in page and "Promote canary" not in page
