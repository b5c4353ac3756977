"""The one lifecycle of every background job: create (+ send its message after commit), claim, heartbeat,
progress, phase, cooperative cancel, finish exactly once, retry. Reconciliation is in `reconcile.py`.

    queued --claim--> running --finish--> succeeded | failed | cancelled
       ^                 |  (dead holder, lost message: reconcile; retry: a person)
       +-----------------+

Every state change locks the Job row (select_for_update), calls the kind's hook (apps.core.jobs.registry)
so the domain row changes in the same transaction, and broadcasts ONE payload shape (`job_event`) after
commit, as event "status" (state changes) or "job_progress" (progress), to the job's group, the "jobs"
group and the kind's groups. Messages are sent by actor name after commit (apps.core.jobs.enqueue).

Permissions: anyone signed in may read jobs; only the owner or a hub admin may cancel or retry one.
"""
from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Callable

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from apps.core import liveness
from apps.core.exceptions import Conflict, NotFound, PermissionDenied
from apps.core.jobs import enqueue as enqueue_module
from apps.core.jobs.registry import get_kind
from apps.core.models import Job
from apps.core.realtime import JOBS_GROUP, broadcast_on_commit, job_group

log = logging.getLogger(__name__)

Status = Job.Status
PROGRESS_EVERY_S = 1.0  # at most one progress write + broadcast per job per second, per process
_last_progress: dict[int, float] = {}
# other absolute server paths in a message keep only their last part
_SERVER_PATH = re.compile(r"(?<![\w:/.])/(?:home|usr|opt|srv|var|tmp|root|work|app|mnt|data|etc|private)(?:/[^\s'\",:;()]+)+")


# -- helpers ---------------------------------------------------------------------------------------
def can_change(user, job: Job) -> bool:
    return bool(user and user.is_authenticated and (job.owner_id == user.pk or getattr(user, "is_hub_admin", False)))


def error_line(text: Any) -> str:
    """One line fit for a user: the first non-empty line, server paths shortened, at most 500 chars
    (tracebacks go to the logs, never here)."""
    text = str(text or "")
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    roots = [(str(settings.ARTIFACT_ROOT), "<artifacts>"), (str(getattr(settings, "BASE_DIR", "") or ""), "<app>"),
             (sys.prefix, "<python>")]
    for root, label in sorted(roots, key=lambda r: -len(r[0])):
        if root and len(root) > 1:
            line = line.replace(root.rstrip("/"), label)
    line = _SERVER_PATH.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], line)
    return line[:500]


