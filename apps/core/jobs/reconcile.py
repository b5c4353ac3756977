"""Reconciliation: jobs that nobody will move forward by themselves, found and moved on.

Run at every worker boot (workers.periodic.JobReconciler) and every 30 s by the `scheduler` process
(dramatiq-crontab, workers.periodic.jobs_reconcile). It handles three cases:

1. Dead holders: an active job held by a process that died (same host: its pid is gone; another host:
   no heartbeat for kind.stale_after_s). A cancel that was asked is honoured (cancelled); otherwise the
   kind decides: requeue (resume from its checkpoint / start over; failed instead once it was sent
   kind.max_attempts times) or fail with the kind's message.
2. Lost messages: queued, never started, sent more than kind.lost_after_s ago while nothing runs on its
   queue: its message is sent again, failed once it was sent kind.max_attempts times.
3. Stalled remote polls: a step-wise remote job whose next poll is overdue by kind.poll_stall_s: its
   message is sent again (at most once per poll_stall_s).

Safe with several replicas at once: each job row is locked with select_for_update(skip_locked=True) and
re-checked before acting, so two reconcilers never act on the same job twice (on SQLite, which has no
row locks, writes are serialized and the re-check does the same).
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core import liveness
from apps.core.jobs.registry import CANCEL, FAIL, REQUEUE, get_kind, kinds as registered_kinds
from apps.core.jobs.services import _finish_locked, _send, job_requeue_locked
from apps.core.models import Job

log = logging.getLogger(__name__)


def _lock(job_id: int) -> Job | None:
    return Job.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()


def _dead_holder(job: Job, stale_after_s: float | None) -> str | None:
    kind = get_kind(job.kind)
    if job.cancel_requested:
        _finish_locked(job, Job.Status.CANCELLED, result={"worker_lost": True})
        return "cancelled"
    decision = kind.on_holder_dead(job)
    action, message = (decision, "") if isinstance(decision, str) else decision
    if action == REQUEUE and job.attempts >= kind.max_attempts:
        action, message = FAIL, kind.exhausted_message(job)
    if action == CANCEL:
        _finish_locked(job, Job.Status.CANCELLED, result={"worker_lost": True})
        return "cancelled"
    if action == FAIL:
        _finish_locked(job, Job.Status.FAILED, result={"worker_lost": True}, error=message,
                       error_code="E_WORKER_LOST")
        return "failed"
    job_requeue_locked(job, reason="worker_lost")
    return kind.requeued_label


def job_reconcile(*, kinds: tuple[str, ...] | list[str] | None = None, stale_after_s: float | None = None,
                  now=None) -> list[tuple[Job, str]]:
    """Reconcile active jobs (of `kinds`, default all). stale_after_s overrides every kind's heartbeat
    threshold (a command's --stale-after). Returns [(job, action)] for the jobs it acted on, action one
    of "requeued" (or the kind's word, e.g. "resumed"), "failed", "cancelled", "resent"."""
    now = now or timezone.now()
    me = liveness.worker_id()
    names = [k for k in (kinds or registered_kinds()) if k in registered_kinds()]
    actions: list[tuple[Job, str]] = []

    # 1. dead holders
    held = (Job.objects.filter(kind__in=names, status__in=Job.ACTIVE).exclude(holder="").exclude(holder=me)
            .only("pk", "kind", "holder", "heartbeat_at").order_by("pk"))
    for cand in held:
        stale = stale_after_s if stale_after_s is not None else get_kind(cand.kind).stale_after_s
        if not liveness.holder_dead(cand.holder, cand.heartbeat_at, stale_after_s=stale):
            continue
        with transaction.atomic():
            job = _lock(cand.pk)
            if job is None or job.status not in Job.ACTIVE or job.holder != cand.holder:
                continue  # another reconciler has it, it finished, or it was taken over meanwhile
            action = _dead_holder(job, stale_after_s)
            log.warning("%s left by dead worker %s: %s", job, cand.holder, action)
        actions.append((job, action))

    # 2. lost messages: queued, never started, while nothing runs on the job's queue
    busy = set(Job.objects.filter(status=Job.Status.RUNNING).exclude(holder="")
               .values_list("queue_name", flat=True).distinct())
    for name in names:
        kind = get_kind(name)
        if kind.lost_after_s is None or not kind.actor_name or kind.queue_name in busy:
            continue
        cutoff = now - timedelta(seconds=kind.lost_after_s)
        lost = (Job.objects.filter(kind=name, status=Job.Status.QUEUED, holder="")
                .filter(Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True, created_at__lt=cutoff))
                .values_list("pk", flat=True).order_by("pk"))
        for job_id in lost:
            with transaction.atomic():
                job = _lock(job_id)
                if job is None or job.status != Job.Status.QUEUED or job.holder or (
                        job.enqueued_at and job.enqueued_at >= cutoff):
                    continue
                if job.attempts >= kind.max_attempts:
                    _finish_locked(job, Job.Status.FAILED, result={}, error_code="E_NOT_STARTED", error=(
                        f"No worker started this job after it was sent {job.attempts} times "
                        f"({int(kind.lost_after_s // 60) or 1} min apart): check that a worker for queue "
                        f"'{kind.queue_name}' is running, then retry."))
                    action = "failed"
                else:
                    job.attempts += 1
                    job.enqueued_at = now
                    job.save(update_fields=["attempts", "enqueued_at", "updated_at"])
                    _send(job)
                    action = "resent"
                log.warning("%s queued but never started: %s", job, action)
            actions.append((job, action))

    # 3. stalled remote polls
    for name in names:
        kind = get_kind(name)
        if kind.poll_stall_s is None or not kind.actor_name:
            continue
        cutoff = now - timedelta(seconds=kind.poll_stall_s)
        stalled = (Job.objects.filter(kind=name, status__in=Job.ACTIVE, holder="", next_poll_at__lt=cutoff)
                   .values_list("pk", flat=True).order_by("pk"))
        for job_id in stalled:
            with transaction.atomic():
                job = _lock(job_id)
                if job is None or job.status not in Job.ACTIVE or job.holder or not job.next_poll_at \
                        or job.next_poll_at >= cutoff:
                    continue
                job.next_poll_at = now  # overdue again only after another poll_stall_s
                job.enqueued_at = now
                job.save(update_fields=["next_poll_at", "enqueued_at", "updated_at"])
                _send(job)
                log.warning("%s: its next poll was overdue; sent again", job)
            actions.append((job, "resent"))
    return actions
