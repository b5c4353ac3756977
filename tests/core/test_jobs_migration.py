"""The migrations that give existing runs and dataset versions their Job: state, holder and heartbeat move
over (a run a worker held keeps its holder, so the reconciler can still resume it)."""
from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("training", "0002_checkpoint"), ("datasets", "0003_version_worker_heartbeat"), ("core", "0001_job")]
AFTER = [("training", "0003_trainingrun_job"), ("datasets", "0004_datasetversion_job")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_rows_get_a_job_matching_their_state():
    old = _migrate(BEFORE)
    User = old.get_model("accounts", "User")
    Dataset, Version = old.get_model("datasets", "Dataset"), old.get_model("datasets", "DatasetVersion")
    Run = old.get_model("training", "TrainingRun")
    user = User.objects.create(username="old")
    ds = Dataset.objects.create(name="legacy", owner=user)
    ready = Version.objects.create(dataset=ds, number=1, status="ready", created_by=user)
    importing = Version.objects.create(dataset=ds, number=2, status="importing", worker="host:12", created_by=user,
                                       heartbeat_at=timezone.now(), progress={"requeued": 1})
    derived = Version.objects.create(dataset=ds, number=3, parent=ready, status="failed", error="x\ny")
    now = timezone.now()
    running = Run.objects.create(owner=user, dataset_version=ready, status="running", heartbeat_at=now,
                                 summary={"worker": "gpu:7", "resumed": 2}, current_step=5, total_steps=10,
                                 started_at=now)
    remote = Run.objects.create(owner=user, dataset_version=ready, backend="together", status="queued",
                                remote_job_id="ft-1", heartbeat_at=now)
    failed = Run.objects.create(owner=user, dataset_version=ready, status="failed",
                                error="RuntimeError: boom\n\nTraceback (most recent call last): ...")

    new = _migrate(AFTER)
    Job = new.get_model("core", "Job")
    NewRun, NewVersion = new.get_model("training", "TrainingRun"), new.get_model("datasets", "DatasetVersion")
    job = Job.objects.get(pk=NewRun.objects.get(pk=running.pk).job_id)
    assert (job.kind, job.status, job.holder, job.attempts, job.actor_name, job.queue_name, job.args) == (
        "training.local", "running", "gpu:7", 3, "train_run", "gpu", [running.pk])
    assert job.heartbeat_at == now and job.progress == {"current": 5, "total": 10, "unit": "steps"}
    job = Job.objects.get(pk=NewRun.objects.get(pk=remote.pk).job_id)
    assert (job.kind, job.status, job.actor_name, job.next_poll_at) == ("training.together", "queued",
                                                                       "together_run", now)
    job = Job.objects.get(pk=NewRun.objects.get(pk=failed.pk).job_id)
    assert job.status == "failed" and job.error == "RuntimeError: boom" and job.error_code == "E_TRAIN_FAILED"
    job = Job.objects.get(pk=NewVersion.objects.get(pk=importing.pk).job_id)
    assert (job.kind, job.status, job.holder, job.attempts) == ("dataset.import", "running", "host:12", 2)
    assert Job.objects.get(pk=NewVersion.objects.get(pk=ready.pk).job_id).status == "succeeded"
    job = Job.objects.get(pk=NewVersion.objects.get(pk=derived.pk).job_id)
    assert (job.kind, job.status, job.error, job.actor_name) == ("dataset.derive", "failed", "x", "")
    _migrate(_latest())


def _latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()