def job_event(job: Job) -> dict:
    """The payload of every job event (one shape; a kind adds its own keys through `payload`)."""
    payload = {
        "job_id": job.pk, "kind": job.kind, "status": job.status, "phase": job.phase,
        "progress": job.progress or {}, "error": job.error, "error_code": job.error_code,
        "cancel_requested": job.cancel_requested, "target_id": job.target_id,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
    payload.update(get_kind(job.kind).payload(job))
    return payload


# in-process observers of every job event, fn(event, payload): the management commands' progress bars
# (apps/core/cli_progress.py) follow jobs that run inline in their own process
EVENT_OBSERVERS: list = []


def _broadcast(job: Job, event: str = "status") -> None:
    payload = job_event(job)
    for observe in list(EVENT_OBSERVERS):
        try:
            observe(event, payload)
        except Exception:  # a progress display must never fail the job
            log.exception("job event observer failed")
    for group in [job_group(job.pk), JOBS_GROUP, *get_kind(job.kind).groups(job)]:
        broadcast_on_commit(group, event, payload)


def _send(job: Job, *, delay_s: float | None = None) -> None:
    """Send the job's message by actor name once the transaction commits."""
    if not job.actor_name:
        return
    enqueue_module.enqueue(job.actor_name, *job.args, queue_name=job.queue_name or None,
                           delay_ms=int(delay_s * 1000) if delay_s else None)


def _locked(job_id: int) -> Job | None:
    return Job.objects.select_for_update().filter(pk=job_id).first()


# -- create / claim --------------------------------------------------------------------------------
def job_create(*, kind: str, owner=None, target=None, args: list | None = None, phase: str = "queued",
               progress: dict | None = None, send: bool = True) -> Job:
    """A queued job of a registered kind for `target` (a saved model instance). With send=True its
    message (kind.actor_name(*args)) goes out after commit; send=False for work done inline."""
    spec = get_kind(kind)
    job = Job.objects.create(
        kind=kind, owner=owner if owner is not None and getattr(owner, "pk", None) else None, phase=phase,
        progress=progress or {}, actor_name=spec.actor_name, queue_name=spec.queue_name, args=list(args or []),
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=target.pk if target is not None else None,
        enqueued_at=timezone.now() if send and spec.actor_name else None)
    if send:
        _send(job)
    _broadcast(job)
    return job


def job_id_for(model, pk: int, *, spec: Callable[[Any], dict]) -> int:
    """The id of the job a `model` row links to through its `job` field. A row with none (made before jobs,
    or by hand) gets one, created here and not sent: `spec(row)` gives job_create's kind, owner and args."""
    job_id = model.objects.filter(pk=pk).values_list("job_id", flat=True).first()
    if job_id:
        return job_id
    with transaction.atomic():
        locked = model.objects.select_for_update().get(pk=pk)
        if locked.job_id is None:
            locked.job = job_create(target=locked, send=False, **spec(locked))
            locked.save(update_fields=["job"])
        return locked.job_id


def job_send(*, job_id: int) -> None:
    """Send a queued job's message after commit (a job created with send=False that turns out to need a
    worker, e.g. an import too big to parse inline)."""
    with transaction.atomic():
        job = _locked(job_id)
        if job is None or job.status != Status.QUEUED or not job.actor_name:
            return
        job.enqueued_at = timezone.now()
        job.save(update_fields=["enqueued_at", "updated_at"])
        _send(job)


def job_claim(*, job_id: int, holder: str | None = None) -> Job | None:
    """Take a job for this process (idempotent). None when there is nothing to do: it is finished, a
    cancel was asked before it started (it is finished cancelled here), or a live process holds it
    (a re-delivered message is harmless). A job whose holder died is taken over."""
    holder = holder or liveness.worker_id()
    with transaction.atomic():
        job = _locked(job_id)
        if job is None or job.status in Job.FINISHED:
            return None
        kind = get_kind(job.kind)
        if job.holder and job.holder != holder and not liveness.holder_dead(
                job.holder, job.heartbeat_at, stale_after_s=kind.stale_after_s):
            return None
        if job.cancel_requested and (job.status == Status.QUEUED or job.holder not in ("", holder)):
            _finish_locked(job, Status.CANCELLED, result={})  # nothing is left to stop
            return None
        job.status = Status.RUNNING
        job.holder = holder
        job.heartbeat_at = timezone.now()
        job.started_at = job.started_at or timezone.now()
        job.error, job.error_code = "", ""
        kind.on_claim(job)
        job.save()
        _broadcast(job)
    return job


def job_release(*, job_id: int, holder: str | None = None, next_poll_at=None) -> None:
    """A step-wise (remote) job lets go between steps: it stays running, nobody holds it, and its next
    step is due at `next_poll_at` (the reconciler sends it again when that is long overdue)."""
    Job.objects.filter(pk=job_id, holder=holder or liveness.worker_id(), status__in=Job.ACTIVE).update(
        holder="", next_poll_at=next_poll_at, heartbeat_at=timezone.now())


def job_heartbeat(*, job_id: int, holder: str | None = None) -> bool:
    """The holder is alive (from its heartbeat thread). False when it no longer holds the job."""
    return bool(Job.objects.filter(pk=job_id, holder=holder or liveness.worker_id(), status__in=Job.ACTIVE)
                .update(heartbeat_at=timezone.now()))


def job_heartbeat_thread(*, job_id: int, holder: str | None = None, every_s: float = 30.0) -> liveness.Heartbeat:
    """A context manager that beats for `job_id` from a thread while the work runs."""
    holder = holder or liveness.worker_id()
    return liveness.Heartbeat(lambda: job_heartbeat(job_id=job_id, holder=holder), every_s=every_s,
                              name=f"heartbeat-job-{job_id}")


# -- progress / phase / cancel ---------------------------------------------------------------------
def job_progress(*, job_id: int, current: float | None = None, total: float | None = None, unit: str | None = None,
                 message: str | None = None, force: bool = False) -> bool:
    """Record how far the job got (and that it is alive). Throttled to one write and one broadcast per
    PROGRESS_EVERY_S per job (force=True: now). Returns whether it wrote."""
    now = time.monotonic()
    if not force and now - _last_progress.get(job_id, -1e9) < PROGRESS_EVERY_S:
        return False
    _last_progress[job_id] = now
    with transaction.atomic():
        job = _locked(job_id)
        if job is None or job.status in Job.FINISHED:
            return False
        progress = dict(job.progress or {})
        for key, value in (("current", current), ("total", total), ("unit", unit), ("message", message)):
            if value is not None:
                progress[key] = value
        job.progress = progress
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["progress", "heartbeat_at", "updated_at"])
        _broadcast(job, "job_progress")
    return True


def job_set_phase(*, job_id: int, phase: str) -> Job | None:
    """The job entered `phase` (free per kind). A no-op for the same phase or a finished job."""
    with transaction.atomic():
        job = _locked(job_id)
        if job is None or job.status in Job.FINISHED or job.phase == phase:
            return job
        job.phase = phase
        job.heartbeat_at = timezone.now() if job.holder else job.heartbeat_at
        get_kind(job.kind).on_phase(job, phase)
        job.save()
        _broadcast(job)
    return job


