"""Job kind "registry.bundle" (registered with apps.core.jobs; imported by apps/registry/jobs.py): build one deploy
bundle's zip on the `default` queue (workers.bundles.registry_bundle -> services.bundle_build).

Its target is the Bundle; the args are `[bundle_id]`. The hooks keep the Bundle in step with the job, inside the
lifecycle's transaction: claimed -> running; finished -> succeeded (with the zip's `path` and `size_bytes` from the
result), failed (the job's one-line error) or cancelled. Idempotent: a build whose worker died is queued again and
starts over (the zip is written to a temporary file and renamed, so nothing half-written is ever visible, and the
next build clears what a dead one left). A failed or cancelled bundle can be retried from the Jobs page.
"""
from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from apps.core.jobs.registry import REQUEUE, JobKind, register_kind
from apps.registry.models import Bundle

KIND = "registry.bundle"
ACTOR = "registry_bundle"


def _bundle(job) -> Bundle | None:
    cached = job.__dict__.get("_registry_bundle")
    if cached is None or cached.pk != job.target_id:
        cached = Bundle.objects.select_related("export__model_version").filter(pk=job.target_id).first()
        job.__dict__["_registry_bundle"] = cached
    return cached


@register_kind
class BundleKind(JobKind):
    kind = KIND
    label = "Deploy bundle"
    actor_name = ACTOR
    queue_name = "default"
    stale_after_s = 180.0
    max_attempts = 3
    phases = ("queued", "collecting", "writing")

    def target(self, job):
        return _bundle(job)

    def target_label(self, job) -> str:
        b = _bundle(job)
        return f"bundle {b.pk} of {b.export}" if b is not None else f"bundle {job.target_id}"

    def target_url(self, job) -> str | None:
        b = _bundle(job)
        return reverse("registry:export_bundles", args=[b.export_id]) if b is not None else None

    def payload(self, job) -> dict:
        b = _bundle(job)
        return {"bundle_id": job.target_id, "export_id": b.export_id if b is not None else None}

    def on_claim(self, job) -> None:
        job.phase = "collecting"
        Bundle.objects.filter(pk=job.target_id).update(status=Bundle.Status.RUNNING, error="")

    def on_finish(self, job, status: str, result: dict) -> None:
        fields = {"status": status, "finished_at": timezone.now(),
                  "error": job.error if status == job.Status.FAILED else ""}
        if status == job.Status.SUCCEEDED:
            fields.update(path=result.get("path") or "", size_bytes=result.get("size_bytes"))
        Bundle.objects.filter(pk=job.target_id).update(**fields)

    def on_requeue(self, job, reason: str) -> None:
        Bundle.objects.filter(pk=job.target_id).update(status=Bundle.Status.QUEUED, error="", path="",
                                                       size_bytes=None, finished_at=None)

    def on_holder_dead(self, job):
        return REQUEUE
