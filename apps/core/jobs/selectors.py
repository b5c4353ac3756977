"""Reads of jobs, shared by /api/jobs and the Jobs page: list with filters, one job, and its dict form.

Visibility: every signed-in user reads every job (a team hub, like runs and datasets); `can_cancel` and
`can_retry` tell whether this user may act on it (owner or admin; checked again in services)."""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from apps.core.exceptions import NotFound, ValidationFailed
from apps.core.jobs.registry import get_kind, kinds
from apps.core.jobs.services import can_change
from apps.core.models import Job

_STATUSES = {s for s, _ in Job.Status.choices}


def job_list(*, user, kind: str | None = None, status: str | None = None) -> QuerySet[Job]:
    """Newest first. kind: a registered kind or a prefix ("training"); status: comma-separated statuses,
    or "active" (queued, running) / "finished"."""
    qs = Job.objects.select_related("owner", "target_type")
    if kind:
        known = kinds()
        if kind in known:
            qs = qs.filter(kind=kind)
        elif any(k.startswith(kind + ".") for k in known):
            qs = qs.filter(kind__startswith=kind + ".")
        else:
            raise ValidationFailed(f"Unknown job kind {kind!r} (choose {', '.join(sorted(known))}).", field="kind")
    if status:
        wanted: set[str] = set()
        for part in (p.strip() for p in status.split(",") if p.strip()):
            if part == "active":
                wanted |= set(Job.ACTIVE)
            elif part == "finished":
                wanted |= set(Job.FINISHED)
            elif part in _STATUSES:
                wanted.add(part)
            else:
                raise ValidationFailed(f"Unknown status {part!r} (choose {', '.join(sorted(_STATUSES))}, active "
                                       f"or finished).", field="status")
        qs = qs.filter(status__in=wanted)
    return qs


def job_get(*, user, job_id: int) -> Job:
    job = Job.objects.select_related("owner", "target_type").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    return job


def _seconds(start, end) -> float | None:
    if start is None:
        return None
    return max(0.0, round(((end or timezone.now()) - start).total_seconds(), 1))


def job_as_dict(job: Job, *, user=None) -> dict:
    kind = get_kind(job.kind)
    mine = can_change(user, job) if user is not None else False
    progress = job.progress or {}
    total = progress.get("total")
    return {
        "id": job.pk,
        "kind": job.kind,
        "kind_label": kind.label or job.kind,
        "status": job.status,
        "phase": job.phase,
        "progress": progress,
        "percent": (round(100.0 * float(progress.get("current") or 0) / float(total), 1)
                    if isinstance(total, (int, float)) and total else None),
        "owner": job.owner.username if job.owner_id else None,
        "target": {"type": job.target_type.model if job.target_type_id else None, "id": job.target_id,
                   "label": kind.target_label(job), "url": kind.target_url(job)},
        "holder": job.holder,
        "heartbeat_at": job.heartbeat_at.isoformat() if job.heartbeat_at else None,
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "error": job.error,
        "error_code": job.error_code,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "next_poll_at": job.next_poll_at.isoformat() if job.next_poll_at else None,
        "next_poll_in_s": (max(0.0, round((job.next_poll_at - timezone.now()).total_seconds(), 1))
                           if job.next_poll_at and job.is_active else None),
        "age_s": _seconds(job.created_at, None),
        "elapsed_s": _seconds(job.started_at, job.finished_at),
        "can_cancel": mine and job.is_active,
        "can_retry": mine and not job.is_active and kind.retry_problem(job) is None,
    }
