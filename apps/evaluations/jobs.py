"""Job kind of evaluations (registered with apps.core.jobs): "evaluation.run" — the version (and the one compared
with) answers every task, each answer scored by the reward components (workers.evaluations.evaluate_rewards, `gpu`
queue; apps/evaluations/run.py). Resumable: answers are saved chunk by chunk, so a run whose worker died is queued
again and answers only what is missing; a retry also answers again the tasks whose generation failed. The hooks keep
the Evaluation's status in step (inside the lifecycle's transaction)."""
from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from apps.core.jobs.registry import REQUEUE, JobKind, register_kind
from apps.evaluations.models import Evaluation, EvaluationAnswer


@register_kind
class EvaluationKind(JobKind):
    kind = "evaluation.run"
    label = "Reward evaluation"
    actor_name = "evaluate_rewards"
    queue_name = "gpu"
    stale_after_s = 300.0
    requeued_label = "resumed"
    phases = ("queued", "loading", "generating", "summarizing")

    def target_label(self, job) -> str:
        ev = Evaluation.objects.filter(pk=job.target_id).only("name").first()
        return f"evaluation {ev.name}" if ev else f"evaluation #{job.target_id}"

    def target_url(self, job) -> str | None:
        return reverse("evaluations:detail", args=[job.target_id]) if job.target_id else None

    def payload(self, job) -> dict:
        return {"evaluation_id": job.target_id}

    def on_claim(self, job) -> None:
        job.phase = "loading"
        Evaluation.objects.filter(pk=job.target_id).update(status=Evaluation.Status.RUNNING, error="")

    def on_finish(self, job, status: str, result: dict) -> None:
        fields = {"finished_at": timezone.now(), "status": status}
        if status == job.Status.FAILED:
            fields["error"] = (job.error or "The evaluation failed.")[:500]
        if "summary" in result:
            fields["summary"] = result["summary"]
        Evaluation.objects.filter(pk=job.target_id).update(**fields)

    def on_holder_dead(self, job):
        return REQUEUE

    def on_requeue(self, job, reason: str) -> None:
        if reason == "retry":
            EvaluationAnswer.objects.filter(task__evaluation_id=job.target_id).exclude(error="").delete()
        Evaluation.objects.filter(pk=job.target_id).update(status=Evaluation.Status.QUEUED, error="", finished_at=None)
