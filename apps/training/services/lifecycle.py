"""The life of a local training run once it is queued: what the worker and the reconciler call.

Every state change goes through the run's Job (apps.core.jobs: one claim, heartbeat, phase, cancel,
finish and reconcile for every kind of background job; the hooks that keep the run row in step are in
apps/training/jobs.py).

Contract: `run_enqueue` creates the run's job and sends it to its backend's actor after commit (or, with
send=False, leaves it unsent until `run_send`).
`run_claim` takes a run for this worker atomically (None when there is nothing to do, so a re-delivered
message is harmless); while it trains the worker calls `run_resume_point`, `run_progress_record` (a batch
of metric points, one websocket event), `run_set_phase`, `run_heartbeat`, `run_should_stop` (cooperative
cancel, every phase) and `checkpoint_record`; it ends the run exactly once with `run_succeed` (registers
the model version), `run_fail` (one line + an error code; tracebacks only in the logs) or
`run_mark_cancelled`. `run_reconcile` (`manage.py reconcile_runs`; the job reconciler does the same at
worker boot and every 30 s) resumes runs a dead worker left `running` when they have a checkpoint and
fails the others. Events are broadcast after commit (status) or after the write (progress)."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.core.jobs import reconcile as job_reconciler
from apps.core.jobs import services as jobs
from apps.core.liveness import worker_id
from apps.core.models import Job
from apps.core.realtime import broadcast, run_group
from apps.training.models import Checkpoint, MetricPoint, TrainingRun

HEARTBEAT_STALE_S = 120
KIND = {TrainingRun.Backend.LOCAL: "training.local", TrainingRun.Backend.TOGETHER: "training.together"}
# methods whose result is a LoRA adapter on the base model (the others: full weights)
ADAPTER_METHODS = (TrainingRun.Method.LORA, TrainingRun.Method.DPO, TrainingRun.Method.KTO)
# what a DPO (or KTO: kl, no accuracies) run's summary and model version keep of TRL's metrics (the last
# logged values)
PREFERENCE_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "kl")
# what a GRPO run's summary keeps of TRL's metrics besides kl (the last logged values), with each component's
# mean (rewards/<name>/mean) and share of failed scorings (reward_errors/<name>); its model version keeps them too
REWARD_KEYS = ("reward", "reward_std", "completions/mean_length")


def _reward_keys(values: dict) -> list[str]:
    return [k for k in values if k in REWARD_KEYS or (k.startswith("rewards/") and k.endswith("/mean"))
            or k.startswith("reward_errors/")]


def run_is_adapter(run: TrainingRun) -> bool:
    """Whether a run's result is a LoRA adapter on its base model (else full weights); GRPO: unless it trained
    full weights."""
    if run.method in (TrainingRun.Method.GRPO, TrainingRun.Method.DPO, TrainingRun.Method.KTO):
        return not (run.hyperparameters or {}).get("full_weights")
    return run.method in ADAPTER_METHODS


def run_job_id(run: TrainingRun | int) -> int:
    """The id of the run's job, created (not sent) for a run that has none (rows made before jobs)."""
    return jobs.job_id_for(TrainingRun, run if isinstance(run, int) else run.pk, spec=lambda r: {
        "kind": KIND[r.backend], "owner": r.owner, "args": [r.pk]})


def run_enqueue(run: TrainingRun, *, send: bool = True) -> Job:
    """Create the run's job; its message goes to the backend's actor once the transaction commits.
    send=False: the job stays queued and unsent until `run_send` (a run whose files are still being
    prepared, e.g. a relaunch copying its checkpoint)."""
    job = jobs.job_create(kind=KIND[run.backend], owner=run.owner, target=run, args=[run.pk], send=send)
    run.job = job
    run.save(update_fields=["job"])
    return job


def run_send(*, run_id: int) -> None:
    """Send a queued run's message after commit (a run created with enqueue=False, once it is ready).
    A no-op when its job is no longer queued (e.g. cancelled meanwhile)."""
    jobs.job_send(job_id=run_job_id(run_id))


def run_claim(*, run_id: int, worker: str | None = None) -> TrainingRun | None:
    """Atomically take a run for this worker. Returns None when there is nothing to do (finished,
    cancelled, or running in a live worker): re-delivered messages are harmless."""
    if not TrainingRun.objects.filter(pk=run_id).exists():
        return None
    if jobs.job_claim(job_id=run_job_id(run_id), holder=worker or worker_id()) is None:
        return None
    return TrainingRun.objects.get(pk=run_id)


