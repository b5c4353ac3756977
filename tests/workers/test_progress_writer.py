"""The training worker's progress writer survives a busy database (issue 7, "Database lock": a run failed
with "database is locked" in the progress writer while an import held SQLite's write lock)."""
import pytest
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_a_locked_database_keeps_the_points_for_the_next_flush(member, qa_version, tiny_base_model, monkeypatch):
    from apps.training import services
    from apps.training.models import MetricPoint
    from workers import training

    run = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                              hyperparameters={"max_steps": 10})
    real = services.run_progress_record
    calls = []

    def locked_once(**kw):
        calls.append([s for s, _ in kw["points"]])
        if len(calls) == 1:
            raise OperationalError("database is locked")
        return real(**kw)
    monkeypatch.setattr(services, "run_progress_record", locked_once)

    reporter = training.RunReporter(run.pk, 10)
    reporter.report(1, {"kind": "train", "loss": 2.0})  # the first flush meets the lock: nothing raised
    assert calls == [[1]] and [s for s, _ in reporter.buffer] == [1]
    assert MetricPoint.objects.filter(run=run).count() == 0
    reporter.report(2, {"kind": "eval", "eval_loss": 1.8})  # the next flush writes both points
    assert calls == [[1], [1, 2]]
    assert reporter.buffer == []
    assert sorted(MetricPoint.objects.filter(run=run).values_list("step", flat=True)) == [1, 2]
    run.refresh_from_db()
    assert run.current_step == 2


def test_a_locked_database_during_the_cancel_check_does_not_stop_the_run(member, qa_version, tiny_base_model,
                                                                         monkeypatch):
    from apps.training import services
    from workers import training

    run = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                              hyperparameters={"max_steps": 10})

    def locked(**kw):
        raise OperationalError("database is locked")
    monkeypatch.setattr(services, "run_should_stop", locked)
    assert training.RunReporter(run.pk, 10).should_stop() is False
