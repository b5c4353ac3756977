"""Each method, pipelines, crash + resume, cancel, relaunch, promote: real (tiny) training."""
from __future__ import annotations

import hashlib

import pytest

from apps.core.models import Job
from apps.training import services
from apps.training.models import Checkpoint, MetricPoint, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"max_steps": 16, "learning_rate": 3e-3, "batch_size": 4, "save_steps": 8, "eval_max_new_tokens": 4}


def _run(member, version, **kw):
    from workers.training import train_run

    hp = {**FAST, **kw.pop("hyperparameters", {})}
    run = services.run_create(user=member, dataset_version_id=version.pk, hyperparameters=hp, **kw)
    train_run.fn(run.pk)
    run.refresh_from_db()
    return run


def _train_points(run):
    return list(MetricPoint.objects.filter(run=run, kind="train").order_by("step").values_list("step", "values"))


def _falls(run):
    losses = [v["loss"] for _, v in _train_points(run)]
    return sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_full_finetune(member, qa_version, tiny_base_model, settings):
    run = _run(member, qa_version, base_model="tiny", method="full", hyperparameters={"learning_rate": 1e-3})
    assert run.status == "succeeded", run.error
    assert _falls(run)
    mv = run.model_version
    assert mv.kind == "full" and (settings.ARTIFACT_ROOT / mv.artifact_path / "model.safetensors").exists()


def test_scratch_builds_tokenizer_and_model(member, qa_version, settings):
    from transformers import AutoTokenizer

    from workers.engine.tiny import count_parameters

    run = _run(member, qa_version, method="scratch",
               hyperparameters={"size": "nano", "vocab_size": 400, "max_seq_len": 128, "max_steps": 20})
    assert run.status == "succeeded", run.error
    assert _falls(run)
    mv = run.model_version
    assert mv.kind == "full" and mv.base_model is None
    folder = settings.ARTIFACT_ROOT / mv.artifact_path
    tok = AutoTokenizer.from_pretrained(folder)
    text = "What is 7 plus 7? 7 plus 7 is 14. Ünïcode ✓"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # round-trips
    assert run.summary["estimate"]["parameters"] == count_parameters("nano", 400)


def test_continue_from_version_keeps_old_one(member, qa_version_factory, tiny_base_model, settings):
    first = _run(member, qa_version_factory(name="a"), base_model="tiny")
    assert first.status == "succeeded", first.error
    old = first.model_version
    adapter = settings.ARTIFACT_ROOT / old.artifact_path / "adapter_model.safetensors"
    before = hashlib.sha256(adapter.read_bytes()).hexdigest()
    second = _run(member, qa_version_factory(name="b", start=200), parent_version_id=old.pk)
    assert second.status == "succeeded", second.error
    assert second.hyperparameters["learning_rate"] == 3e-3  # explicit value wins over the lower default
    new = second.model_version
    assert new.parent_id == old.pk and new.base_model_id == "tiny" and new.pk != old.pk
    assert hashlib.sha256(adapter.read_bytes()).hexdigest() == before


def test_two_stage_pipeline_runs_both(member, qa_version_factory, tiny_base_model):
    from workers.training import train_run

    a, b = qa_version_factory(name="a"), qa_version_factory(name="b", start=300, n=12)
    run = services.run_create(user=member, base_model="tiny", hyperparameters={**FAST, "max_steps": 0},
                              stages=[{"dataset_version_id": a.pk, "epochs": 1}, {"dataset_version_id": b.pk, "epochs": 2}])
    assert run.total_steps == 6 + 6
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    points = _train_points(run)
    assert [s for s, _ in points] == list(range(1, 13))  # one curve across stages
    assert {v["stage"] for _, v in points} == {0, 1}
    assert [s["stage"] for s in run.summary["stages"]] == [0, 1]
    assert run.model_version.kind == "adapter"


def test_killed_worker_resumes_from_checkpoint(member, qa_version, tiny_base_model, monkeypatch):
    from workers import training

    original = training.RunReporter.on_checkpoint

    class Killed(BaseException):  # not an Exception: nothing in the actor catches it, like SIGKILL
        pass

    def die_after_first_checkpoint(self, step, path, metrics):
        original(self, step, path, metrics)
        raise Killed()

    monkeypatch.setattr(training.RunReporter, "on_checkpoint", die_after_first_checkpoint)
    run = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny", hyperparameters=FAST)
    with pytest.raises(Killed):
        training.train_run.fn(run.pk)
    monkeypatch.setattr(training.RunReporter, "on_checkpoint", original)
    run.refresh_from_db()
    assert run.status == "running" and run.current_step == 8
    # the worker process is gone: pretend its pid is dead, then a new worker boots
    import socket

    Job.objects.filter(pk=run.job_id).update(holder=f"{socket.gethostname()}:999999")
    assert services.run_reconcile() == [(run.pk, "resumed")]
    run.refresh_from_db()
    assert run.status == "queued"
    training.train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    steps = [s for s, _ in _train_points(run)]
    assert steps == list(range(1, 17))  # continued at step 9, no restart, no duplicates


