"""Runs through the job lifecycle: phases and elapsed time on the page and in the API, a cancel honoured
during post-training evaluation, one-line coded errors (tracebacks only in the log)."""
from __future__ import annotations

import pytest

from apps.core.models import Job
from apps.training import services
from apps.training.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"max_steps": 4, "learning_rate": 3e-3, "batch_size": 4, "save_steps": 2, "eval_max_new_tokens": 4}


def _create(member, version, **hp):
    return services.run_create(user=member, dataset_version_id=version.pk, base_model="tiny",
                               hyperparameters={**FAST, **hp})


def test_run_reports_its_phases_and_duration(member, qa_version, tiny_base_model, monkeypatch):
    from workers import training

    seen = []
    original = services.run_set_phase

    def spy(*, run_id, phase):
        seen.append(phase)
        original(run_id=run_id, phase=phase)

    monkeypatch.setattr(services, "run_set_phase", spy)
    run = _create(member, qa_version)
    assert run.job.kind == "training.local" and run.job.phase == "queued"
    assert training.execute_run(run.pk) == "succeeded"
    assert seen[0] == "loading" and "training" in seen and "saving" in seen and "evaluating" in seen
    run.refresh_from_db()
    job = Job.objects.get(pk=run.job_id)
    assert job.status == "succeeded" and job.phase == "registering" and job.holder == ""
    assert job.progress == {"current": 4, "total": 4, "unit": "steps"}
    from apps.training.selectors import run_as_dict

    out = run_as_dict(run)
    assert out["phase"] == "" and out["elapsed_s"] is None and out["duration_s"] > 0 and out["job_id"] == job.pk


def test_cancel_during_post_training_evaluation_ends_cancelled(member, qa_version, tiny_base_model, monkeypatch,
                                                              settings):
    """Regression: a cancel asked while the run evaluated (after training) was ignored: it succeeded."""
    from apps.registry.models import ModelVersion
    from workers import training
    from workers.engine import evaluate

    original = evaluate._generate
    asked = []

    def generate(*args, **kwargs):
        if not asked:
            asked.append(services.run_request_cancel(user=member, run_id=run.pk).pk)
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluate, "_generate", generate)
    run = _create(member, qa_version)
    assert training.execute_run(run.pk) == "cancelled"
    run.refresh_from_db()
    assert asked and run.status == "cancelled" and run.summary["stopped_at"] == 4
    assert not ModelVersion.objects.filter(run=run).exists()
    assert (settings.ARTIFACT_ROOT / run.output_dir / "stage-0" / "final" / "adapter_model.safetensors").exists()
    assert run.checkpoints.filter(deleted=False, step=4).exists()  # its weights and checkpoint are kept


def test_engine_error_is_one_line_with_a_code_and_no_traceback(member, qa_version, tiny_base_model, monkeypatch,
                                                              caplog, api):
    """Regression: users saw the full Python traceback (with server paths) in a run's error."""
    from workers import training

    def broken(run, **kw):
        raise RuntimeError("cannot read /srv/hub/data/artifacts/runs/x.bin")

    monkeypatch.setattr(training, "build_job", broken)
    run = _create(member, qa_version)
    assert training.execute_run(run.pk) == "failed"
    run.refresh_from_db()
    assert "Traceback" not in run.error and "\n" not in run.error and "/srv/hub" not in run.error
    assert run.error.startswith("RuntimeError: cannot read") and run.error.endswith("x.bin")
    assert run.job.error_code == "E_TRAIN_FAILED"
    assert "Traceback" in caplog.text  # the traceback goes to the log
    body = api.get(f"/api/runs/{run.pk}").json()
    assert body["error_code"] == "E_TRAIN_FAILED" and body["error"] == run.error


def test_run_page_shows_phase_and_elapsed_not_eta_while_evaluating(member, qa_version, tiny_base_model, client):
    """Regression: during evaluation the page showed "running · ETA 0 s" with no phase and no elapsed time."""
    run = _create(member, qa_version)
    services.run_claim(run_id=run.pk)
    TrainingRun.objects.filter(pk=run.pk).update(current_step=4, summary={**run.summary, "eta_s": 0, "loss": 1.0})
    services.run_set_phase(run_id=run.pk, phase="evaluating")
    run.refresh_from_db()
    assert run.summary["eta_s"] is None  # entering evaluation clears the training ETA
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="run-phase" class="badge" data-phase="evaluating"' in html
    assert '<dd id="stat-phase">evaluating</dd>' in html
    assert 'id="stat-time-label">Elapsed<' in html and 'data-started-at="20' in html
    assert '<dd class="mono" id="stat-eta">evaluating…</dd>' in html  # not "0 s", not blank
    listing = client.get("/runs/").content.decode()
    assert "· evaluating" in listing
    from apps.training.selectors import run_as_dict

    out = run_as_dict(TrainingRun.objects.select_related("job").get(pk=run.pk))
    assert out["phase"] == "evaluating" and out["elapsed_s"] is not None and out["duration_s"] is None