def run_resume_point(*, run_id: int, step: int) -> None:
    """The engine (re)starts at `step` (0 for a fresh run; a checkpoint's step after a crash): forget
    metric points and checkpoints recorded after it, so the curve continues from the weights."""
    with transaction.atomic():
        MetricPoint.objects.filter(run_id=run_id, step__gt=step).delete()
        Checkpoint.objects.filter(run_id=run_id, step__gt=step).update(deleted=True)
        TrainingRun.objects.filter(pk=run_id).update(current_step=step)
    if step:
        broadcast(run_group(run_id), "resume", {"step": step})


def run_progress_record(*, run_id: int, points: list[tuple[int, dict]], total_steps: int | None = None) -> dict:
    """Write a batch of metric points, refresh the run's summary, push one event to the run's websocket
    group, and record the job's progress (and heartbeat). Returns the event payload."""
    rows = []
    latest_train: dict = {}
    latest_eval: dict = {}
    last_step = 0
    for step, metrics in points:
        values = {k: v for k, v in metrics.items() if k != "kind" and v is not None}
        kind = metrics.get("kind", "train")
        rows.append(MetricPoint(run_id=run_id, step=step, kind=kind, values=values))
        if kind == "train":
            latest_train = values
        else:
            latest_eval = values
        last_step = max(last_step, step)
    with transaction.atomic():
        MetricPoint.objects.bulk_create(rows)
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        summary = dict(run.summary or {})
        for key in ("loss", "learning_rate", "grad_norm", "tokens_per_s", "samples_per_s", "steps_per_s", "eta_s",
                    "rss_mb", "gpu_mb", "epoch", "stage", "tokens_seen", *PREFERENCE_KEYS,
                    *_reward_keys(latest_train)):
            if key in latest_train:
                summary[key] = latest_train[key]
        if latest_eval:
            summary["eval_loss"] = latest_eval.get("eval_loss")
            summary["perplexity"] = latest_eval.get("perplexity")
            summary.update({f"eval_{k}": latest_eval[k] for k in (*PREFERENCE_KEYS, *_reward_keys(latest_eval))
                            if k in latest_eval})
        run.summary = summary
        run.current_step = max(run.current_step, last_step)
        if total_steps:
            run.total_steps = total_steps
        run.save(update_fields=["summary", "current_step", "total_steps"])
    payload = {"run_id": run_id, "status": run.status, "current_step": run.current_step,
               "total_steps": run.total_steps,
               "points": [{"step": s, "kind": m.get("kind", "train"), **{k: v for k, v in m.items() if k != "kind"}}
                          for s, m in points],
               "summary": {k: v for k, v in summary.items() if k not in ("estimate", "evaluation", "worker")}}
    broadcast(run_group(run_id), "progress", payload)
    if run.job_id:  # after the run's transaction: the job lock is never taken while the run's is held
        jobs.job_progress(job_id=run.job_id, current=run.current_step, total=run.total_steps or None,
                          unit="steps")
    return payload


def run_heartbeat(*, run_id: int, worker: str | None = None) -> bool:
    """The worker holding the run is alive (its heartbeat thread)."""
    return jobs.job_heartbeat(job_id=run_job_id(run_id), holder=worker or worker_id())


def run_set_phase(*, run_id: int, phase: str) -> None:
    """The run entered `phase` (loading, training, evaluating, saving, registering)."""
    jobs.job_set_phase(job_id=run_job_id(run_id), phase=phase)


def run_should_stop(*, run_id: int) -> bool:
    """Cooperative cancel, asked in every phase (training steps, evaluation, saving)."""
    return jobs.job_should_stop(job_id=run_job_id(run_id))


def checkpoint_record(*, run_id: int, step: int, path: str, eval_loss: float | None, stage: int = 0) -> Checkpoint:
    rel = str(Path(path).resolve().relative_to(Path(settings.ARTIFACT_ROOT).resolve()))
    ckpt, _ = Checkpoint.objects.update_or_create(
        run_id=run_id, step=step, defaults={"path": rel, "eval_loss": eval_loss, "stage": stage, "deleted": False})
    # the Trainer rotated older ones away (keep last K)
    for c in Checkpoint.objects.filter(run_id=run_id, deleted=False).exclude(pk=ckpt.pk):
        if not (settings.ARTIFACT_ROOT / c.path).is_dir():
            c.deleted = True
            c.save(update_fields=["deleted"])
    broadcast(run_group(run_id), "checkpoint", {"id": ckpt.pk, "step": step, "eval_loss": eval_loss})
    return ckpt


