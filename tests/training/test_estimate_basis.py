"""Estimates say where their throughput comes from (measured here from past runs, or a stated default), give
the whole run's time as a range, and add the time past runs spent outside training steps (issue 14 #1: a
28 s estimate for a run that took 8 min 49 s, and a scratch estimate "8000 tokens/s (measured here)")."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.training import services
from apps.training.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_scratch_estimate_states_a_default_not_a_measurement(member, qa_version):
    est = services.run_create(user=member, dataset_version_id=qa_version.pk, method="scratch",
                              hyperparameters={"size": "nano", "vocab_size": 1000, "max_steps": 10},
                              dry_run=True)["estimate"]
    assert est["throughput_measured"] is False
    assert est["throughput_basis"].startswith("default, not measured here")
    assert "measured on this machine" not in est["throughput_basis"]
    assert est["overhead_s"] is None
    assert est["seconds_low"] < est["seconds"] < est["seconds_high"]


def test_measured_throughput_and_overhead_come_from_past_runs(member, qa_version, tiny_base_model):
    now = timezone.now()
    for tps, train_s, wall_s in ((100.0, 20.0, 500.0), (120.0, 30.0, 530.0), (80.0, 25.0, 505.0)):
        TrainingRun.objects.create(
            owner=member, dataset_version=qa_version, base_model=tiny_base_model, method="lora",
            status=TrainingRun.Status.SUCCEEDED, started_at=now - timedelta(seconds=wall_s), finished_at=now,
            summary={"tokens_per_s": tps, "stages": [{"stage": 0, "seconds": train_s}]})
    est = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                              hyperparameters={"max_steps": 5}, dry_run=True)["estimate"]
    assert est["throughput_measured"] is True
    assert est["tokens_per_s"] == 100.0
    assert est["throughput_basis"] == "measured on this machine: median of the last 3 runs on this base model"
    assert est["overhead_s"] == pytest.approx(480.0, abs=1)  # the final evaluation, loading, saving
    training = est["tokens_processed"] / 100.0
    assert est["seconds"] == pytest.approx(training, rel=0.01)
    # the whole run: training at the spread of past throughputs plus their overhead
    assert est["seconds_low"] == pytest.approx(est["tokens_processed"] / 120.0 + 480.0, abs=1)
    assert est["seconds_high"] == pytest.approx(est["tokens_processed"] / 80.0 + 480.0, abs=1)


def test_dpo_without_history_names_the_factor(member, qa_version, tiny_base_model):
    from apps.training.services.estimates import throughput

    basis = throughput("tiny", method="dpo")
    assert not basis["measured"] and basis["basis"].startswith("no dpo run here yet")
