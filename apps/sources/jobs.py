"""Job kinds of code sources (registered with apps.core.jobs):

- "source.analyse": scan (fetch new commits) and analyse a source's repositories on the `default` queue
  (workers.sources.source_analyse). Idempotent: a re-run starts over, so a dead holder's analysis is queued again.
- "source.generate": generate training scenarios (offline generators, optional mutation tests, optional
  teacher model) into a new dataset version (workers.sources.source_generate). Resumable: the engine's output
  of each repository and the teacher's progress are checkpointed under ARTIFACT_ROOT/generations/<id>/, so a
  run whose worker died is queued again and continues where it stopped (the reconciler, at worker boot and
  every 30 s). The dataset version it writes has this same job (`DatasetVersion.job`): it turns ready when
  the job succeeds, and is deleted — rows and all — when the job fails or is cancelled, so a failed
  generation leaves no version behind.

The hooks keep the Analysis / Generation (and the version) in step with the Job; they run inside the
lifecycle's transaction and write only those rows.
"""
from __future__ import annotations

import time

from django.urls import reverse
from django.utils import timezone

from apps.core.jobs.registry import REQUEUE, JobKind, register_kind
from apps.sources.models import Analysis, Generation, JobStatus

STALE_S = 180.0
MAX_ATTEMPTS = 4


def _row(job, model):
    key = f"_sources_{model.__name__}"
    cached = job.__dict__.get(key)
    if cached is None or cached.pk != job.target_id:
        cached = model.objects.select_related("source").filter(pk=job.target_id).first()
        job.__dict__[key] = cached
    return cached


@register_kind
class AnalyseKind(JobKind):
    kind = "source.analyse"
    label = "Source analysis"
    actor_name = "source_analyse"
    queue_name = "default"
    stale_after_s = STALE_S
    max_attempts = MAX_ATTEMPTS
    phases = ("queued", "scan", "files", "complexity", "history")

    def target(self, job):
        return _row(job, Analysis)

    def target_label(self, job) -> str:
        a = _row(job, Analysis)
        return f"{a.source.name}: analysis #{a.pk}" if a is not None else f"analysis #{job.target_id}"

    def target_url(self, job) -> str | None:
        a = _row(job, Analysis)
        return f"{reverse('sources:detail', args=[a.source_id])}?analysis={a.pk}" if a is not None else None

    def on_claim(self, job) -> None:
        job.phase = "scan"
        Analysis.objects.filter(pk=job.target_id).update(status=JobStatus.RUNNING, error="")

    def on_finish(self, job, status: str, result: dict) -> None:
        fields = {"status": status, "finished_at": timezone.now(),
                  "error": (job.error if status == job.Status.FAILED else "")[:500]}
        if status == job.Status.SUCCEEDED:
            fields.update(results=result.get("results") or {}, commits=result.get("commits") or {})
        Analysis.objects.filter(pk=job.target_id).update(**fields)

    def on_requeue(self, job, reason: str) -> None:
        Analysis.objects.filter(pk=job.target_id).update(status=JobStatus.QUEUED, error="", finished_at=None)

    def on_holder_dead(self, job):
        return REQUEUE


def discard_version(version) -> None:
    """Delete a generation's unfinished version and its examples (in batches), and its dataset when the
    generation created it and nothing else is in it."""
    from apps.datasets.models import DatasetVersion
    from apps.datasets.services.versions import delete_examples

    if version is None or version.status == DatasetVersion.Status.READY:
        return
    dataset = version.dataset
    delete_examples(version)
    version.delete()
    if not dataset.versions.exists():
        from apps.sources.models import Source

        Source.objects.filter(dataset=dataset).update(dataset=None)
        dataset.delete()


@register_kind
class GenerateKind(JobKind):
    kind = "source.generate"
    label = "Scenario generation"
    actor_name = "source_generate"
    queue_name = "default"
    stale_after_s = STALE_S
    max_attempts = MAX_ATTEMPTS
    requeued_label = "resumed"
    phases = ("queued", "scan", "generate", "tests", "teacher", "saving")

    def target(self, job):
        return _row(job, Generation)

    def target_label(self, job) -> str:
        g = _row(job, Generation)
        return f"{g.source.name}: generation #{g.pk}" if g is not None else f"generation #{job.target_id}"

    def target_url(self, job) -> str | None:
        return reverse("sources:generation", args=[job.target_id]) if job.target_id else None

    def on_claim(self, job) -> None:
        job.phase = "scan"
        Generation.objects.filter(pk=job.target_id).update(status=JobStatus.RUNNING, error="", error_code="")

    @staticmethod
    def _version(job):
        from apps.datasets.models import DatasetVersion

        return DatasetVersion.objects.select_related("dataset").filter(job_id=job.pk).first()

    def on_finish(self, job, status: str, result: dict) -> None:
        from apps.datasets.models import DatasetVersion

        version = self._version(job)
        fields = {"status": status, "finished_at": timezone.now()}
        if status == job.Status.SUCCEEDED and version is not None:
            progress = {**(version.progress or {}), "stage": "done", "updated_at": time.time()}
            DatasetVersion.objects.filter(pk=version.pk).update(status=DatasetVersion.Status.READY, error="",
                                                                progress=progress)
            fields.update(dataset_version=version, error="", error_code="")
        else:
            discard_version(version)
            fields.update(dataset_version=None, report={},
                          error=(job.error or result.get("message") or
                                 ("The generation was cancelled." if status == job.Status.CANCELLED else ""))[:500],
                          error_code=job.error_code or "")
        Generation.objects.filter(pk=job.target_id).update(**fields)

    def on_requeue(self, job, reason: str) -> None:
        discard_version(self._version(job))  # the saving phase starts over; the engine's checkpoints stay
        Generation.objects.filter(pk=job.target_id).update(status=JobStatus.QUEUED, error="", error_code="",
                                                           finished_at=None)

    def on_holder_dead(self, job):
        return REQUEUE

    def exhausted_message(self, job) -> str:
        return (f"The generation was interrupted {job.attempts} times (its worker stopped each time, possibly out of "
                f"memory), so it was not resumed again. Retry it from the Jobs page to continue from its checkpoint.")
