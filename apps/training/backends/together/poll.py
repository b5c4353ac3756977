"""Polling a submitted Together.ai run: one status check that records new events as metric points,
updates the run (steps, phase, progress, a websocket event), re-sends a pending cancel, and ends the run
when Together does (registering a remote model version when it completed).

Contract: `poll(run, client, interval)` returns `interval` while the remote job is still going, else None
(the run is finished through the job lifecycle). `poll_failed(run_id, exc, interval)` handles a failed
status check: transient errors are retried with backoff (the delay to wait is returned) until
TOGETHER_MAX_POLL_FAILURES in a row; authentication / not-found errors and the last failure fail the run
(None)."""
from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.core.exceptions import ValidationFailed
from apps.core.jobs import services as job_services
from apps.core.realtime import broadcast_on_commit, run_group
from apps.training.backends.together.client import TogetherClient, TogetherError
from apps.training.backends.together.mapping import (
    REMOTE_STATUS_MAP,
    estimate_cost,
    event_key,
    output_name,
    parse_event_metrics,
    remote_error_message,
)
from apps.training.backends.together.state import PHASE, Status, fail, finish, job_of, save_fields
from apps.training.models import MetricPoint, TrainingRun

log = logging.getLogger(__name__)


def poll_failed(run_id: int, exc: TogetherError, interval: float) -> float | None:
    run = TrainingRun.objects.get(pk=run_id)
    failures = int((run.summary or {}).get("remote_poll_failures", 0)) + 1
    limit = int(settings.TOGETHER_MAX_POLL_FAILURES)
    if not exc.transient or exc.status_code in (401, 403, 404) or failures >= limit:
        tail = "" if not exc.transient else f" ({failures} status checks in a row failed)"
        fail(run_id, f"{exc.message}{tail}. The Together job {run.remote_job_id} may still be running: check it at "
                     f"api.together.ai and cancel it there if needed.", "E_TOGETHER_UNREACHABLE")
        return None
    save_fields(run_id, summary={**(run.summary or {}), "remote_poll_failures": failures,
                                 "remote_last_error": exc.message})
    broadcast_on_commit(run_group(run_id), "progress", {"run_id": run_id, "status": run.status,
                                                        "warning": exc.message, "poll_failures": failures})
    return interval * min(2 ** (failures - 1), 8) if interval else 0.0


def _record_events(run: TrainingRun, events: list[dict], fallback_step: int) -> tuple[list[dict], dict]:
    seen = {v.get("key") for v in MetricPoint.objects.filter(run=run, kind="remote").values_list("values", flat=True)
            if isinstance(v, dict)}
    new_events, points, latest = [], [], {}
    for event in events:
        key = event_key(event)
        if key in seen:
            continue
        seen.add(key)
        message = str(event.get("message") or "")
        step, metrics = parse_event_metrics(message)
        step = step if step is not None else fallback_step
        values = {"key": key, "message": message, "type": event.get("type") or "", "level": event.get("level") or "",
                  "created_at": event.get("created_at") or ""}
        for extra in ("token_count", "param_count", "wandb_url"):
            if event.get(extra) is not None:
                values[extra] = event[extra]
        points.append(MetricPoint(run=run, step=step, kind="remote", values=values))
        train = {k: v for k, v in metrics.items() if k != "eval_loss"}
        if train:
            points.append(MetricPoint(run=run, step=step, kind="train", values=train))
            latest.update(train)
        if "eval_loss" in metrics:
            points.append(MetricPoint(run=run, step=step, kind="eval", values={"eval_loss": metrics["eval_loss"]}))
            latest["eval_loss"] = metrics["eval_loss"]
        new_events.append(values)
    MetricPoint.objects.bulk_create(points)
    return [{"step": p.step, "kind": p.kind, **p.values} for p in points], latest


