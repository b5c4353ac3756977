"""Job kinds of training runs (registered with apps.core.jobs): "training.local" (the gpu worker trains
it, apps/training/services/lifecycle.py) and "training.together" (remote, one message per step,
apps/training/backends/together/lifecycle.py).

The hooks keep the TrainingRun (the domain row: status, error, timings, cancel flag, summary) in step with
its Job. They run inside the lifecycle's transaction, with the Job row locked, and write only the run.
A run's phases: queued, (grow runs: growing), loading, tokenizing, training, evaluating, saving, registering
(remote runs: submitting, then queued / training at Together).
"""
from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.core.jobs.registry import FAIL, REQUEUE, JobKind, register_kind
from apps.core.realtime import run_group
from apps.training.models import Checkpoint, TrainingRun

RUN_PHASES = ("queued", "growing", "loading", "tokenizing", "training", "evaluating", "saving", "registering")
WORKING_PHASES = RUN_PHASES[1:]
# run fields a finishing caller may set through job_finish(result={"fields": {...}})
_FINISH_FIELDS = ("current_step", "total_steps", "remote_job_id")


def run_of(job) -> TrainingRun | None:
    """The job's run, read fresh (and cached on the job object for the rest of this change)."""
    cached = job.__dict__.get("_run")
    if cached is None or cached.pk != job.target_id:
        cached = TrainingRun.objects.filter(pk=job.target_id).first()
        job.__dict__["_run"] = cached
    return cached


class _RunKind(JobKind):
    phases = RUN_PHASES

    def target(self, job):
        return run_of(job)

    def target_label(self, job) -> str:
        run = run_of(job)
        return f"run #{job.target_id}" + (f" {run.name}" if run is not None and run.name else "")

    def target_url(self, job) -> str | None:
        return reverse("training:detail", args=[job.target_id]) if job.target_id else None

    def groups(self, job) -> list[str]:
        return [run_group(job.target_id)] if job.target_id else []

    def payload(self, job) -> dict:
        run = run_of(job)
        if run is None:
            return {"run_id": job.target_id}
        return {"run_id": run.pk, "run_status": run.status, "current_step": run.current_step,
                "total_steps": run.total_steps, "model_version_id": (run.summary or {}).get("model_version_id")}

    def _save(self, run: TrainingRun, *fields: str) -> None:
        run.save(update_fields=sorted(set(fields)))

    def on_phase(self, job, phase: str) -> None:
        run = run_of(job)
        if run is None:
            return
        fields = []
        if phase in WORKING_PHASES and run.status == TrainingRun.Status.QUEUED:
            run.status = TrainingRun.Status.RUNNING
            run.started_at = run.started_at or timezone.now()
            fields += ["status", "started_at"]
        if phase != "training" and (run.summary or {}).get("eta_s") is not None:
            run.summary = {**run.summary, "eta_s": None}  # no "ETA 0 s" while it evaluates or saves
            fields.append("summary")
        if fields:
            self._save(run, *fields)

    def on_finish(self, job, status: str, result: dict) -> None:
        run = run_of(job)
        if run is None:
            return
        run.status = status
        run.error = job.error
        run.finished_at = job.finished_at
        summary = {**(run.summary or {}), **(result.get("summary") or {})}
        if status != TrainingRun.Status.SUCCEEDED:
            summary["eta_s"] = None
        if status == TrainingRun.Status.CANCELLED and result.get("worker_lost"):
            summary.setdefault("stopped_at", run.current_step)
        run.summary = summary
        fields = ["status", "error", "finished_at", "summary"]
        for name, value in (result.get("fields") or {}).items():
            if name in _FINISH_FIELDS:
                setattr(run, name, value)
                fields.append(name)
        self._save(run, *fields)

    def retry_problem(self, job) -> str | None:
        problem = super().retry_problem(job)
        if problem:
            return problem
        if run_of(job) is None:
            return "Its run no longer exists."
        return None

    def _reset_for_retry(self, run: TrainingRun) -> list[str]:
        run.error = ""
        run.finished_at = None
        run.cancel_requested = False
        run.summary = {**(run.summary or {}), "retried": int((run.summary or {}).get("retried") or 0) + 1,
                       "eta_s": None}
        return ["error", "finished_at", "cancel_requested", "summary"]


