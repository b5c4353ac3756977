""""Add to dataset": requests become a new immutable dataset version of chat examples (tool calls kept,
retries de-duplicated, fallbacks flagged, the request id as provenance, failures skipped and counted);
bad input is a field error; large selections run as a "traffic.export" job on the worker."""
from __future__ import annotations

import pytest
from django.urls import reverse

from apps.core.exceptions import PermissionDenied, ValidationFailed
from apps.datasets.models import Dataset, DatasetVersion
from apps.traffic import services
from apps.traffic.models import TrafficExport
from tests.factories import DatasetVersionFactory, UserFactory, qa_example
from tests.traffic.conftest import chat_request, chat_response

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def _examples(version):
    return list(version.examples.order_by("index"))


def test_selection_becomes_a_new_dataset_with_provenance_tool_calls_and_fallback(log_request, member):
    call = {"id": "call_7", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}
    tool_row = log_request(user=member, request=chat_request("Weather in Rome?", tools=[WEATHER]),
                           response=chat_response(tool_calls=[call], finish="tool_calls"))
    fb_row = log_request(user=member, text="Who wrote Hamlet?", answer="Shakespeare.", fallback=True,
                         served_by="provider:openrouter/gpt-4o")
    failed = log_request(user=member, text="oops", status_code=500, response={}, error="boom")
    export = services.traffic_export(user=member, new_dataset="From traffic", ids=[tool_row.pk, fb_row.pk, failed.pk])
    version = export.version
    assert version.status == DatasetVersion.Status.READY, version.error
    assert version.dataset.name == "From traffic" and version.dataset.owner == member and version.number == 1
    assert export.counts["selected"] == 3 and export.counts["exported"] == 2 and export.counts["failed"] == 1
    assert export.counts["fallback"] == 1
    examples = {e.meta["request_id"]: e for e in _examples(version)}
    assert set(examples) == {tool_row.request_id, fb_row.request_id}  # provenance, and no failed request
    tool_ex = examples[tool_row.request_id]
    assert tool_ex.tools[0]["function"]["name"] == "get_weather"
    assert tool_ex.messages[-1]["tool_calls"][0] == call
    assert tool_ex.meta["source"] == "proxy" and tool_ex.meta["served_by"] == "version:1"
    fb = examples[fb_row.request_id]
    assert fb.meta["fallback"] is True and "fallback" in fb.tags
    assert fb.meta["served_by"] == "provider:openrouter/gpt-4o"
    assert examples[tool_row.request_id].meta["fallback"] is False
    assert fb.messages == [{"role": "user", "content": "Who wrote Hamlet?"},
                           {"role": "assistant", "content": "Shakespeare."}]
    assert export.version.job.kind == "traffic.export" and export.version.job.status == "succeeded"


def test_retries_are_deduplicated_by_idempotency_key_and_content(log_request, member):
    from apps.proxy.models import RequestLog

    first = log_request(user=member, text="Tell me a joke", answer="Why did the chicken...")
    again = log_request(user=member, text="Tell me a joke", answer="Knock knock.")  # a retry without a key
    keyed_a = log_request(user=member, text="Summarise the report", answer="Short.", idempotency_key="idem-1")
    keyed_b = log_request(user=member, text="Summarise the report, please", answer="Short!", idempotency_key="idem-2")
    # two rows with one Idempotency-Key (two concurrent first deliveries: the log merges later ones)
    RequestLog.objects.filter(pk=keyed_b.pk).update(idempotency_key="idem-1")
    distinct = log_request(user=member, text="Another question", answer="Another answer.")
    export = services.traffic_export(user=member, new_dataset="dedup",
                                     ids=[first.pk, again.pk, keyed_a.pk, keyed_b.pk, distinct.pk])
    assert export.counts["exported"] == 3 and export.counts["duplicates"] == 2
    kept = {e.meta["request_id"] for e in _examples(export.version)}
    assert kept == {again.request_id, keyed_b.request_id, distinct.request_id}  # the newest attempt wins


