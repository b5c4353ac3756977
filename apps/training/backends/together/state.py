"""What every step of a Together.ai run shares: the run's hub Job, the phase a remote status means, and
ending the run exactly once.

Contract: `job_of(run_id)` is the id of the run's Job ("training.together"); `finish(run_id, status=...)`
ends that job through the job lifecycle (apps.core.jobs.services.job_finish: exactly once, a no-op if it
already finished; `effects` run in its transaction; keyword fields such as current_step / total_steps /
remote_job_id and `summary` reach the run through the kind's on_finish hook) and returns whether this
call finished it; `fail(run_id, message, code)` logs and finishes failed; `save_fields(run_id, **fields)`
updates the run row; PHASE maps Together's job status to the run's phase."""
from __future__ import annotations

import logging

from apps.core.jobs import services as job_services
from apps.training.models import TrainingRun

log = logging.getLogger(__name__)

Status = TrainingRun.Status
# Together's job status -> the run's phase (its job is running from its first step on)
PHASE = {"pending": "queued", "queued": "queued", "running": "training", "compressing": "saving",
         "uploading": "saving", "cancel_requested": "training"}


def save_fields(run_id: int, **fields) -> None:
    TrainingRun.objects.filter(pk=run_id).update(**fields)


def job_of(run_id: int) -> int:
    from apps.training.services.lifecycle import run_job_id

    return run_job_id(run_id)


def finish(run_id: int, *, status: str, error: str = "", error_code: str = "E_TOGETHER_FAILED",
           summary: dict | None = None, effects=None, **fields) -> bool:
    """End the run's job (exactly once; a no-op if it already finished). True if this call finished it."""
    summary = fields.pop("summary", None) or summary
    return job_services.job_finish(job_id=job_of(run_id), status=status, error=error, error_code=error_code,
                                   result={"summary": summary or {}, "fields": fields}, effects=effects)


def fail(run_id: int, message: str, error_code: str = "E_TOGETHER_FAILED") -> None:
    log.warning("Together run %s failed: %s", run_id, message)
    finish(run_id, status=Status.FAILED, error=message, error_code=error_code)
