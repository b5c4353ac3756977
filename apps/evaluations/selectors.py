"""Reads of evaluations, shared by the API and the pages. Every signed-in user may read every evaluation (a team
hub, like datasets and model versions); owners and admins may cancel (services)."""
from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.core.exceptions import NotFound
from apps.evaluations.models import Evaluation, EvaluationAnswer, EvaluationTask
from workers.engine import rewards


def _signed_in(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False))


def evaluation_list(*, user, model_version_id: int | None = None) -> QuerySet[Evaluation]:
    if not _signed_in(user):
        raise NotFound("No such evaluation.")
    qs = Evaluation.objects.select_related("owner", "model_version", "compare_to", "dataset_version__dataset", "job")
    if model_version_id is not None:
        qs = qs.filter(Q(model_version_id=model_version_id) | Q(compare_to_id=model_version_id))
    return qs.order_by("-created_at", "-id")


def evaluation_get(*, user, evaluation_id: int) -> Evaluation:
    if not _signed_in(user):
        raise NotFound("No such evaluation.")
    ev = (Evaluation.objects.select_related("owner", "model_version", "compare_to", "dataset_version__dataset", "job")
          .filter(pk=evaluation_id).first())
    if ev is None:
        raise NotFound(f"Evaluation {evaluation_id} does not exist.")
    return ev


def task_get(*, evaluation: Evaluation, task_id: int) -> EvaluationTask:
    task = evaluation.tasks.filter(pk=task_id).first()
    if task is None:
        raise NotFound("No such task in this evaluation.")
    return task


def answers_by_task(evaluation: Evaluation) -> dict[int, dict[str, EvaluationAnswer]]:
    out: dict[int, dict[str, EvaluationAnswer]] = {}
    for a in EvaluationAnswer.objects.filter(task__evaluation=evaluation):
        out.setdefault(a.task_id, {})[a.side] = a
    return out


def progress(evaluation: Evaluation) -> dict:
    sides = 2 if evaluation.compare_to_id else 1
    total = evaluation.tasks.count() * sides
    done = EvaluationAnswer.objects.filter(task__evaluation=evaluation).count()
    return {"done": done, "total": total, "percent": round(100 * done / total, 1) if total else 0.0}


def job_state(evaluation: Evaluation) -> dict | None:
    job = evaluation.job
    if job is None:
        return None
    return {"id": job.pk, "status": job.status, "phase": job.phase, "progress": job.progress or {},
            "error": job.error, "active": job.status in job.ACTIVE, "cancel_requested": job.cancel_requested}


def prompt_text(task: dict) -> str:
    prompt = task.get("prompt")
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content") or "" for m in prompt or [] if m.get("role") == "user"]
    return users[-1] if users else ""


def component_table() -> list[dict]:
    return rewards.describe()
