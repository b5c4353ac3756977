"""Dramatiq actors for local training (queue `gpu`, 1 process x 1 thread in production).

The actor is thin: claim the run's job (idempotent: a finished, cancelled or live-elsewhere run is left
alone), build the engine job from the database, run the engine with a reporter that batches metric
rows and pushes one websocket event about once a second and passes the engine's phases on to the job,
then record the outcome through services: one line and an error code for users, the traceback only in
the log.

A worker that dies mid-run is handled by the job reconciler (workers/periodic.py: at worker boot and
every 30 s; `python manage.py reconcile_runs` by hand): runs with a checkpoint are queued again and
resume from it; the others are marked failed, keeping their metrics.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import dramatiq
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from apps.core import liveness
from apps.datasets.models import DatasetVersion
from apps.training import services

log = logging.getLogger(__name__)

TIME_LIMIT_MS = 24 * 3600 * 1000
FLUSH_EVERY_S = 1.0


def _drop_broken_connection() -> None:
    """After a database error: a connection that no longer works is closed (the next query opens a new
    one); a working one (SQLite was only busy) is kept."""
    if connection.connection is not None and not connection.in_atomic_block and not connection.is_usable():
        connection.close()


class RunReporter:
    """report(step, metrics) / should_stop() / on_checkpoint(...) for the engine."""

    def __init__(self, run_id: int, total_steps: int | None = None):
        self.run_id = run_id
        self.total_steps = total_steps
        self.buffer: list[tuple[int, dict]] = []
        self.last_flush = 0.0
        self.last_cancel_check = 0.0
        self.cancel = False
        self.points = 0

    def report(self, step: int, metrics: dict) -> None:
        if metrics.get("kind") == "resume":
            self.flush()
            services.run_resume_point(run_id=self.run_id, step=step)
            return
        if metrics.get("kind") == "phase":  # loading, training, saving, evaluating (the engine's own phases)
            self.flush()
            services.run_set_phase(run_id=self.run_id, phase=metrics["phase"])
            return
        self.buffer.append((step, metrics))
        self.points += 1
        if metrics.get("kind") == "eval" or time.monotonic() - self.last_flush >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Write the buffered points in one short transaction. A database that is busy or unreachable
        for longer than its timeout (SQLite: "database is locked") never fails the run: the points stay
        buffered and go with the next flush."""
        if not self.buffer:
            return
        points = self.buffer
        total = next((m.get("total_steps") for _, m in reversed(points) if m.get("total_steps")), self.total_steps)
        self.last_flush = time.monotonic()
        try:
            services.run_progress_record(run_id=self.run_id, points=points, total_steps=total)
        except (OperationalError, InterfaceError) as exc:
            log.warning("run %s: %d progress points not written yet (%s); kept for the next flush",
                        self.run_id, len(points), exc)
            _drop_broken_connection()
            return
        self.buffer = []

    def should_stop(self) -> bool:
        if not self.cancel:
            try:
                self.cancel = services.run_should_stop(run_id=self.run_id)
            except (OperationalError, InterfaceError) as exc:  # asked again at the next step
                log.warning("run %s: cancel check failed (%s)", self.run_id, exc)
                _drop_broken_connection()
        return self.cancel

    def on_checkpoint(self, step: int, path: str, metrics: dict) -> None:
        self.flush()
        services.checkpoint_record(run_id=self.run_id, step=step, path=path, eval_loss=metrics.get("eval_loss"),
                          stage=int(metrics.get("stage") or 0))


