"""The home page's live status (issue 14 #4 of the design pass): working jobs with their phase, recent runs,
deployed aliases and the proxy's traffic in the last hour; a live partial refreshes while something runs. The
top nav keeps to one line at 1440 px for an admin (keys, docs and the admin pages live in the account menu)."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


def _entry(user, minutes_ago, status=200, latency=100.0, model="production"):
    from apps.proxy.models import RequestLog
    from apps.traffic.models import RequestEntry

    when = timezone.now() - dt.timedelta(minutes=minutes_ago)
    log = RequestLog.objects.create(request_id=uuid.uuid4().hex, endpoint="chat.completions", model_requested=model,
                                    status_code=status, latency_ms=latency, created_at=when)
    RequestEntry.objects.update_or_create(log=log, defaults=dict(
        created_at=when, user=user, model=model, status_code=status, latency_ms=latency, prompt_tokens=10,
        completion_tokens=5))


def test_traffic_last_hour_counts_only_the_last_hour_and_the_user_s_own(member, make_user):
    from apps.core.home import traffic_last_hour

    other = make_user("other", "member")
    _entry(member, 5)
    _entry(member, 30, status=502, latency=300.0)
    _entry(member, 90)  # older than an hour
    _entry(other, 5)  # someone else's
    t = traffic_last_hour(member)
    assert (t["requests"], t["errors"], t["tokens"], t["p50_ms"]) == (2, 1, 30, 200)
    assert t["models"] == [("production", 2)] and t["scope"] == "your requests"


def test_home_shows_the_running_run_with_its_phase_and_refreshes(client, member, qa_version, tiny_base_model):
    from apps.training.services import run_claim, run_create, run_set_phase

    run = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    run_claim(run_id=run.pk)
    run_set_phase(run_id=run.pk, phase="evaluating")
    queued = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    client.force_login(member)
    html = client.get("/").content.decode()
    jobs = html[html.index('id="home-jobs"'):html.index('id="home-runs"')]
    assert f"/runs/{run.pk}/" in jobs and "· evaluating" in jobs and f"/runs/{queued.pk}/" in jobs
    assert jobs.index(f"/runs/{run.pk}/") < jobs.index(f"/runs/{queued.pk}/")  # running before queued
    assert 'hx-trigger="every 5s"' in html
    live = client.get("/?partial=live", HTTP_HX_REQUEST="true").content.decode()
    assert live.lstrip().startswith('<div id="home-live"') and "Get started" not in live


def test_home_empty_states(client, member):
    client.force_login(member)
    html = client.get("/").content.decode()
    assert "Nothing running or queued" in html and "No runs yet" in html and "No alias deployed yet" in html
    assert 'id="traffic-requests">0<' in html and "every 5s" not in html
