"""Reads for training runs, shared by the API, the pages and the websocket consumer.

Visibility: every authenticated user can read every run (the hub is a team tool); only the owner
or an admin may change one (checked in services)."""
from __future__ import annotations

from django.db.models import QuerySet

from apps.core.exceptions import NotFound
from apps.training.models import Checkpoint, MetricPoint, TrainingRun


def run_list(*, user, status: str | None = None, ids: list[int] | None = None) -> QuerySet[TrainingRun]:
    qs = TrainingRun.objects.select_related("owner", "dataset_version__dataset", "base_model", "parent_version",
                                            "job")
    if status:
        qs = qs.filter(status__in=[s for s in status.split(",") if s])
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs


def run_get(*, user, run_id: int) -> TrainingRun:
    run = run_list(user=user).filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"Run {run_id} does not exist.")
    return run


def can_change(user, run: TrainingRun) -> bool:
    return bool(user and user.is_authenticated and (run.owner_id == user.pk or getattr(user, "is_hub_admin", False)))


def run_metrics(*, run: TrainingRun, kind: str | None = None, after_step: int | None = None) -> list[dict]:
    qs = MetricPoint.objects.filter(run=run)
    if kind:
        qs = qs.filter(kind=kind)
    if after_step is not None:
        qs = qs.filter(step__gt=after_step)
    return [{"step": p.step, "kind": p.kind, **(p.values or {})} for p in qs.order_by("step", "id")]


def run_queue_position(run: TrainingRun) -> int | None:
    """1 = next to start on the local GPU queue; None when not queued."""
    if run.status != TrainingRun.Status.QUEUED or run.backend != TrainingRun.Backend.LOCAL:
        return None
    ahead = TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED, backend=TrainingRun.Backend.LOCAL,
                                       pk__lt=run.pk).count()
    return ahead + 1


def run_checkpoints(*, run: TrainingRun, include_deleted: bool = False) -> QuerySet[Checkpoint]:
    qs = Checkpoint.objects.filter(run=run)
    if not include_deleted:
        qs = qs.filter(deleted=False)
    return qs.order_by("step")


def checkpoint_get(*, user, checkpoint_id: int) -> Checkpoint:
    ckpt = Checkpoint.objects.select_related("run").filter(pk=checkpoint_id).first()
    if ckpt is None:
        raise NotFound(f"Checkpoint {checkpoint_id} does not exist.")
    return ckpt


def best_checkpoint(run: TrainingRun) -> Checkpoint | None:
    return (run_checkpoints(run=run).filter(eval_loss__isnull=False).order_by("eval_loss", "-step").first())


def run_timing(run: TrainingRun) -> dict:
    """The run's phase (from its job: queued, loading, training, evaluating, saving, registering; empty
    once finished), the seconds it has been running (elapsed_s, while active) or ran (duration_s, once
    finished), and its error code."""
    from django.utils import timezone

    job = run.job if run.job_id else None
    phase = (job.phase if job is not None else "") if run.is_active else ""
    if run.is_active and not phase:
        phase = "queued" if run.status == TrainingRun.Status.QUEUED else ""
    start, end = run.started_at, run.finished_at
    seconds = round(((end or timezone.now()) - start).total_seconds(), 1) if start else None
    return {"phase": phase, "elapsed_s": seconds if run.is_active else None,
            "duration_s": seconds if not run.is_active and end else None,
            "error_code": job.error_code if job is not None else ("E_FAILED" if run.error else ""),
            "job_id": run.job_id}


def run_model_version_id(run: TrainingRun) -> int | None:
    from apps.registry.models import ModelVersion

    return ModelVersion.objects.filter(run=run).values_list("pk", flat=True).first()


def run_as_dict(run: TrainingRun, *, with_metrics: bool = False) -> dict:
    out = {
        "id": run.pk,
        "name": str(run),
        "status": run.status,
        "method": run.method,
        "backend": run.backend,
        "owner": run.owner.username,
        "dataset_version_id": run.dataset_version_id,
        "dataset_id": run.dataset_version.dataset_id,
        "base_model": run.base_model_id,
        "parent_version_id": run.parent_version_id,
        "hyperparameters": run.hyperparameters,
        "current_step": run.current_step,
        "total_steps": run.total_steps,
        "summary": run.summary,
        "error": run.error,
        **run_timing(run),  # phase, elapsed_s, duration_s, error_code, job_id
        "cancel_requested": run.cancel_requested,
        "model_version_id": run_model_version_id(run),
        "queue_position": run_queue_position(run),
        "remote_job_id": run.remote_job_id,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
    if with_metrics:
        out["metrics"] = run_metrics(run=run)
        out["checkpoints"] = [checkpoint_as_dict(c) for c in run_checkpoints(run=run)]
    return out


def checkpoint_as_dict(c: Checkpoint) -> dict:
    return {"id": c.pk, "run_id": c.run_id, "step": c.step, "stage": c.stage, "eval_loss": c.eval_loss,
            "model_version_id": c.model_version_id, "created_at": c.created_at.isoformat()}
