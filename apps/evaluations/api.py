"""/api/evaluations and /api/rewards/components: start a reward-based evaluation of a model version (optionally
against a second version, usually its parent), read it (status, progress, per-component and per-category means,
the comparison with its bootstrap interval), its per-task answers with every component's score, error and detail,
cancel it; and the reward-component registry with the presets. Parses input, calls a selector or a service
(apps.evaluations), renders; no ORM writes here. 422: field errors, nothing saved."""
from __future__ import annotations

from ninja import Router

from apps.core.inputs import Id, PageNumber
from apps.core.schemas import responses
from apps.evaluations import selectors, services
from apps.evaluations.models import Evaluation
from apps.evaluations.schemas import EvaluationIn, EvaluationOut, RegistryOut, TaskOut
from workers.engine import rewards

router = Router(tags=["evaluations"])
PAGE_SIZE = 50


def evaluation_out(ev: Evaluation) -> dict:
    ev = Evaluation.objects.select_related("owner", "model_version", "compare_to", "job").get(pk=ev.pk)
    return {
        "id": ev.pk, "name": ev.name, "status": ev.status, "owner": ev.owner.username,
        "model_version": {"id": ev.model_version_id, "name": ev.model_version.name},
        "compare_to": {"id": ev.compare_to_id, "name": ev.compare_to.name} if ev.compare_to_id else None,
        "source": ev.source, "dataset_version_id": ev.dataset_version_id, "split": ev.split, "preset": ev.preset,
        "weights": ev.weights, "params": ev.params or {}, "task_count": ev.tasks.count(),
        "progress": selectors.progress(ev), "job": selectors.job_state(ev), "summary": ev.summary or None,
        "error": ev.error, "created_at": ev.created_at.isoformat(),
        "finished_at": ev.finished_at.isoformat() if ev.finished_at else None,
    }


@router.post("/evaluations", response=responses({201: EvaluationOut}, body=True),
             summary="Start an evaluation: a version (and optionally the one to compare with) answers a task set; "
                     "each answer is scored by the weighted reward components")
def create_evaluation(request, payload: EvaluationIn):
    ev = services.evaluation_create(
        user=request.auth, model_version_id=payload.model_version_id,
        compare_to_version_id=payload.compare_to_version_id, dataset_version_id=payload.dataset_version_id,
        tasks=payload.tasks, split=payload.split, weights=payload.weights, preset=payload.preset,
        max_tasks=payload.max_tasks, max_new_tokens=payload.max_new_tokens, name=payload.name)
    return 201, evaluation_out(ev)


@router.get("/evaluations", response=responses({200: list[EvaluationOut]}),
            summary="Evaluations, newest first (model_version_id: those that evaluate or compare with it)")
def list_evaluations(request, model_version_id: Id | None = None):
    return [evaluation_out(e) for e in selectors.evaluation_list(user=request.auth,
                                                                 model_version_id=model_version_id)[:100]]


@router.get("/evaluations/{evaluation_id}", response=responses({200: EvaluationOut}, 404))
def get_evaluation(request, evaluation_id: Id):
    return evaluation_out(selectors.evaluation_get(user=request.auth, evaluation_id=evaluation_id))


@router.get("/evaluations/{evaluation_id}/tasks", response=responses({200: list[TaskOut]}, 404),
            summary="The tasks with each version's answer and every component's score, error and detail (50 a page)")
def list_tasks(request, evaluation_id: Id, page: PageNumber = 1):
    ev = selectors.evaluation_get(user=request.auth, evaluation_id=evaluation_id)
    answers = selectors.answers_by_task(ev)
    rows = ev.tasks.order_by("index")[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    return [{"id": t.pk, "index": t.index, "example_index": t.example_index, "task": t.task,
             "answers": [{"side": a.side, "text": a.text, "total": a.total, "error": a.error,
                          "components": a.components} for a in answers.get(t.pk, {}).values()]} for t in rows]


@router.post("/evaluations/{evaluation_id}/cancel", response=responses({200: EvaluationOut}, 404, 409, write=True),
             summary="Stop the evaluation (its answers so far are kept)")
def cancel_evaluation(request, evaluation_id: Id):
    return evaluation_out(services.evaluation_cancel(user=request.auth, evaluation_id=evaluation_id))


@router.get("/rewards/components", response=responses({200: RegistryOut}, inputs=False),
            summary="The reward components (builtins and plugins), their categories, and the presets")
def reward_components(request):
    return {"components": rewards.describe(), "categories": rewards.CATEGORIES, "presets": rewards.PRESETS,
            "preset_notes": rewards.PRESET_NOTES, "plugin_errors": rewards.PLUGIN_ERRORS}
