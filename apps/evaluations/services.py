"""Creating an evaluation and cancelling it.

Contract: `evaluation_create` checks everything first and answers every problem at once as field errors (422:
`model_version_id`, `compare_to_version_id`, `dataset_version_id`, `tasks[.<i>...]`, `weights[.<name>]`, `preset`,
`split`, `max_tasks`, `max_new_tokens`, `name`), writing nothing; then, in one transaction, the evaluation, its tasks
(copied: a dataset version's examples — its validation split, or all of them — or the list given) and its job
(`evaluation.run` on the gpu queue, sent after commit). Weights: the ones given, else the preset's, else the
"autonomous-agent" preset. A version must have its weights on this machine (a remote version cannot be loaded).
`evaluation_cancel` asks the job to stop (owner or admin).
"""
from __future__ import annotations

from django.db import transaction

from apps.core.exceptions import ApplicationError, NotFound, PermissionDenied, ValidationFailed
from apps.core.inputs import has_nul
from apps.core.jobs import services as job_services
from apps.evaluations.models import Evaluation, EvaluationTask
from apps.evaluations.tasks import MAX_TASKS, task_from_messages, tasks_from_list
from workers.engine import rewards

KIND = "evaluation.run"
DEFAULT_PRESET = "autonomous-agent"
DEFAULT_MAX_TASKS = 50
DEFAULT_MAX_NEW_TOKENS = 256
MAX_NEW_TOKENS = 4096
SPLITS = ("validation", "all")


def can_create(user) -> bool:
    return bool(user and user.is_authenticated and (getattr(user, "is_hub_admin", False)
                                                    or getattr(user, "role", "") == "member"))


def can_manage(user, evaluation: Evaluation) -> bool:
    return bool(user and user.is_authenticated and (getattr(user, "is_hub_admin", False)
                                                    or evaluation.owner_id == user.pk))


def _version(errors: list, field: str, version_id):
    from apps.registry.exports.services import source_of, weights_problem
    from apps.registry.models import ModelVersion

    version = ModelVersion.objects.select_related("base_model").filter(pk=version_id).first()
    if version is None:
        errors.append({"field": field, "message": f"Model version {version_id} does not exist."})
        return None
    if version.kind == ModelVersion.Kind.REMOTE:
        errors.append({"field": field, "message": f"{version.name} (mv-{version.pk}) was trained elsewhere and has no "
                                                  "weights here to answer with; evaluate a local version."})
        return None
    problem = weights_problem(version, source_of(version))
    if problem:
        errors.append({"field": field, "message": problem})
        return None
    return version