def run_succeed(*, run_id: int, result: dict) -> TrainingRun:
    """Register the trained weights as a model version (lineage: base, parent, dataset, hyperparameters,
    final loss) and mark the run succeeded, in one transaction, exactly once."""
    from apps.registry.models import ModelVersion
    from apps.registry.services import model_version_register

    job_id = run_job_id(run_id)
    jobs.job_set_phase(job_id=job_id, phase="registering")

    def register(job) -> dict:
        run = (TrainingRun.objects.select_for_update(of=("self",)).select_related("base_model", "parent_version")
               .get(pk=run_id))
        kind = ModelVersion.Kind.ADAPTER if run_is_adapter(run) else ModelVersion.Kind.FULL
        metrics = {k: result.get(k) for k in ("final_loss", "eval_loss", "perplexity") if result.get(k) is not None}
        for prefix, found in (("", result.get("preference")), ("eval_", result.get("eval_preference"))):
            metrics.update({prefix + k: found[k] for k in PREFERENCE_KEYS if (found or {}).get(k) is not None})
        for prefix, found in (("", result.get("rewards")), ("eval_", result.get("eval_rewards"))):  # GRPO
            metrics.update({prefix + k: found[k] for k in _reward_keys(found or {}) if found[k] is not None})
        evaluation = result.get("evaluation") or {}
        if evaluation.get("tool_calls"):
            metrics["tool_call_right"] = evaluation["tool_calls"]["right_tool"]
            metrics["tool_call_well_formed"] = evaluation["tool_calls"]["well_formed"]
        version = model_version_register(
            name=str(run) if run.name else f"run-{run.pk}", kind=kind, base_model=run.base_model, run=run,
            dataset_version=run.dataset_version, parent=run.parent_version, source_dir=result["final_dir"],
            hyperparameters={**run.hyperparameters, "method": run.method}, metrics=metrics,
            final_loss=result.get("final_loss"), created_by=run.owner,
        )
        summary = {"final_loss": result.get("final_loss"), "eval_loss": result.get("eval_loss"),
                   "perplexity": result.get("perplexity"), "evaluation": evaluation,
                   "stages": result.get("stages"), "device": result.get("device"),
                   **{k: result[k] for k in ("preference", "eval_preference", "grow", "rewards", "eval_rewards",
                                             "reward_errors") if result.get(k)},
                   "model_version_id": version.pk, "eta_s": 0}
        return {"summary": summary, "fields": {"current_step": max(run.current_step, result.get("total_steps") or 0)}}

    jobs.job_finish(job_id=job_id, status=Job.Status.SUCCEEDED, effects=register)
    return TrainingRun.objects.get(pk=run_id)


def run_fail(*, run_id: int, error: str, error_code: str = "E_TRAIN_FAILED") -> TrainingRun | None:
    """Fail an active run: `error` is shown to users (one line; no traceback), error_code names the cause."""
    if not TrainingRun.objects.filter(pk=run_id).exists():
        return None
    jobs.job_finish(job_id=run_job_id(run_id), status=Job.Status.FAILED, error=error, error_code=error_code)
    return TrainingRun.objects.get(pk=run_id)


def run_mark_cancelled(*, run_id: int, stopped_at: int | None = None) -> TrainingRun | None:
    if not TrainingRun.objects.filter(pk=run_id).exists():
        return None
    jobs.job_finish(job_id=run_job_id(run_id), status=Job.Status.CANCELLED,
                    result={"summary": {"stopped_at": stopped_at, "eta_s": None}})
    return TrainingRun.objects.get(pk=run_id)


def run_reconcile(*, stale_after_s: int | None = None) -> list[tuple[int, str]]:
    """Local runs left `running` by a worker that died: resumed from their checkpoint (queued again) or
    failed (keeping their metrics); lost messages sent again. Safe to call from any process at any time;
    returns [(run_id, "resumed" | "failed" | "cancelled" | "resent")]."""
    acted = job_reconciler.job_reconcile(kinds=["training.local"], stale_after_s=stale_after_s or HEARTBEAT_STALE_S)
    return [(job.target_id, action) for job, action in acted]
