"""The life of a Together.ai run: submit, poll, finish, cancel — one short step per message.

Every state change goes through the run's Job ("training.together", apps/training/jobs.py): each step
claims the job (so a duplicate message never submits twice), beats its heartbeat while it works, and
releases it with `next_poll_at`; the job reconciler (apps.core.jobs.reconcile, at worker boot and every
30 s) sends the message again when a poll is long overdue, so a lost message no longer stalls a run.

Contract: `together_run_step(run_id=)` advances one run by one step (export the train split + upload +
create the job, or one status poll that records new events as metric points) and returns the seconds
until the next step, or None when the run needs nothing more; whatever goes wrong, the run ends
succeeded/failed/cancelled with a one-line message and an error code. `together_run_fail` fails an
active run (the actor's time limit); `together_run_cancel` cancels (the run becomes `cancelled` once
Together confirms; `together_remote_cancel` is the remote call). Status events are broadcast by the job
lifecycle after commit.

The steps themselves: `submit` (export + upload + create), `poll` (one status check, finish),
`state` (the run's job, finish exactly once)."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.core.exceptions import Conflict, ValidationFailed
from apps.core.jobs import services as job_services
from apps.core.liveness import worker_id
from apps.core.realtime import broadcast_on_commit, run_group
from apps.training.backends.together.client import _NOT_CONFIGURED, TogetherClient, TogetherError
from apps.training.backends.together.poll import poll, poll_failed
from apps.training.backends.together.state import Status, fail, finish, job_of, save_fields
from apps.training.backends.together.submit import SubmitFailed, submit
from apps.training.models import TrainingRun

log = logging.getLogger(__name__)


def together_run_fail(*, run_id: int, error: str) -> bool:
    """Fail an active Together run with `error` (used by the actor when a step is interrupted)."""
    return finish(run_id, status=Status.FAILED, error=error, error_code="E_TOGETHER_STEP_TIMEOUT")


def together_run_step(*, run_id: int) -> float | None:
    """Advance one Together run by one step (submit, or one poll).

    Returns the seconds to wait before the next step, or None when the run needs nothing more."""
    run = TrainingRun.objects.select_related("dataset_version", "base_model").filter(pk=run_id).first()
    if run is None:
        log.warning("Together run %s does not exist; nothing to do", run_id)
        return None
    if run.backend != TrainingRun.Backend.TOGETHER:
        log.error("Run %s has backend %r, not together; the Together worker leaves it alone", run_id, run.backend)
        return None
    if run.status not in TrainingRun.ACTIVE:
        return None
    if not settings.TOGETHER_API_KEY:
        fail(run_id, _NOT_CONFIGURED, "E_TOGETHER_NOT_CONFIGURED")
        return None
    job_id, holder = job_of(run_id), worker_id()
    if job_services.job_claim(job_id=job_id, holder=holder) is None:
        return None  # finished, cancelled before it was submitted, or another live worker is stepping it
    delay: float | None = None
    try:
        with job_services.job_heartbeat_thread(job_id=job_id, holder=holder):
            delay = _step(TrainingRun.objects.select_related("dataset_version", "base_model").get(pk=run_id))
        return delay
    finally:  # let go between steps; the reconciler re-sends a poll that is long overdue
        due = timezone.now() + timedelta(seconds=delay) if delay is not None else None
        job_services.job_release(job_id=job_id, holder=holder, next_poll_at=due)


def _step(run: TrainingRun) -> float | None:
    run_id = run.pk
    if run.cancel_requested and not run.remote_job_id:
        finish(run_id, status=Status.CANCELLED)
        return None
    interval = float(settings.TOGETHER_POLL_INTERVAL_S)
    try:
        with TogetherClient() as client:
            if not run.remote_job_id:
                submit(run, client)
                return interval
            return poll(run, client, interval)
    except SubmitFailed as exc:
        fail(run_id, str(exc), "E_TOGETHER_SUBMIT")
    except ValidationFailed as exc:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors) or exc.message
        fail(run_id, f"Cannot run this on Together.ai: {detail}", "E_INVALID_HYPERPARAMETERS")
    except TogetherError as exc:
        return poll_failed(run_id, exc, interval)
    except Exception as exc:  # never leave a run in running because of a bug or an odd answer
        log.exception("Together run %s: unexpected error", run_id)
        fail(run_id, f"Unexpected error while talking to Together.ai: {type(exc).__name__}: {exc}", "E_INTERNAL")
    return None


def together_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Cancel a Together run (the platform's own call; users go through run_request_cancel). It becomes
    `cancelled` at once if nothing was submitted; otherwise Together is asked (the job kind's
    after_cancel_requested -> together_remote_cancel) and it becomes `cancelled` once Together confirms."""
    if run.status not in TrainingRun.ACTIVE:
        return run
    try:
        job_services.job_request_cancel(user=None, job_id=job_of(run.pk), as_system=True)
    except Conflict:
        pass  # it finished meanwhile
    run.refresh_from_db()
    return run


def together_remote_cancel(*, run_id: int) -> None:
    """Ask Together to cancel the run's remote job (after the cancel request committed). When Together
    says it is cancelled the run finishes at once; otherwise it keeps cancel_requested=True and the next
    poll finishes it (and re-sends the cancel if this request did not get through)."""
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None or run.status not in TrainingRun.ACTIVE or not run.remote_job_id:
        return
    try:
        with TogetherClient() as client:
            job = client.cancel_fine_tune(run.remote_job_id)
    except TogetherError as exc:
        log.warning("Run %s: cancel request to Together failed (%s); the next poll retries it", run.pk, exc.message)
        save_fields(run.pk, summary={**(run.summary or {}), "remote_last_error": f"Cancel not confirmed yet: "
                                                                                f"{exc.message}"})
        return
    remote_status = str(job.get("status") or "cancel_requested").lower()
    summary = {**(run.summary or {}), "remote_status": remote_status}
    if remote_status == "cancelled":
        finish(run.pk, status=Status.CANCELLED, summary=summary)
    else:
        save_fields(run.pk, summary=summary)
        broadcast_on_commit(run_group(run.pk), "progress", {"run_id": run.pk, "status": run.status,
                                                            "remote_status": remote_status})
