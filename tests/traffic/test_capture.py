"""Capture rules: "keep P% of alias X in dataset Y", sampled deterministically by request id, applied when
the worker records a request log, and cut into one new dataset version per batch (N requests or T seconds)."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.core.exceptions import PermissionDenied, ValidationFailed
from apps.datasets.models import DatasetVersion
from apps.traffic import services
from apps.traffic.models import CaptureItem, CaptureRule, TrafficExport
from apps.traffic.services.captures import sampled
from tests.factories import DatasetFactory, UserFactory


def test_sampling_is_deterministic_nested_and_near_the_percentage():
    ids = [uuid.uuid4().hex for _ in range(4000)]
    ten = {i for i in ids if sampled(i, 10)}
    twenty = {i for i in ids if sampled(i, 20)}
    assert ten <= twenty  # raising a rule's share keeps what it kept
    assert 320 <= len(ten) <= 480 and 680 <= len(twenty) <= 920
    assert all(sampled(i, 10) == (i in ten) for i in ids[:200])  # same request, same answer
    assert all(sampled(i, 100) for i in ids[:50]) and not any(sampled(i, 0) for i in ids[:50])


@pytest.fixture
def enqueued(monkeypatch):
    sent = []
    monkeypatch.setattr("apps.core.jobs.enqueue.enqueue", lambda name, *args, **kw: sent.append((name, args)))
    return sent


def test_rule_captures_matching_successful_requests_only(log_request, member, enqueued):
    ds = DatasetFactory(owner=member)
    rule = services.rule_create(user=member, pattern="prod*", percentage=100, dataset_id=ds.pk)
    ok = log_request(user=member, alias="production")
    log_request(user=member, model_requested="staging", alias="staging")  # another alias
    log_request(user=member, status_code=500, response={}, error="x")  # failed: never
    cut = log_request(user=member, response={"content": "Hal", "partial": True})  # a broken stream
    assert set(CaptureItem.objects.filter(rule=rule).values_list("log_id", flat=True)) == {ok.pk}
    services.rule_update(user=member, rule_id=rule.pk, only_successful=False)
    again = log_request(user=member, response={"content": "Hal", "partial": True})
    assert CaptureItem.objects.filter(rule=rule, log=again).exists()
    assert not CaptureItem.objects.filter(log=cut).exists()
    log_request(user=member, request_id=ok.request_id)  # a redelivered log is not captured twice
    rule.refresh_from_db()
    assert rule.captured == 2 and CaptureItem.objects.filter(rule=rule).count() == 2


def test_a_members_rule_captures_only_their_own_requests(log_request, member, admin_user, enqueued):
    other = UserFactory(username="other")
    mine = services.rule_create(user=member, pattern="*", percentage=100, dataset_id=DatasetFactory(owner=member).pk)
    everyone = services.rule_create(user=admin_user, pattern="*", percentage=100,
                                    dataset_id=DatasetFactory(owner=admin_user).pk)
    log_request(user=member)
    log_request(user=other)
    assert CaptureItem.objects.filter(rule=mine).count() == 1
    assert CaptureItem.objects.filter(rule=everyone).count() == 2


def test_sampling_percentage_applies(log_request, member, enqueued):
    rule = services.rule_create(user=member, pattern="production", percentage=25,
                                dataset_id=DatasetFactory(owner=member).pk)
    rows = [log_request(user=member, text=f"q {i}") for i in range(80)]
    expected = {r.pk for r in rows if sampled(r.request_id, 25)}
    assert set(CaptureItem.objects.filter(rule=rule).values_list("log_id", flat=True)) == expected
    assert 8 <= len(expected) <= 35


def test_batches_cut_one_version_per_batch(log_request, member, enqueued, settings):
    settings.HUB_CAPTURE_BATCH = 3
    settings.HUB_CAPTURE_MAX_WAIT_S = 3600
    ds = DatasetFactory(owner=member, name="captured")
    rule = services.rule_create(user=member, pattern="production", percentage=100, dataset_id=ds.pk)
    for i in range(2):
        log_request(user=member, text=f"Captured question {i}", answer=f"Captured answer {i}.")
    assert enqueued == [] and services.capture_flush() == []  # not full, not old: nothing to cut
    log_request(user=member, text="Captured question 2", answer="Captured answer 2.")
    assert enqueued == [("traffic_capture_flush", (rule.pk,))]  # the batch filled: the worker is told
    from workers.traffic import traffic_capture_flush

    traffic_capture_flush.fn(rule.pk)
    v1 = ds.versions.get()
    assert v1.status == "ready" and v1.example_count == 3 and v1.job.kind == "traffic.export"
    assert len({e.meta["request_id"] for e in v1.examples.all()}) == 3
    assert not CaptureItem.objects.exists()  # consumed
    export = TrafficExport.objects.get(version=v1)
    assert export.source == "capture" and export.rule == rule and export.counts["exported"] == 3
    # the next batch appends to that version
    for i in range(3, 6):
        log_request(user=member, text=f"Captured question {i}", answer=f"Captured answer {i}.")
    services.capture_flush(rule_id=rule.pk)
    v2 = ds.versions.order_by("-number").first()
    assert v2.number == 2 and v2.parent == v1 and v2.example_count == 6
    assert DatasetVersion.objects.get(pk=v1.pk).example_count == 3


def test_a_batch_that_waited_long_enough_is_cut_by_the_tick(log_request, member, enqueued, settings):
    settings.HUB_CAPTURE_BATCH = 1000
    settings.HUB_CAPTURE_MAX_WAIT_S = 60
    ds = DatasetFactory(owner=member)
    services.rule_create(user=member, pattern="production", percentage=100, dataset_id=ds.pk)
    log_request(user=member, text="Lonely question", answer="Lonely answer.")
    from workers.traffic import traffic_tick

    traffic_tick.fn()
    assert not ds.versions.exists()
    CaptureItem.objects.update(created_at=timezone.now() - dt.timedelta(seconds=61))
    traffic_tick.fn()
    assert ds.versions.get().example_count == 1


def test_tick_indexes_logs_without_an_entry(log_request, member):
    from apps.traffic.models import RequestEntry

    row = log_request(user=member, text="indexed later")
    RequestEntry.objects.all().delete()
    assert services.reindex_missing() == 1
    assert RequestEntry.objects.get(log=row).preview == "indexed later"


def test_capture_never_breaks_the_log(log_request, member, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("index down")

    monkeypatch.setattr("apps.traffic.services.captures.entry_upsert", boom)
    row = log_request(user=member)
    assert row.pk and row.request_id


def test_rule_input_errors_and_permissions(member, admin_user):
    other = UserFactory(username="other")
    theirs = DatasetFactory(owner=other)
    ds = DatasetFactory(owner=member)
    for kwargs, field in [(dict(pattern="", percentage=10, dataset_id=ds.pk), "pattern"),
                          (dict(pattern="x", percentage=0, dataset_id=ds.pk), "percentage"),
                          (dict(pattern="x", percentage="lots", dataset_id=ds.pk), "percentage"),
                          (dict(pattern="x", percentage=101, dataset_id=ds.pk), "percentage"),
                          (dict(pattern="x", percentage=10, dataset_id=999999), "dataset")]:
        with pytest.raises(ValidationFailed) as exc:
            services.rule_create(user=member, **kwargs)
        assert exc.value.errors[0]["field"] == field
    with pytest.raises(PermissionDenied):
        services.rule_create(user=member, pattern="x", percentage=10, dataset_id=theirs.pk)
    rule = services.rule_create(user=admin_user, pattern="x", percentage=10, dataset_id=theirs.pk)
    with pytest.raises(PermissionDenied):
        services.rule_update(user=member, rule_id=rule.pk, enabled=False)
    services.rule_delete(user=admin_user, rule_id=rule.pk)
    assert not CaptureRule.objects.exists()


def test_rules_page(client, member, log_request):
    ds = DatasetFactory(owner=member, name="Sink")
    client.force_login(member)
    resp = client.get(reverse("traffic:rules"))
    assert resp.status_code == 200 and "No capture rules yet" in resp.content.decode()
    resp = client.post(reverse("traffic:rules"), {"pattern": "production", "percentage": "150", "dataset": ds.pk})
    assert resp.status_code == 422 and "field-error" in resp.content.decode()
    resp = client.post(reverse("traffic:rules"), {"pattern": "production", "percentage": "10", "dataset": "424242"})
    assert resp.status_code == 422
    resp = client.post(reverse("traffic:rules"), {"pattern": "production", "percentage": "10", "dataset": ds.pk,
                                                  "only_successful": "on"})
    assert resp.status_code == 302
    rule = CaptureRule.objects.get()
    assert rule.percentage == 10 and rule.only_successful and rule.owner == member
    body = client.get(reverse("traffic:rules")).content.decode()
    assert "production" in body and "Sink" in body
    CaptureItem.objects.get_or_create(rule=rule, log=log_request(user=member, text="Force me", answer="Forced."))
    resp = client.post(reverse("traffic:rule_action", args=[rule.pk]), {"action": "flush"})
    assert resp.status_code == 302 and ds.versions.get().status == "ready" and not CaptureItem.objects.exists()
    other = UserFactory(username="other")
    client.force_login(other)
    client.post(reverse("traffic:rule_action", args=[rule.pk]), {"action": "disable"})
    rule.refresh_from_db()
    assert rule.enabled  # not theirs
    client.force_login(member)
    client.post(reverse("traffic:rule_action", args=[rule.pk]), {"action": "disable"})
    rule.refresh_from_db()
    assert not rule.enabled
    client.post(reverse("traffic:rule_action", args=[rule.pk]), {"action": "delete"})
    assert not CaptureRule.objects.exists()
