"""Dramatiq actors for local training (queue `gpu`, 1 process x 1 thread in production).

The actor is thin: claim the run (idempotent: a finished, cancelled or live-elsewhere run is left
alone), build the engine job from the database, run the engine with a reporter that batches metric
rows and pushes one websocket event about once a second, then record the outcome through services.

A worker that dies mid-run is handled by :class:`RunReconciler` when a worker boots (and by
`python manage.py reconcile_runs`): runs with a checkpoint are queued again and resume from it; the
others are marked failed, keeping their metrics.
"""
from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

import dramatiq

from apps.core import liveness
from workers.boot import BootReconciler, install

log = logging.getLogger(__name__)

TIME_LIMIT_MS = 24 * 3600 * 1000
FLUSH_EVERY_S = 1.0


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
            from apps.training.services import run_resume_point

            self.flush()
            run_resume_point(run_id=self.run_id, step=step)
            return
        self.buffer.append((step, metrics))
        self.points += 1
        if metrics.get("kind") == "eval" or time.monotonic() - self.last_flush >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        from apps.training.services import run_progress_record

        if not self.buffer:
            return
        points, self.buffer = self.buffer, []
        total = next((m.get("total_steps") for _, m in reversed(points) if m.get("total_steps")), self.total_steps)
        run_progress_record(run_id=self.run_id, points=points, total_steps=total)
        self.last_flush = time.monotonic()

    def should_stop(self) -> bool:
        from apps.training.services import run_should_stop

        if not self.cancel:
            self.cancel = run_should_stop(run_id=self.run_id)
        return self.cancel

    def on_checkpoint(self, step: int, path: str, metrics: dict) -> None:
        from apps.training.services import checkpoint_record

        self.flush()
        checkpoint_record(run_id=self.run_id, step=step, path=path, eval_loss=metrics.get("eval_loss"),
                          stage=int(metrics.get("stage") or 0))


def build_job(run, *, evaluate: bool = True):
    """The engine job for a run (examples read from the database once, here)."""
    from django.conf import settings

    from apps.datasets.models import DatasetVersion
    from apps.training.services import version_examples
    from workers.engine.sft import Job, Stage, hp_with_defaults

    hp = hp_with_defaults(run.hyperparameters)
    stage_specs = run.hyperparameters.get("stages") or [{"dataset_version_id": run.dataset_version_id}]
    stages = []
    for i, spec in enumerate(stage_specs):
        version = DatasetVersion.objects.get(pk=spec["dataset_version_id"])
        train, val = version_examples(version)
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
    from apps.training.services import run_heartbeat

    return liveness.Heartbeat(lambda: run_heartbeat(run_id=run_id), every_s=every_s, name=f"heartbeat-run-{run_id}")


def execute_run(run_id: int) -> str:
    """Claim and run one training run in this process; returns its final status (or 'skipped')."""
    from apps.training import services
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
        services.run_fail(run_id=run_id, error=str(exc))
        return "failed"
    except Exception as exc:  # noqa: BLE001 - every failure must leave a message on the run
        log.exception("run %s failed", run_id)
        try:
            reporter.flush()
        except Exception:  # pragma: no cover
            pass
        tb = traceback.format_exc(limit=3)
        services.run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}\n\n{tb}")
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
                                               f"{type(exc).__name__}: {exc}")
        return "failed"


@dramatiq.actor(queue_name="gpu", max_retries=0, time_limit=TIME_LIMIT_MS, max_age=7 * 24 * 3600 * 1000)
def train_run(run_id: int) -> None:
    """Train one run (local backend)."""
    execute_run(run_id)


@dramatiq.actor(queue_name="gpu", max_retries=0, time_limit=60_000)
def reconcile_runs() -> None:
    from apps.training.services import run_reconcile

    for run_id, action in run_reconcile():
        log.warning("run %s left running by a dead worker: %s", run_id, action)


def _reconcile_runs():
    from apps.training.services import run_reconcile

    return run_reconcile()


class RunReconciler(BootReconciler):
    """On worker boot: runs left `running` by a dead worker resume from their checkpoint or fail."""

    def __init__(self):
        super().__init__("run", _reconcile_runs)


install(RunReconciler)
