"""A review's result version built by a worker (job kind "review.result", apps/review/jobs.py): Finish answers at
once with an `importing` version and its job (202 on the API), the task is closed meanwhile, the worker's actor
builds the version with progress, and the hooks finish the task; a cancel or a failure opens the task again
with nothing half-written; a dead worker's build is queued again and starts over; finishing again answers
with the same version and job. Small results are built in the request (tests/review/test_result.py)."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from apps.core.exceptions import Conflict
from apps.core.jobs import services as job_services
from apps.core.jobs.reconcile import job_reconcile
from apps.core.models import Job
from apps.datasets.models import DatasetVersion, Example
from apps.review import services
from apps.review.models import ReviewResponse, ReviewSnapshot
from tests.factories import ApiKeyFactory
from tests.review.conftest import run_result_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tokenizer_loaded")]


@pytest.fixture
def sent(monkeypatch):
    """Messages sent to the workers (by actor name), and every result built by the worker."""
    out = []
    monkeypatch.setattr("apps.core.jobs.enqueue.enqueue", lambda name, *args, **kw: out.append((name, args)))
    monkeypatch.setattr("apps.review.services.results.INLINE_MAX", 0)
    return out


def _reviewed(make_task, people, n=6):
    """A task whose `n` items rev1 accepted (item 2 edited) except item 1 (rejected)."""
    task = make_task(n=n, overlap=1, assignees=[people.rev1])
    while (item := services.queue_next(user=people.rev1, task_id=task.pk)) is not None:
        msgs = None
        if item.example_index == 2:
            msgs = [dict(m) for m in item.example.messages]
            msgs[2]["content"] = "Answer 2: an edited answer, long enough to be a real answer."
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, messages=msgs,
                             decision="reject" if item.example_index == 1 else "accept")
    return task


def _api(client, user):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=user).plaintext}"
    return client


def test_finish_on_the_worker_with_progress(client, people, make_task, sent, monkeypatch):
    monkeypatch.setattr("apps.review.services.results.PROGRESS_EVERY", 1)
    task = _reviewed(make_task, people)
    c = _api(client, people.owner)
    r = c.post(f"/api/reviews/{task.pk}/finish")
    assert r.status_code == 202, r.content
    body = r.json()
    assert body["status"] == "importing" and (body["accepted"], body["rejected"], body["edited"]) == (5, 1, 1)
    job = body["job"]
    assert job["kind"] == "review.result" and job["status"] == "queued" and job["can_cancel"]
    assert job["target"]["id"] == body["dataset_version_id"]
    snap = ReviewSnapshot.objects.get(pk=body["snapshot_id"])
    assert sent == [("review_result", (snap.pk,))]
    task.refresh_from_db()
    assert task.status == "finishing" and task.result_version_id is None
    # closed to decisions while it is built; asking again answers with the same version and job
    with pytest.raises(Conflict):
        services.queue_next(user=people.rev1, task_id=task.pk)
    again = c.post(f"/api/reviews/{task.pk}/finish")
    assert again.status_code == 202 and again.json()["dataset_version_id"] == body["dataset_version_id"]
    assert again.json()["job"]["id"] == job["id"] and len(sent) == 1

    snap = run_result_job(snap)  # what the worker runs
    v = snap.version
    assert v.status == "ready" and v.example_count == 5 and v.parent_id == task.version_id
    task.refresh_from_db()
    assert task.status == "finished" and task.result_version_id == v.pk and task.finished_at
    assert not ReviewResponse.objects.filter(task=task, status="leased", lease_expires_at__isnull=False).exists()
    done = Job.objects.get(pk=job["id"])
    assert done.status == "succeeded" and done.progress["total"] == 5 and done.progress["current"] == 5
    assert done.progress["unit"] == "examples"
    edited = [e for e in v.examples.order_by("index") if e.meta["review"]["edited"]]
    assert [e.messages[2]["content"] for e in edited] == ["Answer 2: an edited answer, long enough to be a real answer."]
    run_result_job(snap)  # a redelivered message changes nothing
    assert Example.objects.filter(version=v).count() == 5
    final = c.post(f"/api/reviews/{task.pk}/finish")
    assert final.status_code == 200 and final.json()["status"] == "ready"
    assert final.json()["dataset_version_id"] == v.pk and final.json()["job"]["status"] == "succeeded"
    assert c.get(f"/api/jobs/{job['id']}").json()["status"] == "succeeded"


def test_a_cancelled_finish_opens_the_task_again(people, make_task, sent):
    task = _reviewed(make_task, people)
    snap = services.task_finish(user=people.owner, task_id=task.pk)
    job_services.job_request_cancel(user=people.owner, job_id=snap.version.job_id)  # nothing runs it yet
    snap = run_result_job(snap)  # the message arrives after the cancel: nothing to do
    assert snap.version.status == "failed" and not snap.version.examples.exists()
    assert snap.version.error == "It was cancelled before it was ready; nothing was kept."
    assert Job.objects.get(pk=snap.version.job_id).status == "cancelled"
    task.refresh_from_db()
    assert task.status == "open" and task.result_version_id is None
    assert services.queue_next(user=people.rev1, task_id=task.pk) is None  # open again (nothing left to do)
    # no person's retry (the decisions may have changed): finish again instead, a new version
    with pytest.raises(Conflict) as e:
        job_services.job_retry(user=people.owner, job_id=snap.version.job_id)
    assert "Finish or Snapshot" in e.value.message
    second = services.task_finish(user=people.owner, task_id=task.pk)
    assert second.pk != snap.pk and second.version.number == snap.version.number + 1


def test_cancel_while_it_builds_stops_it(people, make_task, sent, monkeypatch):
    """The worker looks for a cancel at each progress report (cooperative): the cancel asked while it
    writes (here: at its first report) stops it, its rows are deleted, and the task is open again."""
    monkeypatch.setattr("apps.review.services.results.PROGRESS_EVERY", 1)
    task = _reviewed(make_task, people)
    snap = services.task_finish(user=people.owner, task_id=task.pk)
    real = job_services.job_progress

    def progress_then_cancel(**kw):
        wrote = real(**kw)
        if kw.get("current") == 2:
            job_services.job_request_cancel(user=people.owner, job_id=kw["job_id"])
        return wrote

    monkeypatch.setattr(job_services, "job_progress", progress_then_cancel)
    monkeypatch.setattr(job_services, "PROGRESS_EVERY_S", 0)
    snap = run_result_job(snap)
    assert Job.objects.get(pk=snap.version.job_id).status == "cancelled"
    assert snap.version.status == "failed" and not Example.objects.filter(version=snap.version).exists()
    assert snap.version.error == "It was cancelled before it was ready; nothing was kept."
    task.refresh_from_db()
    assert task.status == "open"


def test_a_failed_build_keeps_nothing_and_opens_the_task(people, make_task, sent, monkeypatch):
    task = _reviewed(make_task, people)
    snap = services.task_finish(user=people.owner, task_id=task.pk)

    def broken(*a, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr("apps.datasets.validation.pipeline.validate_examples", broken)
    snap = run_result_job(snap)
    job = Job.objects.get(pk=snap.version.job_id)
    assert job.status == "failed" and job.error_code == "E_REVIEW_RESULT" and "disk full" in job.error
    assert snap.version.status == "failed" and "disk full" in snap.version.error
    task.refresh_from_db()
    assert task.status == "open"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_dead_workers_build_is_queued_again_and_starts_over(people, make_task, sent):
    task = _reviewed(make_task, people)
    snap = services.task_finish(user=people.owner, task_id=task.pk)
    v = snap.version
    # a worker took it, wrote a row, and died
    Job.objects.filter(pk=v.job_id).update(status="running", holder=f"{socket.gethostname()}:{_dead_pid()}")
    Example.objects.create(version=v, index=0, messages=[{"role": "user", "content": "half"}], content_hash="x")
    acted = job_reconcile(kinds=["review.result"])
    assert [(j.pk, a) for j, a in acted] == [(v.job_id, "requeued")]
    assert sent[-1] == ("review_result", (snap.pk,)) and not Example.objects.filter(version=v).exists()
    task.refresh_from_db()
    assert task.status == "finishing"  # still being finished
    snap = run_result_job(snap)
    assert snap.version.status == "ready" and snap.version.example_count == 5
    task.refresh_from_db()
    assert task.status == "finished"


def test_a_snapshot_on_the_worker_leaves_the_task_open(client, people, make_task, sent):
    task = _reviewed(make_task, people)
    c = _api(client, people.owner)
    r = c.post(f"/api/reviews/{task.pk}/snapshot")
    assert r.status_code == 202 and r.json()["final"] is False and r.json()["status"] == "importing"
    task.refresh_from_db()
    assert task.status == "open"
    snap = run_result_job(ReviewSnapshot.objects.get(pk=r.json()["snapshot_id"]))
    assert snap.version.status == "ready" and (snap.accepted, snap.rejected, snap.edited) == (5, 1, 1)
    task.refresh_from_db()
    assert task.status == "open" and task.result_version_id is None


def test_the_task_page_shows_the_build_and_its_cancel(client, people, make_task, sent):
    task = _reviewed(make_task, people)
    client.force_login(people.owner)
    r = client.post(f"/reviews/{task.pk}/finish/", follow=True)
    html = r.content.decode()
    snap = task.snapshots.get()
    assert "is being built by a worker" in html and 'id="finishing-note"' in html
    assert f'data-result-job="{snap.version.job_id}"' in html and "waiting for a worker" in html
    assert f'action="/jobs/{snap.version.job_id}/cancel/"' in html and "Finish the review" not in html
    run_result_job(snap)
    html = client.get(f"/reviews/{task.pk}/").content.decode()
    assert "data-result-job" not in html and "Train on it" in html and 'id="finishing-note"' not in html
    client.force_login(people.rev1)  # a reviewer sees the build, without its cancel
    task2 = _reviewed(make_task, people)
    services.task_finish(user=people.owner, task_id=task2.pk)
    html = client.get(f"/reviews/{task2.pk}/").content.decode()
    assert "data-result-job" in html and "/cancel/" not in html


def test_job_events_reach_the_tasks_websocket_group(people, make_task, sent):
    from apps.review.jobs import ReviewResultKind

    task = _reviewed(make_task, people)
    snap = services.task_finish(user=people.owner, task_id=task.pk)
    job = Job.objects.get(pk=snap.version.job_id)
    kind = ReviewResultKind()
    assert kind.groups(job) == [f"review-{task.pk}"]
    assert kind.payload(job) == {"task_id": task.pk, "snapshot_id": snap.pk, "final": True,
                                 "dataset_version_id": snap.version_id}
    assert json.loads(json.dumps(job_services.job_event(job)))["task_id"] == task.pk
    assert DatasetVersion.objects.get(pk=snap.version_id).progress["review_task"] == task.pk


@pytest.mark.django_db(transaction=True)
def test_through_a_real_dramatiq_worker(client, people, make_task, monkeypatch):
    """The API's 202, the message on the broker, a real Dramatiq worker running the actor, the task finished:
    nothing in between is stood in for (the test's broker is Dramatiq's StubBroker)."""
    import dramatiq

    from workers import review  # noqa: F401  - this test plays the worker process

    monkeypatch.setattr("apps.review.services.results.INLINE_MAX", 0)
    task = _reviewed(make_task, people)
    broker = dramatiq.get_broker()
    broker.flush_all()  # nothing left over from other tests
    r = _api(client, people.owner).post(f"/api/reviews/{task.pk}/finish")
    assert r.status_code == 202 and r.json()["job"]["status"] == "queued"
    assert broker.queues["default"].qsize() == 1
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        broker.join("default", timeout=60_000)
    finally:
        worker.stop()
    body = _api(client, people.owner).post(f"/api/reviews/{task.pk}/finish").json()
    assert body["status"] == "ready" and body["job"]["status"] == "succeeded", body
    assert body["dataset_version_id"] == r.json()["dataset_version_id"] and body["accepted"] == 5
    task.refresh_from_db()
    assert task.status == "finished" and task.result_version_id == body["dataset_version_id"]