def job_should_stop(*, job_id: int) -> bool:
    """Cooperative cancel, polled by the worker in every phase: a cancel was asked, or the job was
    finished meanwhile (e.g. failed by the reconciler)."""
    row = Job.objects.filter(pk=job_id).values_list("cancel_requested", "status").first()
    return row is None or bool(row[0]) or row[1] in Job.FINISHED


def job_stop_checker(*, job_id: int, every_s: float = 0.5) -> Callable[[], bool]:
    """`job_should_stop` for a loop that asks per item: the database is asked at most every `every_s` seconds,
    and a stop, once seen, stays seen."""
    state = {"at": None, "stop": False}

    def should_stop() -> bool:
        if not state["stop"]:
            now = time.monotonic()
            if state["at"] is None or now - state["at"] >= every_s:
                state["at"] = now
                state["stop"] = job_should_stop(job_id=job_id)
        return state["stop"]

    return should_stop


def job_request_cancel(*, user, job_id: int, as_system: bool = False) -> Job:
    """Ask a job to stop, in any phase. A job nothing works on yet is cancelled at once; otherwise its
    worker sees job_should_stop() and finishes it cancelled. Then the kind's after_cancel_requested
    runs outside the transaction (e.g. asking a remote service to stop). as_system: no permission check
    (the platform itself cancels)."""
    with transaction.atomic():
        job = _locked(job_id)
        if job is None:
            raise NotFound(f"Job {job_id} does not exist.")
        if not as_system and not can_change(user, job):
            raise PermissionDenied("Only the job's owner or an admin can cancel it.")
        if job.status in Job.FINISHED:
            raise Conflict(f"Job {job_id} is already {job.status}.")
        job.cancel_requested = True
        kind = get_kind(job.kind)
        if kind.on_cancel_requested(job):
            _finish_locked(job, Status.CANCELLED, result={})
        else:
            job.save(update_fields=["cancel_requested", "updated_at"])
            _broadcast(job)
    if job.status not in Job.FINISHED:
        kind.after_cancel_requested(job)
        job.refresh_from_db()
    return job


# -- finish / retry --------------------------------------------------------------------------------
def _finish_locked(job: Job, status: str, *, result: dict, error: str = "", error_code: str = "") -> None:
    job.status = status
    job.finished_at = timezone.now()
    job.holder = ""
    job.next_poll_at = None
    job.error = error_line(error) if status != Status.SUCCEEDED else ""
    job.error_code = (error_code or "E_FAILED") if status == Status.FAILED else ""
    if status == Status.SUCCEEDED and (job.progress or {}).get("total"):
        job.progress = {**job.progress, "current": job.progress["total"]}  # the last write may have been throttled
    get_kind(job.kind).on_finish(job, status, result)
    job.save()
    _broadcast(job)


def job_finish(*, job_id: int, status: str, error: str = "", error_code: str = "", result: dict | None = None,
               effects: Callable[[Job], dict | None] | None = None) -> bool:
    """Finish an active job exactly once: succeeded, failed (error: one line for the user; error_code:
    E_...) or cancelled. `effects(job)` runs first, in the same transaction, only when this call finishes
    it (e.g. registering a model version); what it returns is merged into `result` for the kind's
    on_finish hook. A second call, or a call for a finished job, is a no-op and returns False."""
    if status not in Job.FINISHED:
        raise ValueError(f"{status!r} is not a final status")
    with transaction.atomic():
        job = _locked(job_id)
        if job is None or job.status in Job.FINISHED:
            return False
        result = dict(result or {})
        if effects is not None:
            result.update(effects(job) or {})
        _finish_locked(job, status, result=result, error=error, error_code=error_code)
    _last_progress.pop(job_id, None)
    return True


def job_requeue_locked(job: Job, *, reason: str) -> None:
    """Back to the queue and send again (reason "worker_lost": the reconciler; "retry": a person). The
    row must be locked."""
    job.status = Status.QUEUED
    job.phase = "queued"
    job.holder = ""
    job.heartbeat_at = None
    job.next_poll_at = None
    job.enqueued_at = timezone.now()
    job.attempts += 1
    get_kind(job.kind).on_requeue(job, reason)
    job.save()
    _send(job)
    _broadcast(job)


def job_retry(*, user, job_id: int) -> Job:
    """Run a failed or cancelled job again (same job, same target; its kind resets the domain row)."""
    with transaction.atomic():
        job = _locked(job_id)
        if job is None:
            raise NotFound(f"Job {job_id} does not exist.")
        if not can_change(user, job):
            raise PermissionDenied("Only the job's owner or an admin can retry it.")
        if job.status not in Job.FINISHED:
            raise Conflict(f"Job {job_id} is still {job.status}; cancel it first.")
        problem = get_kind(job.kind).retry_problem(job)
        if problem:
            raise Conflict(problem)
        job.cancel_requested = False
        job.error, job.error_code = "", ""
        job.finished_at = None
        job.started_at = None
        job.progress = {}
        job.attempts = 0  # a person's retry starts the count again (job_requeue_locked adds the first)
        job_requeue_locked(job, reason="retry")
    return job