@register_kind
class LocalRunKind(_RunKind):
    """A run trained by the hub's own gpu worker (workers.training.train_run)."""

    kind = "training.local"
    label = "Training run (local)"
    actor_name = "train_run"
    queue_name = "gpu"
    requeued_label = "resumed"
    stale_after_s = 120.0
    lost_after_s = 600.0  # only counted while nothing runs on the gpu queue

    def on_claim(self, job) -> None:
        job.phase = "loading"
        run = run_of(job)
        if run is None:
            return
        run.status = TrainingRun.Status.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.error = ""
        self._save(run, "status", "started_at", "error")

    def on_cancel_requested(self, job) -> bool:
        run = run_of(job)
        if run is not None:
            run.cancel_requested = True
            self._save(run, "cancel_requested")
        return job.status == job.Status.QUEUED and not job.holder  # never started: nothing to stop

    def on_holder_dead(self, job):
        run = run_of(job)
        if run is None:
            return FAIL, "Its run no longer exists."
        has_checkpoint = any((settings.ARTIFACT_ROOT / c.path).is_dir()
                             for c in Checkpoint.objects.filter(run=run, deleted=False))
        if has_checkpoint:
            return REQUEUE
        return FAIL, (f"The worker stopped (killed or crashed) at step {run.current_step} before any checkpoint "
                      f"was written; the metrics so far are kept.")

    def exhausted_message(self, job) -> str:
        return (f"The worker stopped {job.attempts} times while training this run (killed, or out of memory), so "
                f"it was not resumed again; its checkpoints are kept: relaunch from one or lower the memory use.")

    def on_requeue(self, job, reason: str) -> None:
        run = run_of(job)
        if run is None:
            return
        run.status = TrainingRun.Status.QUEUED
        fields = ["status"]
        if reason == "retry":
            fields += self._reset_for_retry(run)
        else:
            run.summary = {**(run.summary or {}), "resumed": int((run.summary or {}).get("resumed") or 0) + 1,
                           "eta_s": None}
            fields.append("summary")
        self._save(run, *fields)


@register_kind
class TogetherRunKind(_RunKind):
    """A run fine-tuned on Together.ai: each message does one step (submit, or one status poll) and the
    job is released between steps, with next_poll_at telling when the next one is due."""

    kind = "training.together"
    label = "Training run (Together.ai)"
    actor_name = "together_run"
    queue_name = "default"
    stale_after_s = 120.0
    lost_after_s = 600.0

    @property
    def poll_stall_s(self) -> float:
        return max(300.0, 5 * float(settings.TOGETHER_POLL_INTERVAL_S))

    def on_claim(self, job) -> None:
        run = run_of(job)
        if run is not None and not run.remote_job_id:
            job.phase = "submitting"

    def on_cancel_requested(self, job) -> bool:
        run = run_of(job)
        if run is None:
            return True
        run.cancel_requested = True
        self._save(run, "cancel_requested")
        return not run.remote_job_id and not job.holder  # nothing was submitted: nothing to stop remotely

    def after_cancel_requested(self, job) -> None:
        from apps.training.backends.together.lifecycle import together_remote_cancel

        together_remote_cancel(run_id=job.target_id)

    def on_requeue(self, job, reason: str) -> None:
        run = run_of(job)
        if run is None or reason != "retry":
            return  # a step whose process died: the next one picks up from the run row
        run.status = TrainingRun.Status.QUEUED
        fields = ["status", *self._reset_for_retry(run)]
        remote_status = (run.summary or {}).get("remote_status")
        if remote_status in ("error", "user_error", "cancelled", "completed", None):
            run.remote_job_id = ""  # that remote job is over: submit a new one
            fields.append("remote_job_id")
        self._save(run, *fields)
