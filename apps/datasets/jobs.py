"""Job kinds of dataset versions (registered with apps.core.jobs):

- "dataset.import": parse + validate an upload into a new version, inline (small files, in the request)
  or on the `default` worker queue (workers.datasets.import_dataset_version). Idempotent: a re-run starts
  over from the raw upload, so a dead holder's import is queued again while that upload is on disk.
- "dataset.derive": a fix, an edit or a re-validation making a new version from a ready one, always
  inline; when its process dies nothing can resume it, so it is failed ("apply the change again").

The hooks keep the DatasetVersion (status importing -> ready | failed, error, progress) in step with its
Job; they run inside the lifecycle's transaction and write only the version and its examples.
"""
from __future__ import annotations

import time

from django.urls import reverse

from apps.core.jobs.registry import FAIL, REQUEUE, JobKind, register_kind
from apps.datasets.models import DatasetVersion

# An import whose holder (on another machine) has not shown life for this long is taken for dead.
IMPORT_STALE_S = 120
# An import interrupted this many times (the worker killed each time, e.g. out of memory) is failed.
IMPORT_MAX_REQUEUES = 3


def version_of(job) -> DatasetVersion | None:
    cached = job.__dict__.get("_version")
    if cached is None or cached.pk != job.target_id:
        cached = DatasetVersion.objects.select_related("dataset", "parent").filter(pk=job.target_id).first()
        job.__dict__["_version"] = cached
    return cached


class _VersionKind(JobKind):
    stale_after_s = float(IMPORT_STALE_S)

    def target(self, job):
        return version_of(job)

    def target_label(self, job) -> str:
        v = version_of(job)
        return f"{v.dataset.name} v{v.number}" if v is not None else f"version #{job.target_id}"

    def target_url(self, job) -> str | None:
        v = version_of(job)
        return f"{reverse('datasets:detail', args=[v.dataset_id])}?version={v.pk}" if v is not None else None

    def on_finish(self, job, status: str, result: dict) -> None:
        v = version_of(job)
        if v is None:
            return
        progress = dict(v.progress or {})
        if status == job.Status.SUCCEEDED:
            v.status, v.error = DatasetVersion.Status.READY, ""
            progress["stage"] = "done"
        else:
            from apps.datasets.services.versions import delete_examples

            delete_examples(v)  # never keep half-written examples
            v.status = DatasetVersion.Status.FAILED
            v.error = result.get("message") or job.error or "The import was cancelled."
            progress.update(stage="failed" if status == job.Status.FAILED else "cancelled", updated_at=time.time())
        v.progress = progress
        v.save(update_fields=["status", "error", "progress"])


@register_kind
class ImportKind(_VersionKind):
    kind = "dataset.import"
    label = "Dataset import"
    actor_name = "import_dataset_version"
    queue_name = "default"
    max_attempts = IMPORT_MAX_REQUEUES + 1
    phases = ("queued", "validating", "saving")

    def on_claim(self, job) -> None:
        job.phase = "validating"

    def on_holder_dead(self, job):
        from apps.datasets.services import version_source_path

        v = version_of(job)
        if v is None:
            return FAIL, "Its dataset version no longer exists."
        source = version_source_path(v)
        if source is None or not source.exists():
            return FAIL, (f"The import was interrupted (its worker {job.holder} stopped) and the raw upload "
                          f"{v.source_name or v.source_file or ''} is no longer on disk, so it cannot be retried. "
                          f"Upload the file again.")
        return REQUEUE

    def exhausted_message(self, job) -> str:
        return (f"The import was interrupted {job.attempts} times (its worker was killed each time, possibly "
                f"running out of memory), so it was not retried again. The raw upload is kept: split the file or "
                f"import it again.")

    def on_requeue(self, job, reason: str) -> None:
        v = version_of(job)
        if v is None:
            return
        from apps.datasets.services.versions import delete_examples

        delete_examples(v)  # the import starts over from the raw upload
        v.status, v.error = DatasetVersion.Status.IMPORTING, ""
        v.progress = {**(v.progress or {}), "stage": "queued", "examples": 0, "requeued": job.attempts - 1,
                      "updated_at": time.time()}
        v.save(update_fields=["status", "error", "progress"])

    def retry_problem(self, job) -> str | None:
        from apps.datasets.services import version_source_path

        problem = super().retry_problem(job)
        if problem:
            return problem
        v = version_of(job)
        source = version_source_path(v) if v is not None else None
        if source is None or not source.exists():
            return "The raw upload is no longer on disk; upload the file again."
        return None


@register_kind
class DeriveKind(_VersionKind):
    kind = "dataset.derive"
    label = "Dataset change (fix / edit)"
    actor_name = ""  # inline only
    lost_after_s = None
    phases = ("validating",)

    def on_claim(self, job) -> None:
        job.phase = "validating"

    def on_holder_dead(self, job):
        v = version_of(job)
        parent = v.parent.number if v is not None and v.parent is not None else "?"
        note = (v.note if v is not None else "") or "a change"
        return FAIL, (f"The process creating this version ({note}) stopped before it finished, so nothing was "
                      f"kept. Version {parent} is unchanged; apply the change again.")


# -- the link between a version and its job (used by apps.datasets.services) -------------------------
def version_job_id(version: DatasetVersion | int) -> int:
    """The id of the version's job, created (not sent) for a version that has none (rows made before jobs,
    or by hand): "dataset.derive" for a version made from another, else "dataset.import"."""
    from apps.core.jobs.services import job_id_for

    return job_id_for(DatasetVersion, version if isinstance(version, int) else version.pk, spec=lambda v: {
        "kind": "dataset.derive" if v.parent_id else "dataset.import", "owner": v.created_by,
        "args": [] if v.parent_id else [v.pk]})
