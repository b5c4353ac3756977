"""The one job lifecycle (apps.core.jobs): create + send after commit, claim, heartbeat, progress, phase,
cancel in every phase, finish exactly once with one payload shape, retry, and reconciliation of dead
holders, lost messages and stalled remote polls. A test kind stands in for a domain (its target is a user)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import dramatiq
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from apps.core.exceptions import Conflict, PermissionDenied
from apps.core.jobs import services
from apps.core.jobs.reconcile import job_reconcile
from apps.core.jobs.registry import FAIL, REQUEUE, JobKind, get_kind, register_kind
from apps.core.models import Job
from apps.core.realtime import job_group

pytestmark = pytest.mark.django_db

CALLS: list[tuple[str, str]] = []


@register_kind
class EchoKind(JobKind):
    kind = "test.echo"
    label = "Echo (test)"
    actor_name = "test_jobs_echo"
    queue_name = "default"
    max_attempts = 3
    lost_after_s = 60.0
    poll_stall_s = 120.0
    decision = REQUEUE

    def on_claim(self, job):
        job.phase = "working"
        CALLS.append(("claim", job.status))

    def on_phase(self, job, phase):
        CALLS.append(("phase", phase))

    def on_finish(self, job, status, result):
        CALLS.append(("finish", status))

    def on_holder_dead(self, job):
        return self.decision

    def on_requeue(self, job, reason):
        CALLS.append(("requeue", reason))

    def payload(self, job):
        return {"echo": True}


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    get_kind("test.echo").decision = REQUEUE
    services._last_progress.clear()
    dramatiq.get_broker().flush_all()
    yield
    dramatiq.get_broker().flush_all()


def _sent() -> list[tuple[str, tuple]]:
    broker = dramatiq.get_broker()
    return [(m.actor_name, tuple(m.args)) for q in broker.queues.values() for m in
            (dramatiq.Message.decode(raw) for raw in list(q.queue))]


def _dead_holder() -> str:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return f"{socket.gethostname()}:{p.pid}"


def _live_holder() -> str:
    return f"{socket.gethostname()}:{os.getppid()}"


def _job(member, *, capture=None, **kw) -> Job:
    if capture is not None:
        with capture(execute=True):
            return services.job_create(kind="test.echo", owner=member, target=member, args=[member.pk], **kw)
    return services.job_create(kind="test.echo", owner=member, target=member, args=[member.pk], **kw)


def _listen(job_id: int):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(job_group(job_id), channel)

    def drain():
        import asyncio

        async def go():
            out = []
            while True:
                try:
                    out.append(await asyncio.wait_for(layer.receive(channel), timeout=0.05))
                except asyncio.TimeoutError:
                    return out
        return async_to_sync(go)()
    return drain


# -- create / claim --------------------------------------------------------------------------------
def test_create_sends_its_message_by_name_after_commit(member, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = services.job_create(kind="test.echo", owner=member, target=member, args=[member.pk])
        assert _sent() == []  # nothing leaves before the transaction commits
    for cb in callbacks:
        cb()
    assert _sent() == [("test_jobs_echo", (member.pk,))]
    job.refresh_from_db()
    assert (job.status, job.phase, job.attempts, job.actor_name, job.queue_name) == (
        "queued", "queued", 1, "test_jobs_echo", "default")
    assert job.target == member and job.owner == member and job.enqueued_at is not None


def test_inline_job_sends_nothing(member, django_capture_on_commit_callbacks):
    _job(member, capture=django_capture_on_commit_callbacks, send=False)
    assert _sent() == []


def test_claim_is_idempotent_and_respects_a_live_holder(member):
    job = _job(member)
    claimed = services.job_claim(job_id=job.pk, holder="me:1")
    assert claimed.status == "running" and claimed.holder == "me:1" and claimed.phase == "working"
    assert claimed.started_at is not None and claimed.heartbeat_at is not None
    assert services.job_claim(job_id=job.pk, holder="me:1") is not None  # the same process again
    Job.objects.filter(pk=job.pk).update(holder=_live_holder(), heartbeat_at=timezone.now())
    assert services.job_claim(job_id=job.pk, holder="me:2") is None  # a re-delivered message
    Job.objects.filter(pk=job.pk).update(holder=_dead_holder())
    assert services.job_claim(job_id=job.pk, holder="me:2").holder == "me:2"  # a dead holder's job is taken
    services.job_finish(job_id=job.pk, status="succeeded")
    assert services.job_claim(job_id=job.pk, holder="me:2") is None  # finished


def test_claim_of_a_job_cancelled_before_it_started(member, admin_user):
    job = _job(member)
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    assert services.job_claim(job_id=job.pk, holder="me:1") is None
    job.refresh_from_db()
    assert job.status == "cancelled" and job.finished_at is not None
    assert ("finish", "cancelled") in CALLS


def test_heartbeat_only_from_the_holder(member):
    job = _job(member)
    services.job_claim(job_id=job.pk, holder="me:1")
    old = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=old)
    assert services.job_heartbeat(job_id=job.pk, holder="other:1") is False
    assert Job.objects.get(pk=job.pk).heartbeat_at == old
    assert services.job_heartbeat(job_id=job.pk, holder="me:1") is True
    assert Job.objects.get(pk=job.pk).heartbeat_at > old


# -- progress / phase / cancel ---------------------------------------------------------------------
def test_progress_is_throttled_and_broadcast_after_commit(member, django_capture_on_commit_callbacks):
    job = _job(member)
    services.job_claim(job_id=job.pk, holder="me:1")
    drain = _listen(job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_progress(job_id=job.pk, current=1, total=10, unit="steps") is True
        assert services.job_progress(job_id=job.pk, current=2, total=10) is False  # within the same second
    assert Job.objects.get(pk=job.pk).progress == {"current": 1, "total": 10, "unit": "steps"}
    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_progress(job_id=job.pk, current=3, message="almost", force=True) is True
    assert Job.objects.get(pk=job.pk).progress == {"current": 3, "total": 10, "unit": "steps", "message": "almost"}
    events = drain()
    assert [e["event"] for e in events] == ["job_progress", "job_progress"]
    assert events[-1]["payload"]["progress"]["current"] == 3 and events[-1]["payload"]["echo"] is True


def test_phase_calls_the_hook_and_broadcasts(member, django_capture_on_commit_callbacks):
    job = _job(member)
    services.job_claim(job_id=job.pk, holder="me:1")
    drain = _listen(job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.job_set_phase(job_id=job.pk, phase="evaluating")
        services.job_set_phase(job_id=job.pk, phase="evaluating")  # same phase: nothing
    assert ("phase", "evaluating") in CALLS and CALLS.count(("phase", "evaluating")) == 1
    (event,) = drain()
    assert event["event"] == "status" and event["payload"]["phase"] == "evaluating"


def test_cancel_in_every_phase(member, make_user, admin_user):
    queued = _job(member)
    with pytest.raises(PermissionDenied):
        services.job_request_cancel(user=make_user("other"), job_id=queued.pk)
    assert services.job_request_cancel(user=member, job_id=queued.pk).status == "cancelled"  # nothing to stop
    with pytest.raises(Conflict):
        services.job_request_cancel(user=member, job_id=queued.pk)

    running = _job(member)
    services.job_claim(job_id=running.pk, holder="me:1")
    for phase in ("training", "evaluating", "saving"):
        services.job_set_phase(job_id=running.pk, phase=phase)
        assert services.job_should_stop(job_id=running.pk) is False
    job = services.job_request_cancel(user=admin_user, job_id=running.pk)  # an admin may
    assert job.status == "running" and job.cancel_requested
    assert services.job_should_stop(job_id=running.pk) is True  # the worker sees it, in whatever phase
    assert services.job_finish(job_id=running.pk, status="cancelled") is True


def test_stop_checker_asks_the_database_at_most_every_interval_and_keeps_a_stop(member, admin_user,
                                                                               django_assert_num_queries):
    running = _job(member)
    services.job_claim(job_id=running.pk, holder="me:1")
    should_stop = services.job_stop_checker(job_id=running.pk, every_s=3600)
    with django_assert_num_queries(1):
        assert should_stop() is False  # the first call asks
        assert should_stop() is False  # within the interval: not asked again
    services.job_request_cancel(user=admin_user, job_id=running.pk)
    with django_assert_num_queries(0):
        assert should_stop() is False  # the cancel is seen at the next interval, not before
    eager = services.job_stop_checker(job_id=running.pk, every_s=0)
    with django_assert_num_queries(1):
        assert eager() is True and eager() is True  # once seen, a stop stays seen without asking again


# -- finish / retry --------------------------------------------------------------------------------
def test_finish_exactly_once_with_one_payload_shape(member, django_capture_on_commit_callbacks):
    job = _job(member)
    services.job_claim(job_id=job.pk, holder="me:1")
    drain = _listen(job.pk)
    effects = []
    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_finish(job_id=job.pk, status="failed", error="Traceback (most recent call last):\n  x",
                                   effects=lambda j: effects.append(j.pk)) is True
        assert services.job_finish(job_id=job.pk, status="succeeded", effects=lambda j: effects.append(j.pk)) is False
    job.refresh_from_db()
    assert job.status == "failed" and job.holder == "" and job.error_code == "E_FAILED"
    assert effects == [job.pk] and CALLS.count(("finish", "failed")) == 1
    (event,) = drain()
    assert event["event"] == "status"
    assert set(event["payload"]) == {"job_id", "kind", "status", "phase", "progress", "error", "error_code",
                                     "cancel_requested", "target_id", "started_at", "finished_at", "echo"}
    with pytest.raises(ValueError):
        services.job_finish(job_id=job.pk, status="running")


def test_error_line_is_one_line_without_server_paths(settings):
    text = (f"RuntimeError: cannot open {settings.ARTIFACT_ROOT}/runs/run-3/x.bin and /home/hub/app/workers/x.py\n"
            f"Traceback (most recent call last):\n  File \"/srv/hub/workers/training.py\", line 3")
    line = services.error_line(text)
    assert "\n" not in line and "Traceback" not in line
    assert str(settings.ARTIFACT_ROOT) not in line and "/home/hub" not in line
    assert line.startswith("RuntimeError: cannot open <artifacts>/runs/run-3/x.bin and …/x.py")
    assert services.error_line("x" * 900) == "x" * 500
    assert services.error_line("Together API unreachable at http://127.0.0.1:8000/v1: timeout") == \
        "Together API unreachable at http://127.0.0.1:8000/v1: timeout"


def test_retry_sends_a_failed_job_again(member, make_user, django_capture_on_commit_callbacks):
    job = _job(member)
    services.job_claim(job_id=job.pk, holder="me:1")
    with pytest.raises(Conflict):
        services.job_retry(user=member, job_id=job.pk)  # still running
    services.job_finish(job_id=job.pk, status="failed", error="boom", error_code="E_BOOM")
    with pytest.raises(PermissionDenied):
        services.job_retry(user=make_user("other"), job_id=job.pk)
    dramatiq.get_broker().flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_retry(user=member, job_id=job.pk)
    assert (job.status, job.error, job.error_code, job.attempts, job.finished_at) == ("queued", "", "", 1, None)
    assert ("requeue", "retry") in CALLS and _sent() == [("test_jobs_echo", (member.pk,))]
    services.job_finish(job_id=job.pk, status="succeeded")
    with pytest.raises(Conflict):
        services.job_retry(user=member, job_id=job.pk)


# -- reconcile -------------------------------------------------------------------------------------
def test_dead_holder_is_requeued_then_failed_after_max_attempts(member, django_capture_on_commit_callbacks):
    job = _job(member)
    for attempt in (1, 2):
        Job.objects.filter(pk=job.pk).update(status="running", holder=_dead_holder(), heartbeat_at=timezone.now())
        dramatiq.get_broker().flush_all()
        with django_capture_on_commit_callbacks(execute=True):
            assert [(j.pk, a) for j, a in job_reconcile(kinds=["test.echo"])] == [(job.pk, "requeued")]
        job.refresh_from_db()
        assert (job.status, job.holder, job.attempts) == ("queued", "", attempt + 1)
        assert _sent() == [("test_jobs_echo", (member.pk,))]
    Job.objects.filter(pk=job.pk).update(status="running", holder=_dead_holder())
    assert [a for _, a in job_reconcile(kinds=["test.echo"])] == ["failed"]  # max_attempts = 3
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "E_WORKER_LOST" and "interrupted 3 times" in job.error


def test_dead_holder_policy_fail_and_cancel_requested(member):
    get_kind("test.echo").decision = (FAIL, "nothing to resume from")
    failing = _job(member)
    Job.objects.filter(pk=failing.pk).update(status="running", holder=_dead_holder())
    cancelling = _job(member)
    Job.objects.filter(pk=cancelling.pk).update(status="running", holder=_dead_holder(), cancel_requested=True)
    assert sorted((j.pk, a) for j, a in job_reconcile(kinds=["test.echo"])) == [
        (failing.pk, "failed"), (cancelling.pk, "cancelled")]
    assert Job.objects.get(pk=failing.pk).error == "nothing to resume from"


def test_live_and_fresh_holders_are_left_alone(member):
    live = _job(member)
    Job.objects.filter(pk=live.pk).update(status="running", holder=_live_holder(), heartbeat_at=timezone.now())
    remote_fresh = _job(member)
    Job.objects.filter(pk=remote_fresh.pk).update(status="running", holder="elsewhere:1", heartbeat_at=timezone.now())
    remote_stale = _job(member)
    Job.objects.filter(pk=remote_stale.pk).update(status="running", holder="elsewhere:2",
                                                  heartbeat_at=timezone.now() - timedelta(minutes=10))
    assert [(j.pk, a) for j, a in job_reconcile(kinds=["test.echo"])] == [(remote_stale.pk, "requeued")]


def test_lost_message_is_sent_again_when_the_queue_is_idle(member, django_capture_on_commit_callbacks):
    job = _job(member)
    old = timezone.now() - timedelta(minutes=5)
    Job.objects.filter(pk=job.pk).update(enqueued_at=old)
    busy = _job(member)
    Job.objects.filter(pk=busy.pk).update(status="running", holder=_live_holder(), heartbeat_at=timezone.now())
    assert job_reconcile(kinds=["test.echo"]) == []  # something runs on its queue: it is only waiting
    services.job_finish(job_id=busy.pk, status="succeeded")
    dramatiq.get_broker().flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        assert [(j.pk, a) for j, a in job_reconcile(kinds=["test.echo"])] == [(job.pk, "resent")]
    assert _sent() == [("test_jobs_echo", (member.pk,))]
    assert job_reconcile(kinds=["test.echo"]) == []  # just sent: not lost again until lost_after_s passes
    Job.objects.filter(pk=job.pk).update(enqueued_at=old)
    assert [a for _, a in job_reconcile(kinds=["test.echo"])] == ["resent"]
    Job.objects.filter(pk=job.pk).update(enqueued_at=old)
    assert [a for _, a in job_reconcile(kinds=["test.echo"])] == ["failed"]  # sent 3 times: bounded
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "E_NOT_STARTED" and "queue 'default'" in job.error


def test_stalled_remote_poll_is_sent_again(member, django_capture_on_commit_callbacks):
    job = _job(member)
    services.job_claim(job_id=job.pk, holder="me:1")
    services.job_release(job_id=job.pk, holder="me:1", next_poll_at=timezone.now() - timedelta(minutes=5))
    job.refresh_from_db()
    assert job.status == "running" and job.holder == ""
    dramatiq.get_broker().flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        assert [(j.pk, a) for j, a in job_reconcile(kinds=["test.echo"])] == [(job.pk, "resent")]
    assert _sent() == [("test_jobs_echo", (member.pk,))]
    assert job_reconcile(kinds=["test.echo"]) == []  # at most once per poll_stall_s
    services.job_release(job_id=job.pk, holder="", next_poll_at=timezone.now() + timedelta(seconds=30))
    assert job_reconcile(kinds=["test.echo"]) == []  # a poll that is due soon is not stalled


def test_two_reconcilers_never_act_twice(member):
    job = _job(member)
    Job.objects.filter(pk=job.pk).update(status="running", holder=_dead_holder())
    first = job_reconcile(kinds=["test.echo"])
    second = job_reconcile(kinds=["test.echo"])
    assert [a for _, a in first] == ["requeued"] and second == []
    assert Job.objects.get(pk=job.pk).attempts == 2
