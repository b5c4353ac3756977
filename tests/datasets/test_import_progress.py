"""`manage.py import_dataset` shows its progress (issue 14): a rich bar of the rows read and validated on a
terminal, one line per phase elsewhere, nothing with -v 0; the bar follows the import job's events, which the
pipeline sends per batch of rows and the service throttles (no per-row work)."""
from __future__ import annotations

import io
import itertools

import pytest
from django.core.management import call_command

from apps.core.jobs import services as jobs
from apps.datasets.models import DatasetVersion
from apps.datasets.validation import pipeline

from .conftest import good_rows, write_jsonl

pytestmark = pytest.mark.django_db


class _Terminal(io.StringIO):
    def isatty(self) -> bool:  # what apps.core.cli_progress asks before drawing a rich bar
        return True


@pytest.fixture
def admin(make_user):
    return make_user("admin", "admin")


@pytest.fixture
def every_batch(monkeypatch):
    """Lift the time throttles so that every batch of the pipeline reaches the display."""
    from apps.datasets.services import imports

    ticks = itertools.count(start=1000, step=10)
    monkeypatch.setattr(imports, "time", type("T", (), {"monotonic": staticmethod(lambda: next(ticks)),
                                                         "time": staticmethod(__import__("time").time)}))
    monkeypatch.setattr(jobs, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(pipeline.batched, "__defaults__", (10,))  # batches of 10 rows


def _import(path, *args, stderr=None):
    out = io.StringIO()
    call_command("import_dataset", str(path), "--name", "cli", *args, stdout=out, stderr=stderr or io.StringIO())
    return DatasetVersion.objects.get(pk=int(out.getvalue().strip()))


def test_a_terminal_gets_a_bar_of_the_rows_validated(tmp_path, admin, every_batch):
    path = write_jsonl(tmp_path / "big.jsonl", good_rows(45))
    seen = []
    jobs.EVENT_OBSERVERS.append(lambda event, p: seen.append((p.get("progress") or {}).get("current")))
    try:
        err = _Terminal()
        v = _import(path, stderr=err)
    finally:
        jobs.EVENT_OBSERVERS.pop()
    assert v.status == "ready" and v.example_count == 45
    counts = [c for c in seen if c is not None]
    assert len(counts) >= 3 and counts == sorted(counts) and counts[0] < 45  # increasing, seen before the end
    text = err.getvalue()
    assert "Dataset import" in text and "45/45" in text  # the bar, full at the end, then the summary line
    assert "dataset " in text and "45 examples" in text


def test_updates_come_per_batch_not_per_row(tmp_path, admin, monkeypatch):
    """Without the throttles lifted a 3 000-row file sends a handful of progress events, not 3 000."""
    path = write_jsonl(tmp_path / "rows.jsonl", good_rows(3000))
    calls = []
    real = jobs.job_progress
    monkeypatch.setattr(jobs, "job_progress", lambda **kw: calls.append(kw) or real(**kw))
    v = _import(path, stderr=_Terminal())
    assert v.example_count == 3000 and len(calls) <= 3000 // pipeline.BATCH + 1


def test_without_a_terminal_one_line_per_phase(tmp_path, admin):
    err = io.StringIO()
    _import(write_jsonl(tmp_path / "ok.jsonl", good_rows(12)), stderr=err)
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("Dataset import · ") and "\x1b[" not in err.getvalue()  # plain text, no bar
    assert lines[-1].endswith("12 examples, 0 errors, 0 warnings")


def test_verbosity_0_is_silent(tmp_path, admin, every_batch):
    err = _Terminal()
    v = _import(write_jsonl(tmp_path / "ok.jsonl", good_rows(30)), "-v", "0", stderr=err)
    assert v.status == "ready" and err.getvalue() == "" and jobs.EVENT_OBSERVERS == []
