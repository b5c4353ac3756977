"""The gpu actor really trains the tiny model (seconds on CPU)."""
from __future__ import annotations

import pytest

from apps.training import services
from apps.training.models import MetricPoint, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"max_steps": 24, "learning_rate": 3e-3, "batch_size": 4, "save_steps": 8, "lora_r": 8,
        "eval_max_new_tokens": 8}


def _create(member, version, **kw):
    hp = {**FAST, **kw.pop("hyperparameters", {})}
    return services.run_create(user=member, dataset_version_id=version.pk, base_model=kw.pop("base_model", "tiny"),
                               hyperparameters=hp, **kw)


def _losses(run):
    return [p.values["loss"] for p in MetricPoint.objects.filter(run=run, kind="train").order_by("step")]


def test_lora_run_trains_registers_adapter_and_reports(member, qa_version, tiny_base_model, settings):
    from apps.registry.models import ModelVersion
    from workers.training import train_run

    run = _create(member, qa_version)
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    losses = _losses(run)
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4  # the loss falls
    mv = ModelVersion.objects.get(run=run)
    assert mv.kind == "adapter" and mv.base_model_id == "tiny"
    assert (settings.ARTIFACT_ROOT / mv.artifact_path / "adapter_model.safetensors").exists()
    assert mv.final_loss == pytest.approx(run.summary["final_loss"])
    assert run.summary["model_version_id"] == mv.pk
    assert run.summary["tokens_per_s"] > 0 and run.summary["steps_per_s"] > 0
    assert run.summary["eval_loss"] is not None and run.summary["perplexity"] > 1
    sbs = run.summary["evaluation"]["side_by_side"]
    assert sbs and {"prompt", "base", "trained"} <= set(sbs[0])
    assert MetricPoint.objects.filter(run=run, kind="eval").exists()
    assert run.checkpoints.filter(deleted=False).count() == 2  # keep last K=2 of 3 saves


def test_actor_is_idempotent(member, qa_version, tiny_base_model):
    from workers.training import execute_run

    run = _create(member, qa_version, hyperparameters={"max_steps": 2})
    assert execute_run(run.pk) == "succeeded"
    assert execute_run(run.pk) == "skipped"
    assert TrainingRun.objects.get(pk=run.pk).status == "succeeded"


def test_oom_is_reported_with_advice(member, qa_version, tiny_base_model, monkeypatch):
    import torch
    from transformers import Trainer

    from workers.training import train_run

    def boom(self, *a, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "training_step", boom)
    run = _create(member, qa_version)
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "Out of memory" in run.error and "batch_size" in run.error and "max_seq_len" in run.error


def test_engine_error_leaves_failed_not_running(member, qa_version, tiny_base_model, monkeypatch):
    from workers import training

    monkeypatch.setattr(training, "build_job", lambda run, **kw: (_ for _ in ()).throw(RuntimeError("disk on fire")))
    run = _create(member, qa_version)
    training.train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "disk on fire" in run.error


def test_heartbeat_thread_beats_while_the_engine_is_silent(member, qa_version, tiny_base_model):
    import time

    from apps.training.models import TrainingRun
    from workers.training import Heartbeat

    from apps.core.models import Job

    run = _create(member, qa_version)
    assert run.job.heartbeat_at is None
    run = services.run_claim(run_id=run.pk)  # this process holds the run's job
    Job.objects.filter(pk=run.job_id).update(heartbeat_at=None)
    with Heartbeat(run.pk, every_s=0.05):
        time.sleep(0.3)
    assert Job.objects.get(pk=run.job_id).heartbeat_at is not None
