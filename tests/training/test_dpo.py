"""Preference training runs (method "dpo") through the hub: run_create refuses what DPO cannot train with
field errors (form, service and /api alike), and a real run trains the tiny model on an imported
preference dataset in the gpu actor, reports TRL's reward metrics through the metric path, continues an
adapter version and registers its result with that version as parent; a cancel stops it."""
from __future__ import annotations

import json

import pytest

from apps.core.exceptions import ValidationFailed
from apps.training import services
from apps.training.models import MetricPoint, TrainingRun
from tests.factories import DatasetVersionFactory, qa_example

FAST = {"max_steps": 12, "learning_rate": 5e-3, "batch_size": 4, "save_steps": 6, "warmup_ratio": 0.0,
        "eval_max_new_tokens": 4}
REJECTED = [{"role": "assistant", "content": "I do not know."}]


def _pairs_version(owner, *, n=24, validation=4, plain=0, name="prefs"):
    """A ready version whose examples are preference pairs (as the import stores them), the last `plain`
    of the train split plain chats."""
    from apps.datasets.models import Example

    v = DatasetVersionFactory(owner=owner, dataset__name=name, examples=[qa_example(i) for i in range(n)],
                              examples__validation=[qa_example(i) for i in range(n, n + validation)])
    Example.objects.filter(version=v).update(meta={"kind": "preference", "non_preferred_output": REJECTED})
    Example.objects.filter(version=v, index__gte=n - plain, index__lt=n).update(meta={"kind": "chat"})
    return v


def _fields(exc) -> dict[str, str]:
    return {e["field"]: e["message"] for e in exc.value.errors}


# --- run_create: what DPO refuses -------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_dataset_without_pairs_is_a_field_error(member, qa_version, tiny_base_model, api):
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny", method="dpo")
    message = _fields(exc)["dataset_version_id"]
    assert "holds none" in message and "`non_preferred_output`" in message and "`preferred_output`" in message
    assert TrainingRun.objects.count() == 0
    # the same on /api: a 422 naming the field and the missing fields
    r = api.post("/api/runs", {"dataset_version_id": qa_version.pk, "base_model": "tiny", "method": "dpo"},
                 content_type="application/json")
    assert r.status_code == 422, r.content
    assert {e["field"]: e["message"] for e in r.json()["errors"]}["dataset_version_id"] == message
    # the same data trains with method lora
    assert services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny").method == "lora"


@pytest.mark.django_db
def test_a_partly_paired_dataset_is_refused_with_counts(member, tiny_base_model):
    mixed = _pairs_version(member, plain=3)
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=mixed.pk, base_model="tiny", method="dpo")
    assert "3 of 28 examples of this version are not pairs (first at example 22)" in _fields(exc)["dataset_version_id"]


@pytest.mark.django_db
def test_dpo_rules_on_backend_stages_and_parents(member, tiny_base_model, settings):
    from apps.registry.models import ModelVersion

    pairs = _pairs_version(member)
    settings.TOGETHER_API_KEY = "test-key"
    try:  # DPO on Together.ai is allowed (training_method dpo; tests/training/test_together.py submits one)
        services.run_create(user=member, dataset_version_id=pairs.pk, base_model="m", method="dpo",
                            backend="together", dry_run=True)
    except ValidationFailed as exc:
        assert "backend" not in _fields(exc) and "method" not in _fields(exc), _fields(exc)
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny", method="dpo",
                            stages=[{"dataset_version_id": pairs.pk}, {"dataset_version_id": pairs.pk}])
    assert "stages" in _fields(exc)
    full = ModelVersion.objects.create(name="full one", kind=ModelVersion.Kind.FULL, base_model=tiny_base_model,
                                       artifact_path="models/full-one")
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=pairs.pk, method="dpo", parent_version_id=full.pk)
    assert "adapter version" in _fields(exc)["method"]
    with pytest.raises(ValidationFailed) as exc:  # beta is checked by the table, for dpo only
        services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny", method="dpo",
                            hyperparameters={"beta": 0, "loss_type": "nope"})
    assert set(_fields(exc)) == {"hyperparameters.beta", "hyperparameters.loss_type"}
    assert TrainingRun.objects.count() == 0


@pytest.mark.django_db
def test_dry_run_counts_chosen_and_rejected_and_stores_beta(member, tiny_base_model):
    pairs = _pairs_version(member)
    est = services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny", method="dpo",
                              hyperparameters={"max_steps": 5}, dry_run=True)
    lora = services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny",
                               hyperparameters={"max_steps": 5}, dry_run=True)
    assert est["hyperparameters"]["beta"] == 0.1 and est["hyperparameters"]["loss_type"] == "sigmoid"
    assert "lora_dropout" not in est["hyperparameters"] and "beta" not in lora["hyperparameters"]
    assert est["hyperparameters"]["learning_rate"] == services.DEFAULT_LR["dpo"]
    # both answers of each pair are processed: about twice the tokens of the chosen answers alone
    assert est["estimate"]["dataset_tokens"] > 1.5 * lora["estimate"]["dataset_tokens"]
    assert est["estimate"]["steps"] == 5 and est["estimate"]["seconds"] > 0
    assert TrainingRun.objects.count() == 0


