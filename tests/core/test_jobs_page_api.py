"""/api/jobs and the Jobs page list every kind of background job (dataset imports, local and Together
runs) with kind, owner, phase, progress, holder, age; cancel and retry check owner-or-admin."""
from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.core.jobs import services as job_services
from apps.core.models import Job

pytestmark = pytest.mark.django_db


def _upload(member, name="support"):
    from apps.datasets import services

    rows = [{"messages": [{"role": "user", "content": f"q {i}"}, {"role": "assistant", "content": f"a {i}"}]}
            for i in range(12)]
    data = "\n".join(json.dumps(r) for r in rows).encode()
    return services.dataset_import(user=member, name=name, file=SimpleUploadedFile("d.jsonl", data), background=True)


@pytest.fixture
def jobs_of_every_kind(member, qa_version, tiny_base_model, settings):
    from apps.training import services

    settings.TOGETHER_API_KEY = "k"
    version = _upload(member)
    local = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                                hyperparameters={"max_steps": 4})
    remote = services.run_create(user=member, dataset_version_id=qa_version.pk, backend="together",
                                 base_model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    return {"import": version.job, "local": local.job, "together": remote.job}


def test_every_kind_is_a_job(jobs_of_every_kind):
    kinds = {k: j.kind for k, j in jobs_of_every_kind.items()}
    assert kinds == {"import": "dataset.import", "local": "training.local", "together": "training.together"}
    assert all(j.status == "queued" and j.attempts == 1 for j in jobs_of_every_kind.values())


def test_api_lists_filters_and_shows_one(api, jobs_of_every_kind):
    body = api.get("/api/jobs").json()
    assert {j["kind"] for j in body} == {"dataset.import", "training.local", "training.together"}
    one = next(j for j in body if j["kind"] == "training.local")
    assert one["owner"] == "member" and one["phase"] == "queued" and one["target"]["url"].startswith("/runs/")
    assert one["can_cancel"] is True and one["can_retry"] is False and one["holder"] == ""
    assert [j["kind"] for j in api.get("/api/jobs?kind=training").json()] == ["training.together", "training.local"]
    assert [j["kind"] for j in api.get("/api/jobs?kind=dataset.import&status=active").json()] == ["dataset.import"]
    assert api.get("/api/jobs?status=succeeded").json() == []
    bad = api.get("/api/jobs?kind=nope")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "kind"
    assert api.get("/api/jobs?status=sideways").status_code == 422
    assert api.get("/api/jobs?limit=0").status_code == 422
    detail = api.get(f"/api/jobs/{one['id']}").json()
    assert detail["id"] == one["id"] and detail["kind_label"] == "Training run (local)"
    assert api.get("/api/jobs/999999").status_code == 404


def test_api_cancel_and_retry_owner_or_admin(api, client, make_user, jobs_of_every_kind, admin_key):
    from apps.accounts.services import api_key_create

    local = jobs_of_every_kind["local"]
    other = make_user("other")
    other_key = api_key_create(user=other, name="t").plaintext
    denied = client.post(f"/api/jobs/{local.pk}/cancel", HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert denied.status_code == 403
    r = api.post(f"/api/jobs/{local.pk}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"  # queued: nothing to stop
    local.refresh_from_db()
    assert local.training_run.status == "cancelled" and local.training_run.cancel_requested
    assert api.post(f"/api/jobs/{local.pk}/cancel").status_code == 409
    r = client.post(f"/api/jobs/{local.pk}/retry", HTTP_AUTHORIZATION=f"Bearer {admin_key}")  # an admin may
    assert r.status_code == 200 and r.json()["status"] == "queued"
    local.refresh_from_db()
    assert local.training_run.status == "queued" and not local.training_run.cancel_requested
    assert local.training_run.summary["retried"] == 1


def test_retry_of_a_failed_import_reimports_the_raw_upload(member, api, django_capture_on_commit_callbacks):
    from apps.datasets.models import DatasetVersion
    from workers.datasets import import_dataset_version

    version = _upload(member, name="flaky")
    job_services.job_finish(job_id=version.job_id, status="failed", error="worker exploded", error_code="E_X")
    version.refresh_from_db()
    assert version.status == "failed" and version.error == "worker exploded"
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/jobs/{version.job_id}/retry").json()["status"] == "queued"
    version.refresh_from_db()
    assert version.status == "importing" and version.error == ""
    import_dataset_version.fn(version.pk)
    version = DatasetVersion.objects.get(pk=version.pk)
    assert version.status == "ready" and version.example_count == 12 and version.job.status == "succeeded"


def test_cancel_of_a_running_import_is_honoured(member):
    from apps.datasets import services

    version = _upload(member, name="big")
    Job.objects.filter(pk=version.job_id).update(cancel_requested=True, status="running", holder="")
    version = services.version_process(version_id=version.pk)
    assert version.status == "failed" and "cancelled" in version.error and version.examples.count() == 0
    assert version.job.status == "cancelled"


def test_jobs_page_lists_every_kind_with_actions(client, member, jobs_of_every_kind):
    client.force_login(member)
    html = client.get("/jobs/").content.decode()
    assert 'href="/jobs/">Jobs</a>' in html  # the nav link
    for job in jobs_of_every_kind.values():
        assert f'id="job-{job.pk}"' in html and job.kind in html
    assert html.count(">Cancel</button>") == 3 and 'hx-trigger="every 3s"' in html
    filtered = client.get("/jobs/?kind=dataset.import").content.decode()
    assert f'id="job-{jobs_of_every_kind["import"].pk}"' in filtered
    assert f'id="job-{jobs_of_every_kind["local"].pk}"' not in filtered
    partial = client.get("/jobs/?status=active", HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="jobs"') and "<html" not in partial
    r = client.post(f"/jobs/{jobs_of_every_kind['local'].pk}/cancel/", {"next": "/jobs/?status=active"})
    assert r.status_code == 302 and r["Location"] == "/jobs/?status=active"
    assert Job.objects.get(pk=jobs_of_every_kind["local"].pk).status == "cancelled"
    html = client.get("/jobs/").content.decode()
    assert ">Retry</button>" in html


def test_jobs_page_empty_and_other_users_cannot_act(client, make_user, jobs_of_every_kind):
    viewer = make_user("viewer")
    client.force_login(viewer)
    html = client.get("/jobs/").content.decode()
    assert "Cancel</button>" not in html  # visible to the team, actionable by owner or admin
    r = client.post(f"/jobs/{jobs_of_every_kind['local'].pk}/cancel/")
    assert r.status_code == 302 and Job.objects.get(pk=jobs_of_every_kind["local"].pk).status == "queued"
    Job.objects.all().delete()
    assert "No jobs" in client.get("/jobs/").content.decode()
    assert client.get("/jobs/?status=running").status_code == 200
