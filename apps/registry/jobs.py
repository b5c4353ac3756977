"""Job kinds of the registry (registered with apps.core.jobs): "registry.export" — write one export of a model
version and check it against the version (apps/registry/exports/run.py), on the `gpu` queue (it loads models, like
training) by workers.exports.export_model_version.

The hooks keep the Export row (the domain row: status, path, size, checks, timings, llama.cpp version, error,
finished_at) in step with its Job; they run inside the lifecycle's transaction and write only that row. A finished
job's `result` carries `export_status` (succeeded | degraded: the checks passed or not), `path`, `size_bytes`,
`checks`, `timings`, `llama_cpp_version`, and for a failure `error_detail` (the full message with the tool's last
lines; the job's own error is one line). Idempotent: an export whose worker died is queued again and starts over;
a failed or cancelled one can be retried from the Jobs page.
"""
from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from apps.core.jobs.registry import REQUEUE, JobKind, register_kind
from apps.registry.models import Export

EXPORT_PHASES = ("queued", "preparing", "building llama.cpp", "copying", "merging", "converting", "quantizing",
                 "checking", "finishing")


def export_of(job) -> Export | None:
    cached = job.__dict__.get("_export")
    if cached is None or cached.pk != job.target_id:
        cached = Export.objects.select_related("model_version").filter(pk=job.target_id).first()
        job.__dict__["_export"] = cached
    return cached


@register_kind
class ExportKind(JobKind):
    kind = "registry.export"
    label = "Model export"
    actor_name = "export_model_version"
    queue_name = "gpu"
    stale_after_s = 180.0
    lost_after_s = 600.0  # only counted while nothing runs on the gpu queue
    max_attempts = 3
    phases = EXPORT_PHASES

    def target(self, job):
        return export_of(job)

    def target_label(self, job) -> str:
        export = export_of(job)
        return f"export #{job.target_id}" + (f" {export}" if export is not None else "")

    def target_url(self, job) -> str | None:
        return reverse("registry:export", args=[job.target_id]) if job.target_id else None

    def payload(self, job) -> dict:
        export = export_of(job)
        return {"export_id": job.target_id, "export_status": export.status if export is not None else None,
                "model_version_id": export.model_version_id if export is not None else None}

    def on_claim(self, job) -> None:
        job.phase = "preparing"
        Export.objects.filter(pk=job.target_id).update(status=Export.Status.RUNNING, error="")

    def on_finish(self, job, status: str, result: dict) -> None:
        fields = {"finished_at": timezone.now()}
        if status == job.Status.SUCCEEDED:
            fields.update(status=result.get("export_status") or Export.Status.SUCCEEDED, error="",
                          path=result.get("path") or "", size_bytes=result.get("size_bytes"),
                          checks=result.get("checks") or {}, timings=result.get("timings") or {})
        else:
            fields.update(status=status, path="", size_bytes=None,
                          error=(result.get("error_detail") or job.error) if status == job.Status.FAILED else "")
        if result.get("llama_cpp_version"):
            fields["llama_cpp_version"] = str(result["llama_cpp_version"])[:64]
        Export.objects.filter(pk=job.target_id).update(**fields)

    def on_holder_dead(self, job):
        return REQUEUE  # it starts over

    def on_requeue(self, job, reason: str) -> None:
        Export.objects.filter(pk=job.target_id).update(
            status=Export.Status.QUEUED, error="", path="", size_bytes=None, checks={}, timings={}, finished_at=None)

    def retry_problem(self, job) -> str | None:
        problem = super().retry_problem(job)
        if problem:
            return problem
        if export_of(job) is None:
            return "Its export was deleted."
        return None

from apps.registry.bundles import kind  # noqa: E402,F401  (job kind "registry.bundle": deploy bundles)
from apps.registry.exports import llamacpp_job  # noqa: E402,F401  ("llamacpp.build": compile llama.cpp on the default queue)