def test_same_user_idempotent_retry_is_one_row_and_one_example(log_request, member):
    a = log_request(user=member, text="Retry me", answer="ok 1", idempotency_key="k-9", status_code=502, response={})
    b = log_request(user=member, text="Retry me", answer="ok 2", idempotency_key="k-9")  # the SDK's retry
    assert a.pk == b.pk  # request_log_record merged it
    export = services.traffic_export(user=member, new_dataset="retry", ids=[a.pk])
    assert export.counts["exported"] == 1
    assert _examples(export.version)[0].messages[-1]["content"] == "ok 2"


def test_filter_export_appends_to_an_existing_dataset_and_skips_what_it_has(log_request, member):
    parent = DatasetVersionFactory(dataset__owner=member, dataset__name="mine",
                                   examples=[qa_example(i) for i in range(3)])
    rows = [log_request(user=member, text=f"Question {i} about the sea", answer=f"Answer {i}.") for i in range(4)]
    log_request(user=member, text="unrelated", answer="x", model_requested="staging", alias="staging")
    first = services.traffic_export(user=member, dataset_id=parent.dataset_id,
                                    filters={"q": "sea", "model": "production"})
    v = first.version
    assert v.status == "ready" and v.parent_id == parent.pk and v.number == 2 and v.example_count == 7
    assert first.source == TrafficExport.Source.FILTER and first.spec["until_id"] == rows[-1].pk
    assert {e.meta.get("request_id") for e in _examples(v)} >= {r.request_id for r in rows}
    # the same filter again: every request is already in the latest version
    later = log_request(user=member, text="One more question about the sea", answer="Yes.")
    second = services.traffic_export(user=member, dataset_id=parent.dataset_id, filters={"q": "sea"})
    assert second.version.parent_id == v.pk and second.counts["in_parent"] == 4 and second.counts["exported"] == 1
    assert second.version.example_count == 8
    assert DatasetVersion.objects.get(pk=v.pk).example_count == 7  # the earlier version is unchanged
    assert later.request_id in {e.meta.get("request_id") for e in _examples(second.version)}