def test_killed_worker_without_checkpoint_is_failed_with_metrics(member, qa_version, tiny_base_model):
    import socket

    run = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny", hyperparameters=FAST)
    TrainingRun.objects.filter(pk=run.pk).update(status="running", current_step=3)
    Job.objects.filter(pk=run.job_id).update(status="running", holder=f"{socket.gethostname()}:999999")
    MetricPoint.objects.create(run=run, step=1, values={"loss": 3.0})
    assert services.run_reconcile() == [(run.pk, "failed")]
    run.refresh_from_db()
    assert run.status == "failed" and "step 3" in run.error and run.job.error_code == "E_WORKER_LOST"
    assert MetricPoint.objects.filter(run=run).count() == 1


def test_live_worker_is_not_reconciled(member, qa_version, tiny_base_model):
    import os
    import socket

    from django.utils import timezone

    run = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny", hyperparameters=FAST)
    TrainingRun.objects.filter(pk=run.pk).update(status="running")
    Job.objects.filter(pk=run.job_id).update(status="running", heartbeat_at=timezone.now(),
                                             holder=f"{socket.gethostname()}:{os.getppid()}")
    assert services.run_reconcile() == []
    assert services.run_claim(run_id=run.pk) is None  # a re-delivered message does not start it twice


def test_cancel_stops_within_a_few_steps_and_keeps_checkpoint(member, qa_version, tiny_base_model, monkeypatch):
    from workers import training

    original = training.RunReporter.report

    def report(self, step, metrics):
        original(self, step, metrics)
        if step == 5:
            services.run_request_cancel(user=member, run_id=self.run_id)

    monkeypatch.setattr(training.RunReporter, "report", report)
    run = _run(member, qa_version, base_model="tiny", hyperparameters={"max_steps": 40})
    assert run.status == "cancelled"
    assert 5 <= run.summary["stopped_at"] <= 7
    last = Checkpoint.objects.filter(run=run, deleted=False).order_by("-step").first()
    assert last is not None and last.step == run.summary["stopped_at"]
    assert not hasattr(run, "model_version") or run.model_version is None


def test_relaunch_from_checkpoint_and_promote_best(member, qa_version, tiny_base_model, settings):
    from apps.registry.models import ModelVersion
    from workers.training import train_run

    run = _run(member, qa_version, base_model="tiny")
    assert run.status == "succeeded", run.error
    ckpts = list(Checkpoint.objects.filter(run=run, deleted=False).order_by("step"))
    assert [c.step for c in ckpts] == [8, 16] and all(c.eval_loss is not None for c in ckpts)
    new = services.run_relaunch(user=member, run_id=run.pk, checkpoint_id=ckpts[0].pk)
    train_run.fn(new.pk)
    new.refresh_from_db()
    assert new.status == "succeeded", new.error
    assert [s for s, _ in _train_points(new)] == list(range(9, 17))  # continues after step 8
    version = services.checkpoint_promote(user=member, run_id=run.pk)
    best = min(ckpts, key=lambda c: c.eval_loss)
    assert version.hyperparameters["step"] == best.step
    weights = settings.ARTIFACT_ROOT / version.artifact_path
    assert (weights / "adapter_model.safetensors").exists() and not (weights / "optimizer.pt").exists()
    assert ModelVersion.objects.filter(pk=version.pk, kind="adapter").exists()


def test_checkpoint_endpoints_relaunch_promote_compare(api, member, qa_version, tiny_base_model):
    run = _run(member, qa_version, base_model="tiny", hyperparameters={"max_steps": 8, "save_steps": 4})
    assert run.status == "succeeded", run.error
    ckpts = api.get(f"/api/runs/{run.pk}/checkpoints").json()
    assert [c["step"] for c in ckpts] == [4, 8] and all(c["id"] for c in ckpts)
    r = api.post(f"/api/runs/{run.pk}/promote", {}, content_type="application/json")  # best by validation loss
    assert r.status_code == 201 and r.json()["id"] == r.json()["model_version_id"]
    best = min(ckpts, key=lambda c: c["eval_loss"])
    assert api.get(f"/api/runs/{run.pk}/checkpoints").json()[ckpts.index(best)]["model_version_id"] == r.json()["id"]
    again = api.post(f"/api/runs/{run.pk}/promote", {"checkpoint_id": best["id"]}, content_type="application/json")
    assert again.status_code == 409
    r = api.post(f"/api/runs/{run.pk}/relaunch", {"checkpoint_id": ckpts[0]["id"]}, content_type="application/json")
    assert r.status_code == 201
    new = r.json()
    assert new["id"] != run.pk and new["status"] == "queued"
    assert [c["step"] for c in api.get(f"/api/runs/{new['id']}/checkpoints").json()] == [4]  # starts from it
    assert api.post(f"/api/runs/{run.pk}/relaunch", {"checkpoint_id": 999999},
                    content_type="application/json").status_code == 422
    cmp = api.get(f"/api/compare?ids={run.pk},{new['id']}").json()
    assert [x["id"] for x in cmp["runs"]] == [run.pk, new["id"]]
    assert cmp["runs"][0]["curves"]["train"]["x"] == list(range(1, 9))
    assert any(row["key"] == "learning_rate" for row in cmp["config"])