def _whole(errors: list, field: str, value, lo: int, hi: int, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        errors.append({"field": field, "message": f"A whole number from {lo} to {hi}."})
        return default
    try:
        num = float(value)
    except ValueError:
        num = float("nan")
    if not (lo <= num <= hi) or num != int(num):
        errors.append({"field": field, "message": f"A whole number from {lo} to {hi}."})
        return default
    return int(num)


def _dataset_tasks(errors: list, user, version_id, split: str, limit: int):
    from apps.datasets import selectors as datasets
    from apps.datasets.models import DatasetVersion

    try:
        dv = datasets.version_get(user=user, version_id=int(version_id))
    except (NotFound, TypeError, ValueError):
        errors.append({"field": "dataset_version_id", "message": "No such dataset version."})
        return None, []
    if dv.status != DatasetVersion.Status.READY:
        errors.append({"field": "dataset_version_id",
                       "message": f"Dataset version {dv.pk} is {dv.status}, not ready."})
        return dv, []
    qs = dv.examples.order_by("index")
    if split == "validation":
        qs = qs.filter(split="validation")
    out = []
    for index, messages, tools, meta in qs.values_list("index", "messages", "tools", "meta").iterator(chunk_size=500):
        task = task_from_messages(messages, tools, meta)
        if task is not None:
            out.append((task, index))
            if len(out) >= limit:
                break
    if not out:
        where = "validation example" if split == "validation" else "example"
        hint = "; try split “all”." if split == "validation" else "."
        errors.append({"field": "dataset_version_id",
                       "message": f"{dv.dataset.name} v{dv.number} has no {where} that makes a task (a user turn "
                                  f"before an assistant turn){hint}"})
    return dv, out


def resolve_weights(errors: list, weights, preset) -> tuple[dict, str]:
    if weights not in (None, {}) and preset:
        errors.append({"field": "preset", "message": "Give weights or a preset, not both."})
        return {}, ""
    if weights not in (None, {}):
        problems = rewards.validate_weights(weights)
        errors.extend(problems)
        return ({k: float(v) for k, v in weights.items()} if not problems else {}), ""
    name = preset or DEFAULT_PRESET
    if name not in rewards.PRESETS:
        errors.append({"field": "preset", "message": f"Unknown preset {str(name)[:60]!r}; known: "
                                                     f"{', '.join(rewards.PRESETS)}."})
        return {}, ""
    return dict(rewards.PRESETS[name]), name


def evaluation_create(*, user, model_version_id, compare_to_version_id=None, dataset_version_id=None,
                      tasks=None, split: str = "validation", weights: dict | None = None, preset: str | None = None,
                      max_tasks=None, max_new_tokens=None, name: str = "") -> Evaluation:
    if not can_create(user):
        raise PermissionDenied("Only members and admins can start evaluations.")
    errors: list[dict] = []
    version = _version(errors, "model_version_id", model_version_id) if model_version_id is not None else None
    if model_version_id is None:
        errors.append({"field": "model_version_id", "message": "Choose the model version to evaluate."})
    other = None
    if compare_to_version_id not in (None, ""):
        if str(compare_to_version_id) == str(model_version_id):
            errors.append({"field": "compare_to_version_id", "message": "Compare with another version, not itself."})
        else:
            other = _version(errors, "compare_to_version_id", compare_to_version_id)
    limit = _whole(errors, "max_tasks", max_tasks, 1, MAX_TASKS, DEFAULT_MAX_TASKS)
    new_tokens = _whole(errors, "max_new_tokens", max_new_tokens, 1, MAX_NEW_TOKENS, DEFAULT_MAX_NEW_TOKENS)
    split = split or "validation"
    if split not in SPLITS:
        errors.append({"field": "split", "message": "The split is validation or all."})
        split = "validation"
    weights, preset_name = resolve_weights(errors, weights, preset)

    items: list[tuple[dict, int | None]] = []
    dv = None
    has_tasks = tasks not in (None, [], "")
    if dataset_version_id is not None and has_tasks:
        errors.append({"field": "tasks", "message": "Give tasks or a dataset version, not both."})
    elif dataset_version_id is not None:
        dv, items = _dataset_tasks(errors, user, dataset_version_id, split, limit)
    elif has_tasks:
        if has_nul(tasks):
            errors.append({"field": "tasks", "message": "Tasks must not contain NUL bytes."})
        else:
            parsed, problems = tasks_from_list(tasks)
            errors.extend(problems)
            items = [(t, None) for t in parsed[:limit]]
    else:
        errors.append({"field": "tasks", "message": "No tasks: give a list of tasks, or a dataset version whose "
                                                    "examples make them."})
    name = (name or "").strip() if isinstance(name, str) else ""
    if len(name) > 200 or "\x00" in name:
        errors.append({"field": "name", "message": "A name has at most 200 characters."})
    if errors:
        first = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
        raise ValidationFailed("Invalid evaluation: " + first, errors=errors)

    if not name:
        where = f"{dv.dataset.name} v{dv.number}" if dv else f"{len(items)} tasks"
        name = f"{version.name} on {where}" + (f" vs {other.name}" if other else "")
    with transaction.atomic():
        ev = Evaluation.objects.create(
            name=name[:200], owner=user, model_version=version, compare_to=other,
            source=Evaluation.Source.DATASET if dv else Evaluation.Source.TASKS, dataset_version=dv,
            split=split if dv else "", preset=preset_name, weights=weights,
            params={"max_new_tokens": new_tokens, "max_tasks": limit})
        EvaluationTask.objects.bulk_create([EvaluationTask(evaluation=ev, index=i, task=t, example_index=ex)
                                            for i, (t, ex) in enumerate(items)])
        job = job_services.job_create(kind=KIND, owner=user, target=ev, args=[ev.pk],
                                      progress={"current": 0, "total": len(items) * (2 if other else 1),
                                                "unit": "answers"})
        ev.job = job
        ev.save(update_fields=["job"])
    return ev


def evaluation_cancel(*, user, evaluation_id: int) -> Evaluation:
    from apps.evaluations.selectors import evaluation_get

    ev = evaluation_get(user=user, evaluation_id=evaluation_id)
    if not can_manage(user, ev):
        raise PermissionDenied("Only the evaluation's owner or an admin can cancel it.")
    if ev.job_id is None:
        raise ApplicationError("This evaluation has no job.")
    job_services.job_request_cancel(user=user, job_id=ev.job_id)
    ev.refresh_from_db()
    return ev
