"""Imports whose worker died are re-queued (raw upload kept) or failed, on worker boot and by command."""
import io
import socket
import subprocess
import sys
from datetime import timedelta

import dramatiq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from apps.core.models import Job
from apps.datasets import services
from apps.datasets.models import DatasetVersion, Example

from .conftest import good_rows


def _file(rows, name="d.jsonl"):
    import json
    return SimpleUploadedFile(name, "\n".join(json.dumps(r) for r in rows).encode())


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _queued() -> int:
    broker = dramatiq.get_broker()
    return broker.queues["default"].qsize() if "default" in broker.queues else 0


def _interrupted(member, *, worker, heartbeat_at=None, rows=30, name="big"):
    """A background import that a worker claimed and had written a few rows for when it died."""
    v = services.dataset_import(user=member, name=name, file=_file(good_rows(rows)), background=True)
    for i in range(3):
        Example.objects.create(version=v, index=i, messages=[{"role": "user", "content": "x"}], content_hash=str(i))
    DatasetVersion.objects.filter(pk=v.pk).update(
        progress={"stage": "validating", "examples": 3, "total": rows, "columns": {}})
    _held_by(v, worker, heartbeat_at)
    return v


def _held_by(v, worker, heartbeat_at=None):
    """What a worker's claim leaves on the version's job (its holder and last heartbeat)."""
    Job.objects.filter(pk=v.job_id).update(status="running", holder=worker,
                                           heartbeat_at=heartbeat_at or timezone.now())


def _page(client, v):
    return client.get(f"/datasets/{v.dataset_id}/?version={v.pk}").content.decode()


def test_worker_records_itself_and_heartbeat(member):
    v = services.dataset_import(user=member, name="bg", file=_file(good_rows(12)), background=True)
    assert v.job.holder == "" and v.job.heartbeat_at is None and v.job.kind == "dataset.import"
    from workers.datasets import import_dataset_version
    import_dataset_version.fn(v.pk)
    v.refresh_from_db()
    job = Job.objects.get(pk=v.job_id)
    assert v.status == "ready" and job.status == "succeeded" and job.heartbeat_at is not None
    assert job.started_at is not None and job.holder == ""  # released once finished


def test_dead_worker_same_host_is_requeued_and_finishes(member, client, django_capture_on_commit_callbacks):
    v = _interrupted(member, worker=f"{socket.gethostname()}:{_dead_pid()}")
    before = _queued()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.version_reconcile_imports() == [(v.pk, "requeued")]
    v.refresh_from_db()
    assert v.status == "importing" and v.examples.count() == 0  # partial rows deleted
    assert Job.objects.get(pk=v.job_id).holder == "" and Job.objects.get(pk=v.job_id).status == "queued"
    assert v.progress["stage"] == "queued" and v.progress["requeued"] == 1
    assert _queued() == before + 1
    client.force_login(member)
    assert "queued again (1×)" in _page(client, v)
    from workers.datasets import import_dataset_version
    import_dataset_version.fn(v.pk)  # what the worker runs for the re-sent message
    v.refresh_from_db()
    assert v.status == "ready" and v.examples.count() == 30 and v.error == ""
    assert list(v.examples.values_list("index", flat=True)) == list(range(30))
    assert "Train on this dataset" in _page(client, v)


def test_live_holder_is_left_alone_and_redelivery_is_harmless(member):
    # the parent process (pytest's launcher, or the shell) is alive on this host
    v = _interrupted(member, worker=f"{socket.gethostname()}:{__import__('os').getppid()}")
    assert services.version_reconcile_imports() == []
    from workers.datasets import import_dataset_version
    import_dataset_version.fn(v.pk)  # a duplicate message while the holder works: nothing happens
    v.refresh_from_db()
    assert v.status == "importing" and v.examples.count() == 3


def test_other_host_uses_heartbeat_threshold(member, django_capture_on_commit_callbacks):
    fresh = _interrupted(member, worker="elsewhere:4242", name="fresh")
    stale = _interrupted(member, worker="elsewhere:4243", name="stale",
                         heartbeat_at=timezone.now() - timedelta(seconds=services.IMPORT_STALE_S + 60))
    with django_capture_on_commit_callbacks(execute=True):
        actions = services.version_reconcile_imports()
    assert actions == [(stale.pk, "requeued")]
    fresh.refresh_from_db()
    assert fresh.status == "importing" and fresh.examples.count() == 3
    assert Job.objects.get(pk=fresh.job_id).holder == "elsewhere:4242"
    # a smaller threshold (the command's --stale-after) takes the fresh one too
    with django_capture_on_commit_callbacks(execute=True):
        assert services.version_reconcile_imports(stale_after_s=0) == [(fresh.pk, "requeued")]


