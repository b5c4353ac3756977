"""`hub.jobs`: every background job of the hub (imports, runs, exports, analyses, generations) and waiting on one
with a progress bar."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub_sdk.errors import JobFailed
from hub_sdk.progress import Poller, Tracker
from hub_sdk.types import Job

if TYPE_CHECKING:
    from hub_sdk.client import Hub

FINISHED = ("succeeded", "failed", "cancelled")


class Jobs:
    def __init__(self, hub: "Hub"):
        self._hub = hub

    def get(self, job_id: int) -> Job:
        return self._hub.request("GET", f"/api/jobs/{job_id}")

    def list(self, *, kind: str | None = None, status: str | None = None, limit: int = 100) -> list[Job]:
        return self._hub.request("GET", "/api/jobs", params={"kind": kind, "status": status, "limit": limit})

    def cancel(self, job_id: int) -> Job:
        return self._hub.request("POST", f"/api/jobs/{job_id}/cancel")

    def wait(self, job_id: int, *, progress: bool = False, description: str | None = None, interval: float = 1.0,
             timeout: float | None = None, raise_on_failure: bool = True) -> Job:
        """Poll the job until it finishes; with `progress`, a bar of its {current, total, unit, message}."""
        poller = Poller(f"Job {job_id}", interval=interval, timeout=timeout)
        job = self.get(job_id)
        with Tracker(description or job.get("kind_label") or job["kind"], kind="count", enabled=progress) as bar:
            while True:
                show_job(bar, job, description)
                if job["status"] in FINISHED:
                    break
                poller.sleep()
                job = self.get(job_id)
        if raise_on_failure:
            raise_if_failed(job, f"{job.get('kind_label') or job['kind']} (job {job_id})")
        return job


def show_job(bar: Tracker, job: dict[str, Any], description: str | None = None) -> None:
    p = job.get("progress") or {}
    phase = job.get("status") if job.get("status") in FINISHED else (job.get("phase") or job.get("status"))
    label = f"{description or ''} {phase}".strip() if phase else description
    bar.update(completed=p.get("current") or 0, total=p.get("total") or None, description=label,
               message=p.get("message") or (p.get("unit") or ""))


def raise_if_failed(state: dict[str, Any], what: str) -> None:
    status = state.get("status")
    if status in ("failed", "cancelled"):
        error = state.get("error") or ""
        raise JobFailed(f"{what} {status}" + (f": {error}" if error else "."), code=state.get("error_code") or status,
                        body=state)
