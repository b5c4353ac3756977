"""The job lifecycle of generations: a failure at any point leaves no version (nor a dataset it created); a
worker that dies mid-generation is found by the reconciler and the generation resumes from its checkpoint
(the finished repositories are not generated again); a cancel during the run keeps nothing; the teacher's
progress survives a crash and the hub key it used is revoked."""
from __future__ import annotations

import json

import pytest

from apps.core.jobs import services as job_services
from apps.core.jobs.reconcile import job_reconcile
from apps.core.models import Job
from apps.datasets.models import Dataset, DatasetVersion, Example
from apps.sources import services
from workers.engine import repos as engine

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def source(repo, admin_user):
    src = services.source_create(user=admin_user, kind="path", location=str(repo.path))
    services.analysis_start(user=admin_user, source_id=src.pk, inline=True)
    return src


def test_a_failure_while_saving_leaves_no_version_and_no_dataset(source, admin_user, monkeypatch):
    import apps.datasets.validation.pipeline as pipeline

    real = pipeline.validate_examples

    def broken(examples, **kw):
        on_batch = kw["on_batch"]

        def half(batch):
            on_batch(batch)  # some rows are written ...
            raise OSError("disk full")  # ... then it breaks
        return real(examples, **{**kw, "on_batch": half})

    monkeypatch.setattr(pipeline, "validate_examples", broken)
    gen = services.generation_start(user=admin_user, source_id=source.pk, options={"max_examples": 10}, inline=True)
    assert gen.status == "failed" and "disk full" in gen.error and gen.error_code == "E_GENERATION_FAILED"
    assert not DatasetVersion.objects.exists() and not Example.objects.exists() and not Dataset.objects.exists()
    source.refresh_from_db()
    assert source.dataset_id is None


def test_a_failed_regeneration_keeps_the_earlier_version(source, admin_user, monkeypatch):
    first = services.generation_start(user=admin_user, source_id=source.pk, options={"max_examples": 10}, inline=True)
    assert first.status == "succeeded"
    monkeypatch.setattr(engine, "bundle", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    second = services.generation_start(user=admin_user, source_id=source.pk, options={"max_examples": 10},
                                       inline=True)
    assert second.status == "failed"
    assert list(DatasetVersion.objects.values_list("pk", flat=True)) == [first.dataset_version_id]
    assert DatasetVersion.objects.get().status == "ready"


def test_a_dead_worker_is_resumed_from_the_checkpoint(source, admin_user, monkeypatch, tmp_path):
    gen = services.generation_start(user=admin_user, source_id=source.pk, options={"max_examples": 12})
    calls = []
    real_generate = engine.generate

    def counting(*a, **kw):
        calls.append(kw.get("repo_name"))
        return real_generate(*a, **kw)

    monkeypatch.setattr(engine, "generate", counting)

    def crash(*a, **kw):  # the worker dies while saving: after the engine's output was checkpointed
        raise SystemExit("killed")

    import apps.sources.services.generations as generations

    monkeypatch.setattr(generations, "_save", crash)
    with pytest.raises(SystemExit):
        services.generation_process(generation_id=gen.pk)
    assert calls == ["calc"] and (services.work_dir(gen.pk) / "repo-0.json").is_file()
    # the process is gone: its holder is a pid that does not exist
    Job.objects.filter(pk=gen.job_id).update(holder="localhost:999999999")
    monkeypatch.setattr("apps.core.liveness.holder_dead", lambda holder, hb, stale_after_s=None: True)
    acted = job_reconcile(kinds=["source.generate"])
    assert [(j.pk, action) for j, action in acted] == [(gen.job_id, "resumed")]
    gen.refresh_from_db()
    assert gen.status == "queued"
    monkeypatch.undo()
    monkeypatch.setattr(engine, "generate", counting)
    gen = services.generation_process(generation_id=gen.pk)
    assert gen.status == "succeeded", gen.error
    assert calls == ["calc"], "the checkpointed repository was generated again"
    assert gen.dataset_version.status == "ready" and gen.dataset_version.example_count > 0


def test_cancel_while_running_keeps_nothing(source, admin_user, monkeypatch):
    gen = services.generation_start(user=admin_user, source_id=source.pk, options={"max_examples": 10})
    real_generate = engine.generate

    def cancel_then_generate(*a, **kw):
        job_services.job_request_cancel(user=admin_user, job_id=gen.job_id)
        return real_generate(*a, **kw)

    monkeypatch.setattr(engine, "generate", cancel_then_generate)
    gen = services.generation_process(generation_id=gen.pk)
    assert gen.status == "cancelled"
    assert not DatasetVersion.objects.exists() and not Dataset.objects.exists()


class FakeTeacher:
    """Stands in for engine.enrich: marks each example rewritten; can crash after n examples."""

    def __init__(self, crash_after=None):
        self.crash_after, self.seen = crash_after, []

    def __call__(self, examples, config, *, cursor=0, on_item=None, progress=None, should_stop=None, **kw):
        out = []
        for i in range(cursor, len(examples)):
            if self.crash_after is not None and i >= self.crash_after:
                raise SystemExit("killed")
            ex = json.loads(json.dumps(examples[i]))
            ex["meta"]["provenance"]["teacher_model"] = config.model
            self.seen.append(i)
            out.append(ex)
            if on_item:
                on_item(i, ex)
        return engine.TeacherResult(examples=out, cursor=len(examples), rewritten=len(out))


def test_teacher_resumes_after_a_crash_and_revokes_its_key(source, admin_user, monkeypatch):
    from apps.accounts.models import ApiKey

    opts = {"max_examples": 6, "generators": ["fim"], "teacher": {"endpoint": "hub", "model": "production"}}
    gen = services.generation_start(user=admin_user, source_id=source.pk, options=opts)
    monkeypatch.setattr(engine, "enrich", FakeTeacher(crash_after=3))
    with pytest.raises(SystemExit):
        services.generation_process(generation_id=gen.pk)
    Job.objects.filter(pk=gen.job_id).update(holder="localhost:999999999")
    monkeypatch.setattr("apps.core.liveness.holder_dead", lambda holder, hb, stale_after_s=None: True)
    job_reconcile(kinds=["source.generate"])
    teacher = FakeTeacher()
    monkeypatch.setattr(engine, "enrich", teacher)
    gen = services.generation_process(generation_id=gen.pk)
    assert gen.status == "succeeded", gen.error
    assert teacher.seen[0] == 3, "the teacher started over instead of resuming"
    assert gen.summary["teacher"]["resumed_at"] == 3
    assert all(e.meta["provenance"].get("teacher_model") == "production" for e in gen.dataset_version.examples.all())
    assert not ApiKey.objects.filter(name__startswith="teacher", revoked_at__isnull=True).exists()
    assert ApiKey.objects.filter(name__startswith="teacher").count() == 2  # one per attempt, both revoked
