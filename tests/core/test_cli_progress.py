"""apps/core/cli_progress.py: the management commands' progress display follows the jobs this process runs."""
from __future__ import annotations

import io

import pytest

from apps.core.cli_progress import job_progress
from apps.core.jobs import services as jobs

pytestmark = pytest.mark.django_db


def _job():
    return jobs.job_create(kind="training.local")


def test_lines_per_phase_without_a_terminal():
    stream = io.StringIO()
    with job_progress(stream, live=False) as display:
        job = _job()
        jobs.job_set_phase(job_id=job.pk, phase="loading")
        jobs.job_progress(job_id=job.pk, current=1, total=4, message="step 1", force=True)
        jobs.job_set_phase(job_id=job.pk, phase="training")
    assert [line.split(" · ")[1].split(" ")[0] for line in display.lines] == ["queued", "loading", "training"]
    assert stream.getvalue().count("\n") == 3
    assert jobs.EVENT_OBSERVERS == []  # removed when the block ends


def test_a_rich_bar_on_a_terminal_shows_current_of_total():
    stream = io.StringIO()
    with job_progress(stream, live=True) as display:
        job = _job()
        jobs.job_set_phase(job_id=job.pk, phase="training")
        jobs.job_progress(job_id=job.pk, current=3, total=4, message="step 3", force=True)
        task = display.bar.tasks[0]
        assert (task.completed, task.total) == (3, 4) and task.fields["message"] == "step 3"
        assert task.description.endswith("· training")
    assert "3/4" in stream.getvalue()


def test_disabled_shows_nothing():
    stream = io.StringIO()
    with job_progress(stream, enabled=False) as display:
        jobs.job_set_phase(job_id=_job().pk, phase="training")
    assert display is None and stream.getvalue() == "" and jobs.EVENT_OBSERVERS == []