def test_bad_input_is_a_field_error_and_writes_nothing(log_request, member):
    row = log_request(user=member)
    before = (Dataset.objects.count(), DatasetVersion.objects.count(), TrafficExport.objects.count())
    cases = [
        (dict(dataset_id=987654, ids=[row.pk]), "dataset"),
        (dict(dataset_id="abc", ids=[row.pk]), "dataset"),
        (dict(ids=[row.pk]), "dataset"),  # neither a dataset nor a new name
        (dict(new_dataset="x", ids=[]), "ids"),
        (dict(new_dataset="x", ids=[row.pk + 1000]), "ids"),
        (dict(new_dataset="x", filters={"q": "no such words anywhere"}), "ids"),
        (dict(new_dataset="y" * 201, ids=[row.pk]), "new_dataset"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationFailed) as exc:
            services.traffic_export(user=member, **kwargs)
        assert exc.value.errors[0]["field"] == field, kwargs
    assert (Dataset.objects.count(), DatasetVersion.objects.count(), TrafficExport.objects.count()) == before


def test_only_the_owner_or_an_admin_adds_to_a_dataset_and_members_export_their_own(log_request, member, admin_user):
    other = UserFactory(username="other")
    theirs = DatasetVersionFactory(dataset__owner=other, examples=[qa_example(1)]).dataset
    mine = log_request(user=member)
    with pytest.raises(PermissionDenied):
        services.traffic_export(user=member, dataset_id=theirs.pk, ids=[mine.pk])
    their_row = log_request(user=other, text="private")
    with pytest.raises(ValidationFailed):
        services.traffic_export(user=member, new_dataset="steal", ids=[their_row.pk])
    ok = services.traffic_export(user=admin_user, dataset_id=theirs.pk, ids=[their_row.pk, mine.pk])
    assert ok.version.status == "ready" and ok.counts["exported"] == 2


def test_nothing_usable_fails_the_version_with_the_reason(log_request, member):
    bad = [log_request(user=member, status_code=500, response={}, error="x") for _ in range(2)]
    export = services.traffic_export(user=member, new_dataset="empty", ids=[r.pk for r in bad])
    assert export.version.status == "failed" and export.version.example_count == 0
    assert "None of the 2 requests" in export.version.error and "2 failed" in export.version.error
    assert not export.version.examples.exists()


def test_large_selection_runs_on_the_worker(log_request, member, monkeypatch):
    sent = []
    monkeypatch.setattr("apps.core.jobs.enqueue.enqueue", lambda name, *args, **kw: sent.append((name, args)))
    monkeypatch.setattr("apps.traffic.services.exports.INLINE_MAX", 2)
    rows = [log_request(user=member, text=f"Big batch question {i}", answer=f"Answer {i}") for i in range(3)]
    export = services.traffic_export(user=member, new_dataset="big", ids=[r.pk for r in rows])
    assert export.version.status == "importing" and sent == [("traffic_export", (export.pk,))]
    from workers.traffic import traffic_export

    traffic_export.fn(export.pk)  # what the worker runs
    export.refresh_from_db()
    assert export.version.status == "ready" and export.version.example_count == 3
    services.export_process(export_id=export.pk)  # a redelivered message changes nothing
    assert DatasetVersion.objects.get(pk=export.version_id).example_count == 3


def test_two_click_flow_on_the_page(client, log_request, member):
    rows = [log_request(user=member, text=f"Page question {i}", answer=f"Page answer {i}") for i in range(2)]
    client.force_login(member)
    resp = client.post(reverse("traffic:export"), {"scope": "selected", "ids": [r.pk for r in rows], "dataset": "",
                                                   "new_dataset": "Clicked"})
    assert resp.status_code == 302
    ds = Dataset.objects.get(name="Clicked")
    assert resp["Location"].startswith(reverse("datasets:detail", args=[ds.pk]))
    assert ds.latest_version.example_count == 2
    # the whole filter, into the same dataset
    resp = client.post(reverse("traffic:export"), {"scope": "filter", "dataset": str(ds.pk), "q": "Page question 1"})
    assert resp.status_code == 302 and ds.versions.count() == 2


def test_page_shows_field_errors(client, log_request, member):
    row = log_request(user=member)
    client.force_login(member)
    resp = client.post(reverse("traffic:export"), {"scope": "selected", "dataset": "424242", "ids": [row.pk]})
    assert resp.status_code == 422 and "Dataset 424242 does not exist." in resp.content.decode()
    resp = client.post(reverse("traffic:export"), {"scope": "selected", "dataset": "", "new_dataset": "n"})
    assert resp.status_code == 422 and "Select at least one request." in resp.content.decode()
    resp = client.post(reverse("traffic:export"), {"scope": "selected", "new_dataset": "n", "ids": ["x1"]})
    assert resp.status_code == 422
    resp = client.post(reverse("traffic:export"), {"scope": "filter", "new_dataset": "n", "latency_min": "-5"})
    assert resp.status_code == 422 and "filter is not valid" in resp.content.decode()
    assert not Dataset.objects.exists()


def test_an_inline_export_never_waits_behind_another_build_of_the_dataset(log_request, member, monkeypatch):
    """While a worker builds a version of the dataset (it holds the dataset's advisory lock), a small export
    from the page goes to the worker instead of holding the web request."""
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    from apps.traffic.services.exports import _LOCK_SPACE

    sent = []
    monkeypatch.setattr("apps.core.jobs.enqueue.enqueue", lambda name, *args, **kw: sent.append((name, args)))
    ds = DatasetVersionFactory(dataset__owner=member, examples=[qa_example(1)]).dataset
    row = log_request(user=member, text="Queued behind a build", answer="Later.")
    other = connections.create_connection("default")
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", [_LOCK_SPACE, ds.pk])
        export = services.traffic_export(user=member, dataset_id=ds.pk, ids=[row.pk])
        assert export.version.status == "importing" and sent == [("traffic_export", (export.pk,))]
    finally:
        other.close()  # the session ends: the lock is released
    done = services.export_process(export_id=export.pk)
    assert done.version.status == "ready" and done.version.example_count == 2