# --- a real run ---------------------------------------------------------------------------------------------
def _import_pairs(member, tmp_path, n=28):
    from apps.datasets.services.imports import dataset_import

    path = tmp_path / "prefs.jsonl"
    rows = [{"input": {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}]},
             "preferred_output": [{"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}],
             "non_preferred_output": REJECTED} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    version = dataset_import(user=member, name="arena votes", file=str(path), background=False)
    assert version.status == "ready", version.validation
    return version


@pytest.mark.django_db(transaction=True)
def test_dpo_run_continues_an_adapter_reports_rewards_and_registers_a_child(member, qa_version, tiny_base_model,
                                                                          tmp_path, settings, client):
    from apps.registry.models import ModelVersion
    from workers.training import train_run

    sft = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                              hyperparameters={"max_steps": 4, "learning_rate": 3e-3, "eval_max_new_tokens": 4})
    train_run.fn(sft.pk)
    parent = ModelVersion.objects.get(run=sft)
    prefs = _import_pairs(member, tmp_path)

    run = services.run_create(user=member, dataset_version_id=prefs.pk, method="dpo", parent_version_id=parent.pk,
                              hyperparameters=FAST)
    assert run.base_model_id == "tiny" and run.parent_version_id == parent.pk
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error

    points = [p.values for p in MetricPoint.objects.filter(run=run, kind="train").order_by("step")]
    assert len(points) == 12
    assert points[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-3)  # the reference is the parent itself
    assert sum(p["rewards/margins"] for p in points[-3:]) / 3 > 0.2
    assert sum(p["loss"] for p in points[-3:]) < sum(p["loss"] for p in points[:3])
    evals = [p.values for p in MetricPoint.objects.filter(run=run, kind="eval").order_by("step")]
    assert evals and "rewards/accuracies" in evals[-1] and "perplexity" not in evals[-1]
    assert run.summary["rewards/margins"] == pytest.approx(points[-1]["rewards/margins"])
    assert run.summary["preference"]["rewards/margins"] == pytest.approx(points[-1]["rewards/margins"])

    version = ModelVersion.objects.get(run=run)
    assert version.kind == "adapter" and version.parent_id == parent.pk and version.base_model_id == "tiny"
    assert version.dataset_version_id == prefs.pk
    assert version.metrics["rewards/margins"] > 0.2 and "eval_rewards/accuracies" in version.metrics
    assert (settings.ARTIFACT_ROOT / version.artifact_path / "adapter_model.safetensors").exists()
    assert not (settings.ARTIFACT_ROOT / version.artifact_path / "ref").exists()

    client.force_login(member)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="reward-chart"' in page and 'id="accuracy-chart"' in page and "js/run_preference.js" in page
    assert "<polyline" in page.split('id="reward-chart"')[1].split("</div>")[0]  # the server-drawn curves
    assert "Chosen preferred" in page and "Perplexity" not in page
    sft_page = client.get(f"/runs/{sft.pk}/").content.decode()
    assert 'id="reward-chart"' not in sft_page and "run_preference.js" not in sft_page


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_dpo_run_and_keeps_its_checkpoint(member, tiny_base_model, monkeypatch):
    from apps.registry.models import ModelVersion
    from workers import training

    pairs = _pairs_version(member)
    run = services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny", method="dpo",
                              hyperparameters={**FAST, "max_steps": 40, "save_steps": 100})
    original = training.RunReporter.report

    def report(self, step, metrics):
        original(self, step, metrics)
        if metrics.get("kind") == "train" and step == 3:
            services.run_request_cancel(user=member, run_id=run.pk)

    monkeypatch.setattr(training.RunReporter, "report", report)
    assert training.execute_run(run.pk) == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled" and 3 <= run.summary["stopped_at"] < 40
    assert run.checkpoints.filter(deleted=False, step=run.summary["stopped_at"]).exists()
    assert not ModelVersion.objects.filter(run=run).exists()


def test_dpo_with_full_weights_trains_every_weight_and_registers_a_full_version(member, tiny_base_model, tmp_path,
                                                                                 settings):
    from apps.registry.models import ModelVersion
    from workers.training import train_run

    prefs = _import_pairs(member, tmp_path)
    run = services.run_create(user=member, dataset_version_id=prefs.pk, method="dpo", base_model="tiny",
                              hyperparameters={**FAST, "max_steps": 6, "learning_rate": 1e-3, "full_weights": True})
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    points = [p.values for p in MetricPoint.objects.filter(run=run, kind="train").order_by("step")]
    assert points[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-3)  # the reference: the starting weights
    assert points[-1]["rewards/margins"] > points[0]["rewards/margins"]
    version = ModelVersion.objects.get(run=run)
    folder = settings.ARTIFACT_ROOT / version.artifact_path
    assert version.kind == "full" and (folder / "model.safetensors").exists()
    assert not (folder / "adapter_model.safetensors").exists()
    # a full-weights version continues with full_weights on, and only so
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=prefs.pk, method="kto", parent_version_id=version.pk)
    assert "full_weights on" in _fields(exc)["method"]
    again = services.run_create(user=member, dataset_version_id=prefs.pk, method="kto", parent_version_id=version.pk,
                                hyperparameters={"full_weights": True, "max_steps": 2}, dry_run=True)
    assert again["hyperparameters"]["full_weights"] is True