def poll(run: TrainingRun, client: TogetherClient, interval: float) -> float | None:
    job_id = run.remote_job_id
    job = client.get_fine_tune(job_id)
    events = client.list_events(job_id)
    remote_status = str(job.get("status") or "").lower()
    mapped = REMOTE_STATUS_MAP.get(remote_status)
    if mapped is None:
        raise TogetherError(f"Together job {job_id} reports an unknown status {job.get('status')!r}")

    steps_done = job.get("steps_completed")
    total = job.get("total_steps")
    new_points, latest = _record_events(run, events, steps_done if isinstance(steps_done, int) else 0)
    summary = dict(run.summary or {})
    summary.update(latest)
    summary.update(remote_status=remote_status, remote_poll_failures=0, remote_last_error="")
    for key in ("epochs_completed", "queue_depth", "token_count", "param_count", "total_price", "wandb_url"):
        if job.get(key) is not None:
            summary[f"remote_{key}"] = job[key]
    if output_name(job):
        summary["remote_output_name"] = output_name(job)
    try:
        if job.get("token_count") and job.get("n_epochs"):
            summary["remote_cost_estimate"] = estimate_cost(
                tokens=int(job["token_count"]), epochs=int(job["n_epochs"]), model=str(job.get("model") or ""))["cost_usd"]
    except (TypeError, ValueError, ValidationFailed):
        pass  # cosmetic: an odd token count must not fail the run

    fields: dict[str, Any] = {"summary": summary}
    if isinstance(steps_done, int):
        fields["current_step"] = max(0, steps_done)
    if isinstance(total, int) and total > 0:
        fields["total_steps"] = total

    if mapped == Status.SUCCEEDED:
        _complete(run, job, fields)
        return None
    if mapped == Status.FAILED:
        message = remote_error_message(job, events)
        kind = "a problem with the request or data" if remote_status == "user_error" else "an error"
        finish(run.pk, status=Status.FAILED, error=f"Together job {job_id} ended with {kind}: {message}",
               error_code="E_TOGETHER_JOB_ERROR", **fields)
        return None
    if mapped == Status.CANCELLED:
        finish(run.pk, status=Status.CANCELLED, **fields)
        return None

    # still active: queued or running at Together
    with transaction.atomic():
        current = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if current.status not in TrainingRun.ACTIVE:
            return None
        for name, value in fields.items():
            setattr(current, name, value)
        current.save(update_fields=sorted(fields))
        cancel_pending = current.cancel_requested
    hub_job_id = job_of(run.pk)
    # the phase moves the run from queued to running once Together runs it (apps/training/jobs.py)
    job_services.job_set_phase(job_id=hub_job_id, phase=PHASE.get(remote_status, "training"))
    current.refresh_from_db(fields=["status"])
    job_services.job_progress(job_id=hub_job_id, current=current.current_step, total=current.total_steps or None,
                              unit="steps", message=f"Together: {remote_status}", force=True)
    # same shape as the local worker's progress event (apps.training.services.run_progress_record)
    broadcast_on_commit(run_group(run.pk), "progress", {
        "run_id": run.pk, "status": current.status, "current_step": current.current_step,
        "total_steps": current.total_steps, "remote_status": remote_status, "summary": summary,
        "points": new_points,
    })
    if cancel_pending and remote_status not in ("cancel_requested", "cancelled"):
        try:
            client.cancel_fine_tune(job_id)
        except TogetherError as exc:
            log.warning("Run %s: cancelling Together job %s failed (%s); will retry", run.pk, job_id, exc.message)
    return interval


def _complete(run: TrainingRun, job: dict, fields: dict) -> None:
    output = output_name(job)
    if not output:
        finish(run.pk, status=Status.FAILED, error=f"Together job {run.remote_job_id} completed but reported no "
                                                   f"output model name, so it cannot be registered.",
               error_code="E_TOGETHER_NO_OUTPUT", **fields)
        return
    from apps.registry.models import ModelVersion
    from apps.registry.services import model_version_register

    job_services.job_set_phase(job_id=job_of(run.pk), phase="registering")
    if fields.get("total_steps"):
        fields["current_step"] = fields["total_steps"]

    def register(_job) -> dict:  # inside job_finish's transaction, only if this call finishes the run
        current = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if not ModelVersion.objects.filter(run=current).exists():
            version = model_version_register(
                name=current.name or f"together-run-{current.pk}", kind=ModelVersion.Kind.REMOTE,
                base_model=current.base_model, run=current, dataset_version=current.dataset_version,
                remote_model_id=output, hyperparameters=current.hyperparameters,
                metrics={k: v for k, v in fields["summary"].items() if k in ("loss", "eval_loss")},
                final_loss=fields["summary"].get("loss"), created_by=current.owner,
            )
            fields["summary"]["model_version_id"] = version.pk
        return {"summary": fields["summary"]}

    finish(run.pk, status=Status.SUCCEEDED, effects=register, **fields)