def test_missing_raw_upload_fails_with_message(member, client):
    v = _interrupted(member, worker=f"{socket.gethostname()}:{_dead_pid()}")
    services.version_source_path(v).unlink()
    assert services.version_reconcile_imports() == [(v.pk, "failed")]
    v.refresh_from_db()
    assert v.status == "failed" and v.examples.count() == 0
    assert "no longer on disk" in v.error and "Upload the file again" in v.error
    client.force_login(member)
    page = _page(client, v)
    assert "no longer on disk" in page and "status-failed" in page


def test_repeatedly_killed_import_is_failed_not_looped(member, django_capture_on_commit_callbacks):
    v = _interrupted(member, worker=f"{socket.gethostname()}:{_dead_pid()}")
    for n in range(services.IMPORT_MAX_REQUEUES):
        with django_capture_on_commit_callbacks(execute=True):
            assert services.version_reconcile_imports() == [(v.pk, "requeued")]
        _held_by(v, f"{socket.gethostname()}:{_dead_pid()}")
    assert services.version_reconcile_imports() == [(v.pk, "failed")]
    v.refresh_from_db()
    assert v.status == "failed" and f"interrupted {services.IMPORT_MAX_REQUEUES + 1} times" in v.error
    assert services.version_source_path(v).exists()  # the raw upload is kept


def test_interrupted_fix_is_failed_and_parent_untouched(member):
    v1 = services.dataset_import(user=member, name="fx", file=_file(good_rows(12)))
    v2 = DatasetVersion.objects.create(dataset=v1.dataset, number=2, parent=v1, status="importing",
                                       source_file=v1.source_file, note="Drop exact duplicates")
    v2.job_id = services.version_job_id(v2)  # a derive job, held by a process that then died
    assert v2.job.kind == "dataset.derive"
    _held_by(v2, f"{socket.gethostname()}:{_dead_pid()}")
    assert services.version_reconcile_imports() == [(v2.pk, "failed")]
    v2.refresh_from_db()
    v1.refresh_from_db()
    assert v2.status == "failed" and "apply the change again" in v2.error
    assert v1.status == "ready" and v1.examples.count() == 12


def test_reconcile_imports_command(member, django_capture_on_commit_callbacks):
    v = _interrupted(member, worker=f"{socket.gethostname()}:{_dead_pid()}")
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("reconcile_imports", stdout=out)
    assert f"dataset version {v.pk}: requeued" in out.getvalue() and "1 interrupted import(s)" in out.getvalue()


def test_worker_boot_middleware_reconciles(member, django_capture_on_commit_callbacks):
    from workers.periodic import JobReconciler

    broker = dramatiq.get_broker()
    mws = [m for m in broker.middleware if isinstance(m, JobReconciler)]
    assert len(mws) == 1
    v = _interrupted(member, worker=f"{socket.gethostname()}:{_dead_pid()}")
    v2 = _interrupted(member, worker=f"{socket.gethostname()}:{_dead_pid()}", name="gone")
    services.version_source_path(v2).unlink()
    with django_capture_on_commit_callbacks(execute=True):
        mws[0].after_worker_boot(broker, None)
    v.refresh_from_db()
    v2.refresh_from_db()
    assert v.status == "importing" and v.progress["requeued"] == 1
    assert v2.status == "failed"


def test_inline_import_records_holder(member):
    v = services.dataset_import(user=member, name="inline", file=_file(good_rows(12)))
    job = Job.objects.get(pk=v.job_id)
    assert v.status == "ready" and job.status == "succeeded" and job.started_at is not None


@pytest.mark.django_db(transaction=True)
def test_heartbeat_thread_beats_while_the_import_works(member):
    import time

    v = services.dataset_import(user=member, name="hb", file=_file(good_rows(5)), background=True)
    old = timezone.now() - timedelta(hours=1)
    _held_by(v, services.worker_id(), old)
    with services.import_heartbeat(v.pk, services.worker_id(), every_s=0.05):
        time.sleep(0.4)
    assert Job.objects.get(pk=v.job_id).heartbeat_at > old + timedelta(minutes=59)
    # another holder's beat does not touch it
    Job.objects.filter(pk=v.job_id).update(heartbeat_at=old)
    with services.import_heartbeat(v.pk, "elsewhere:1", every_s=0.05):
        time.sleep(0.2)
    assert Job.objects.get(pk=v.job_id).heartbeat_at == old
