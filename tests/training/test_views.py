"""Dashboard pages: list with filters, new-run form (field errors, estimate, preselect), run page."""
from __future__ import annotations

import pytest

from apps.training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, member):
    client.force_login(member)
    return client


def test_new_run_form_preselects_and_creates(logged_in, qa_version, tiny_base_model):
    r = logged_in.get(f"/runs/new/?dataset_version={qa_version.pk}")
    assert r.status_code == 200
    assert f'<option value="{qa_version.pk}" selected' in r.content.decode()
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "base_model": "tiny",
                                      "backend": "local", "max_steps": 3, "action": "create"})
    run = TrainingRun.objects.get()
    assert r.status_code == 302 and r.url == f"/runs/{run.pk}/"
    assert run.hyperparameters["max_steps"] == 3


def test_new_run_form_shows_field_errors(logged_in, qa_version, tiny_base_model):
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "base_model": "tiny",
                                      "backend": "local", "batch_size": 0, "lora_r": 500, "action": "create"})
    assert r.status_code == 422
    html = r.content.decode()
    assert "cannot exceed the model&#x27;s hidden size" in html or "cannot exceed the model's hidden size" in html
    assert "Must be at least 1" in html
    assert TrainingRun.objects.count() == 0


def test_estimate_button_renders_estimate(logged_in, qa_version, tiny_base_model):
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "base_model": "tiny",
                                      "backend": "local", "epochs": 1, "action": "estimate"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    html = r.content.decode()
    assert "Estimated time" in html and "<html" not in html
    assert TrainingRun.objects.count() == 0


def test_run_page_and_list(logged_in, member, qa_version, tiny_base_model):
    from apps.training.services import run_create

    run = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny", name="<b>x</b>")
    html = logged_in.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="loss-chart"' in html and 'id="run-status"' in html and "window.hubLivePoints" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html  # escaped
    assert "Position 1 in the GPU queue" in html
    lst = logged_in.get("/runs/?status=queued").content.decode()
    assert f"/runs/{run.pk}/" in lst
    assert f"/runs/{run.pk}/" not in logged_in.get("/runs/?status=failed").content.decode()
    cmp = logged_in.get(f"/runs/compare/?ids={run.pk}")
    assert cmp.status_code == 200 and "compare-chart" in cmp.content.decode()


def test_cancel_from_page(logged_in, member, qa_version, tiny_base_model):
    from apps.training.services import run_create

    run = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    r = logged_in.post(f"/runs/{run.pk}/cancel/")
    assert r.status_code == 302
    assert TrainingRun.objects.get(pk=run.pk).status == "cancelled"


def test_pages_need_login(client):
    assert client.get("/runs/").status_code == 302


def test_list_refreshes_itself_while_runs_are_active(logged_in, member, qa_version, tiny_base_model):
    from apps.training.services import run_create

    run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    html = logged_in.get("/runs/").content.decode()
    assert 'hx-trigger="every 5s"' in html
    part = logged_in.get("/runs/", HTTP_HX_REQUEST="true").content.decode()
    assert part.lstrip().startswith("<form") and "<html" not in part


def test_run_page_shows_no_queue_position_once_started(logged_in, member, qa_version, tiny_base_model):
    from apps.training.services import run_create

    run = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    html = logged_in.get(f"/runs/{run.pk}/").content.decode()
    assert '<p class="badge" id="queue-position">Position 1 in the GPU queue</p>' in html  # removed live by the script
    TrainingRun.objects.filter(pk=run.pk).update(status="running")
    html = logged_in.get(f"/runs/{run.pk}/").content.decode()
    assert '<p class="badge" id="queue-position"' not in html and "Position 1" not in html