def build_job(run, *, evaluate: bool = True):
    """The engine job for a run (examples read from the database once, here)."""
    from workers.engine.sft import Job, Stage, hp_with_defaults

    hp = hp_with_defaults(run.hyperparameters)
    stage_specs = run.hyperparameters.get("stages") or [{"dataset_version_id": run.dataset_version_id}]
    stages = []
    for i, spec in enumerate(stage_specs):
        version = DatasetVersion.objects.get(pk=spec["dataset_version_id"])
        if run.method in ("dpo", "kto"):  # preference pairs (workers/engine/dpo, workers/engine/kto)
            train, val = services.version_preference_pairs(version)
        elif run.method == "grpo":  # tasks with their answers / tests (workers/engine/grpo)
            train, val = services.version_tasks(version)
        else:
            train, val = services.version_examples(version)
        if not val and len(train) >= 20:  # no validation split: hold a few out (deterministically)
            n = max(2, min(50, len(train) // 20))
            train, val = train[:-n], train[-n:]
        stages.append(Stage(train=train, validation=val, epochs=spec.get("epochs"), max_steps=spec.get("max_steps"),
                            name=f"stage {i + 1}"))
    base_path = run.base_model.path if run.base_model else None
    adapter_path = None
    if run.parent_version_id:
        parent_dir = str(settings.ARTIFACT_ROOT / run.parent_version.artifact_path)
        if run.parent_version.kind == "adapter":
            adapter_path = parent_dir
            base_path = run.parent_version.base_model.path
        else:
            base_path = parent_dir
    return Job(method=run.method, output_dir=Path(settings.ARTIFACT_ROOT) / run.output_dir, stages=stages, hp=hp,
               base_model_path=base_path, adapter_path=adapter_path, evaluate=evaluate)


def Heartbeat(run_id: int, every_s: float = 30.0) -> liveness.Heartbeat:
    """Beats for `run_id` while the engine works (tokenizing, a long step, evaluation)."""
    return liveness.Heartbeat(lambda: services.run_heartbeat(run_id=run_id), every_s=every_s,
                              name=f"heartbeat-run-{run_id}")


def execute_run(run_id: int) -> str:
    """Claim and run one training run in this process; returns its final status (or 'skipped')."""
    from workers.engine.sft import TrainingOOM, run_training

    run = services.run_claim(run_id=run_id)
    if run is None:
        return "skipped"
    reporter = RunReporter(run.pk, run.total_steps or None)
    try:
        with Heartbeat(run_id):
            job = build_job(run)
            if run.hyperparameters.get("gpus", 1) > 1:
                from workers.engine.launch import run_distributed

                result = run_distributed(job, gpus=int(run.hyperparameters["gpus"]), report=reporter.report,
                                         should_stop=reporter.should_stop, on_checkpoint=reporter.on_checkpoint)
            else:
                result = run_training(job, report=reporter.report, should_stop=reporter.should_stop,
                                      on_checkpoint=reporter.on_checkpoint)
        reporter.flush()
    except TrainingOOM as exc:
        reporter.flush()
        services.run_fail(run_id=run_id, error=str(exc), error_code="E_OOM")
        return "failed"
    except Exception as exc:  # noqa: BLE001 - every failure must leave a message on the run
        log.exception("run %s failed", run_id)  # the traceback goes to the log only, never to users
        try:
            reporter.flush()
        except Exception:  # pragma: no cover
            pass
        services.run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}", error_code="E_TRAIN_FAILED")
        return "failed"
    try:
        if result.get("stopped"):
            services.run_mark_cancelled(run_id=run_id, stopped_at=result.get("stopped_at"))
            return "cancelled"
        services.run_succeed(run_id=run_id, result=result)
        return "succeeded"
    except Exception as exc:  # noqa: BLE001 - registering the result failed: the run must not stay running
        log.exception("run %s: finishing failed", run_id)
        services.run_fail(run_id=run_id, error=f"Training finished but recording its result failed: "
                                               f"{type(exc).__name__}: {exc}", error_code="E_RESULT_NOT_RECORDED")
        return "failed"


@dramatiq.actor(queue_name="gpu", max_retries=0, time_limit=TIME_LIMIT_MS, max_age=7 * 24 * 3600 * 1000)
def train_run(run_id: int) -> None:
    """Train one run (local backend)."""
    execute_run(run_id)
