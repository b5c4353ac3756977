"""/api/runs: create (422 with field messages, nothing created), list, detail, metrics, cancel."""
from __future__ import annotations

import pytest

from apps.training.models import MetricPoint, TrainingRun

pytestmark = pytest.mark.django_db


def test_create_and_read(api, qa_version, tiny_base_model):
    r = api.post("/api/runs", {"dataset_version_id": qa_version.pk, "base_model": "tiny", "max_steps": 3,
                               "learning_rate": 1e-3, "lora_r": 4}, content_type="application/json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["id"] and body["status"] == "queued" and body["queue_position"] == 1
    assert body["hyperparameters"]["lora_r"] == 4 and body["model_version_id"] is None
    MetricPoint.objects.create(run_id=body["id"], step=1, values={"loss": 2.5})
    detail = api.get(f"/api/runs/{body['id']}").json()
    assert detail["metrics"] == [{"step": 1, "kind": "train", "loss": 2.5}]
    assert api.get(f"/api/runs/{body['id']}/metrics").json()[0]["loss"] == 2.5
    assert [x["id"] for x in api.get("/api/runs?status=queued").json()] == [body["id"]]
    assert api.get("/api/runs?status=succeeded").json() == []
    r = api.post(f"/api/runs/{body['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert api.post(f"/api/runs/{body['id']}/cancel").status_code == 409


@pytest.mark.parametrize("payload,field", [
    ({"learning_rate": -1}, "hyperparameters.learning_rate"),
    ({"batch_size": 0}, "hyperparameters.batch_size"),
    ({"lora_r": 1000}, "hyperparameters.lora_r"),
    ({"base_model": "missing"}, "base_model"),
    ({"dataset_version_id": 424242}, "dataset_version_id"),
    ({"learning_rate": "fast"}, "learning_rate"),  # type error from the schema
])
def test_bad_input_is_422_with_field_messages(api, qa_version, tiny_base_model, payload, field):
    body = {"dataset_version_id": qa_version.pk, "base_model": "tiny", **payload}
    r = api.post("/api/runs", body, content_type="application/json")
    assert r.status_code == 422, r.content
    assert field in {e["field"] for e in r.json()["errors"]}
    assert TrainingRun.objects.count() == 0


def test_estimate_creates_nothing(api, qa_version, tiny_base_model):
    r = api.post("/api/runs/estimate", {"dataset_version_id": qa_version.pk, "base_model": "tiny", "epochs": 2,
                                        "batch_size": 4}, content_type="application/json")
    assert r.status_code == 200
    est = r.json()["estimate"]
    assert est["steps"] == 12 and est["seconds"] > 0 and est["tokens_per_s"] > 0
    assert TrainingRun.objects.count() == 0


def test_pipeline_endpoint(api, qa_version_factory, tiny_base_model):
    a, b = qa_version_factory(name="a"), qa_version_factory(name="b", start=100)
    r = api.post("/api/pipelines", {"base_model": "tiny", "stages": [
        {"dataset_version_id": a.pk, "epochs": 1}, {"dataset_version_id": b.pk, "epochs": 2}]},
        content_type="application/json")
    assert r.status_code == 201, r.content
    assert [s["dataset_version_id"] for s in r.json()["hyperparameters"]["stages"]] == [a.pk, b.pk]
    assert r.json()["total_steps"] == 6 + 12
    r = api.post("/api/pipelines", {"base_model": "tiny", "stages": [{"dataset_version_id": a.pk}]},
                 content_type="application/json")
    assert r.status_code == 422


def test_needs_auth(client):
    assert client.get("/api/runs").status_code == 401


def test_cancel_someone_elses_run_is_403(api, admin_user, qa_version, tiny_base_model):
    from apps.training.services import run_create

    run = run_create(user=admin_user, dataset_version_id=qa_version.pk, base_model="tiny")
    assert api.get(f"/api/runs/{run.pk}").status_code == 200  # everyone can read
    assert api.post(f"/api/runs/{run.pk}/cancel").status_code == 403
    assert api.get("/api/runs/99999").status_code == 404
