"""Job kind "review.result" (registered with apps.core.jobs): a review's decisions become a new dataset version
(Finish, or a snapshot of an open task; apps.review.services.results).

Its target is the DatasetVersion being made, so the dataset hooks keep that version in step (importing ->
ready | failed, examples deleted on failure: apps.datasets.jobs); the args are `[snapshot_id]`, the
ReviewSnapshot that links the version to its task. On finishing, the hook also moves the task: a final
snapshot's version ready -> the task is `finished` (its result version set, its leases ended); failed or
cancelled -> the task is `open` again. Small results are built inline in the web request; the rest on the
`default` queue (workers.review.review_result). Idempotent: a dead holder's build is queued again and starts
over. A person cannot retry one (the decisions may have changed since): Finish or Snapshot again instead.
Every event of the job also goes to the task's websocket group (`review-<task_id>`), with the task and
snapshot ids, so the task page shows the build's progress live.
"""
from __future__ import annotations

import time

from django.utils import timezone

from apps.core.jobs.registry import REQUEUE, register_kind
from apps.datasets.jobs import _VersionKind, version_of
from apps.datasets.models import DatasetVersion

CANCELLED = "It was cancelled before it was ready; nothing was kept."


def snapshot_of(job):
    from apps.review.models import ReviewSnapshot

    cached = job.__dict__.get("_review_snapshot")
    if cached is None or cached.version_id != job.target_id:
        cached = ReviewSnapshot.objects.filter(version_id=job.target_id).only(
            "pk", "task_id", "version_id", "final").first()
        job.__dict__["_review_snapshot"] = cached
    return cached


@register_kind
class ReviewResultKind(_VersionKind):
    kind = "review.result"
    label = "Review → dataset version"
    actor_name = "review_result"
    queue_name = "default"
    max_attempts = 4
    phases = ("queued", "validating")

    def on_claim(self, job) -> None:
        job.phase = "validating"

    def groups(self, job) -> list[str]:
        from apps.review.realtime import review_group

        snap = snapshot_of(job)
        return [review_group(snap.task_id)] if snap is not None else []

    def payload(self, job) -> dict:
        snap = snapshot_of(job)
        if snap is None:
            return {"task_id": None, "snapshot_id": None, "final": None, "dataset_version_id": job.target_id}
        return {"task_id": snap.task_id, "snapshot_id": snap.pk, "final": snap.final,
                "dataset_version_id": job.target_id}

    def on_finish(self, job, status: str, result: dict) -> None:
        from apps.review.models import ReviewResponse, ReviewTask

        if status == job.Status.CANCELLED and not result.get("message"):
            result = {**result, "message": CANCELLED}
        super().on_finish(job, status, result)  # the version: ready, or failed without its examples
        snap = snapshot_of(job)
        if snap is None or not snap.final:
            return
        tasks = ReviewTask.objects.filter(pk=snap.task_id, status=ReviewTask.Status.FINISHING)
        if status == job.Status.SUCCEEDED:
            if tasks.update(status=ReviewTask.Status.FINISHED, result_version_id=job.target_id,
                            finished_at=timezone.now()):
                # leases end with the task
                ReviewResponse.objects.filter(task_id=snap.task_id, status=ReviewResponse.Status.LEASED).update(
                    lease_expires_at=None)
        else:
            tasks.update(status=ReviewTask.Status.OPEN, finishing_since=None)

    def on_holder_dead(self, job):
        return REQUEUE

    def on_requeue(self, job, reason: str) -> None:
        v = version_of(job)
        if v is None:
            return
        from apps.datasets.services.versions import delete_examples

        delete_examples(v)  # it starts over from the decisions
        v.status, v.error = DatasetVersion.Status.IMPORTING, ""
        v.progress = {**(v.progress or {}), "examples": 0, "updated_at": time.time()}
        v.save(update_fields=["status", "error", "progress"])

    def retry_problem(self, job) -> str | None:
        problem = super().retry_problem(job)
        if problem:
            return problem
        return ("The decisions may have changed since: make the version again from the review task's page "
                "(Finish or Snapshot).")
