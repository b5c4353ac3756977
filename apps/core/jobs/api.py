"""/api/jobs: every background job (imports, local and remote runs, every later kind): list with
filters, one job, cancel, retry. Parses input, calls a selector or a service, renders; permissions
(owner or admin for cancel and retry) are checked in the services."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from ninja import Field, Router, Schema
from pydantic import Field as Bound

from apps.core.inputs import Id, Text
from apps.core.jobs import selectors, services
from apps.core.schemas import responses

router = Router(tags=["jobs"])


class JobTargetOut(Schema):
    type: Optional[str] = None
    id: Optional[int] = None
    label: str
    url: Optional[str] = None


class JobOut(Schema):
    id: int
    kind: str = Field(description="a registered kind: dataset.import, dataset.derive, training.local, "
                                  "training.together, ...")
    kind_label: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    phase: str = Field(description="free per kind; runs: queued, loading, training, evaluating, saving, "
                                   "registering; imports: queued, parsing, validating, saving")
    progress: dict[str, Any] = Field(description="{current, total, unit, message}")
    percent: Optional[float] = None
    owner: Optional[str] = None
    target: JobTargetOut
    holder: str = Field(description="the process working on it, host:pid (empty when none)")
    heartbeat_at: Optional[str] = None
    attempts: int
    cancel_requested: bool
    error: str = Field(description="one line, fit to show a user")
    error_code: str = Field(description="E_... code of a failure")
    created_at: str
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    next_poll_at: Optional[str] = None
    next_poll_in_s: Optional[float] = Field(None, description="remote jobs: seconds until the next status poll")
    age_s: Optional[float] = None
    elapsed_s: Optional[float] = Field(None, description="running time so far, or the duration once finished")
    can_cancel: bool
    can_retry: bool


@router.get("/jobs", response=responses({200: list[JobOut]}))
def job_list(request, kind: Optional[Text] = None, status: Optional[Text] = None,
             limit: Annotated[int, Bound(ge=1, le=500)] = 100):
    """Newest first. kind: a kind or its prefix (`training`); status: comma-separated, or `active`/`finished`."""
    jobs = selectors.job_list(user=request.auth, kind=kind, status=status)[:limit]
    return [selectors.job_as_dict(j, user=request.auth) for j in jobs]


@router.get("/jobs/{job_id}", response=responses({200: JobOut}, 404))
def job_detail(request, job_id: Id):
    return selectors.job_as_dict(selectors.job_get(user=request.auth, job_id=job_id), user=request.auth)


@router.post("/jobs/{job_id}/cancel", response=responses({200: JobOut}, 404, 409, write=True))
def job_cancel(request, job_id: Id):
    """Ask the job to stop (in any phase); a job nothing works on yet is cancelled at once."""
    job = services.job_request_cancel(user=request.auth, job_id=job_id)
    return selectors.job_as_dict(job, user=request.auth)


@router.post("/jobs/{job_id}/retry", response=responses({200: JobOut}, 404, 409, write=True))
def job_retry(request, job_id: Id):
    """Run a failed or cancelled job again."""
    job = services.job_retry(user=request.auth, job_id=job_id)
    return selectors.job_as_dict(job, user=request.auth)
