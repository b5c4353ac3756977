"""KTO runs (method "kto") through the hub: each preference pair becomes a desirable and an undesirable row
(workers/engine/kto/data.py); run_create refuses what KTO cannot train with field errors (the same dataset
error DPO gives, the Together backend, a batch of one, bad weights) on /api as 422s; a real run trains the
tiny model through the gpu actor on TRL's KTOTrainer, records TRL's metric names (rewards/chosen, kl, ...)
and a finite loss, registers an adapter version and shows the reward chart on the run page."""
from __future__ import annotations

import math

import pytest

from apps.core.exceptions import ValidationFailed
from apps.training import services
from apps.training.models import MetricPoint, TrainingRun
from tests.training.test_dpo import FAST, _import_pairs, _pairs_version
from workers.engine.dpo import encode_pair
from workers.engine.kto import pair_rows, tokenize_unpaired


def pair(i: int, rejected: str = "I do not know.") -> dict:
    return {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}],
            "rejected": [{"role": "assistant", "content": rejected}]}


# --- pairs -> labelled rows ---------------------------------------------------------------------------------
def test_a_pair_becomes_a_desirable_and_an_undesirable_row(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc = encode_pair(tok, pair(3))
    good, bad = pair_rows(enc)
    assert good == {"prompt_ids": enc["prompt_ids"], "completion_ids": enc["chosen_ids"], "label": True}
    assert bad == {"prompt_ids": enc["prompt_ids"], "completion_ids": enc["rejected_ids"], "label": False}
    assert "6" in tok.decode(good["completion_ids"]) and "do not know" in tok.decode(bad["completion_ids"])

    pairs = [pair(i) for i in range(5)] + [pair(9, rejected="9 plus 9 is 18."),  # both answers the same
                                           {"messages": pair(1)["messages"], "rejected": []}]  # nothing rejected
    ds, stats = tokenize_unpaired(tok, pairs, max_len=512)
    assert stats["examples"] == len(ds) == 10 and stats["dropped"] == 2 and stats["truncated"] == 0
    assert ds["label"] == [True, False] * 5  # every batch holds both kinds
    prompts = [tok.decode(p) for p in ds["prompt_ids"]]
    # neighbours come from different pairs, so TRL's KL term (the previous row's completion) is mismatched
    assert all(prompts[k] != prompts[k - 1] for k in range(1, len(prompts)))
    # each pair's two rows are both there: chosen and rejected under the same prompt
    for i in range(5):
        rows = [(lab, tok.decode(c)) for p, c, lab in zip(prompts, ds["completion_ids"], ds["label"])
                if f"{i} plus {i}?" in p]
        assert sorted(lab for lab, _ in rows) == [False, True]
    assert stats["tokens"] == sum(ds["length"]) and 0 < stats["trained_tokens"] < stats["tokens"]
    # a prompt that fills max_len leaves nothing to train on: the pair is dropped
    _, short = tokenize_unpaired(tok, [pair(1)], max_len=len(enc["prompt_ids"]))
    assert short["examples"] == 0 and short["dropped"] == 1


# --- run_create: what KTO refuses ---------------------------------------------------------------------------
def _errors(r) -> dict[str, str]:
    assert r.status_code == 422, r.content
    return {e["field"]: e["message"] for e in r.json()["errors"]}


@pytest.mark.django_db
def test_bad_kto_inputs_are_422_field_errors(member, qa_version, tiny_base_model, api, settings):
    post = lambda body: api.post("/api/runs", body, content_type="application/json")  # noqa: E731
    # no preference pairs: the message DPO gives, naming KTO
    message = _errors(post({"dataset_version_id": qa_version.pk, "base_model": "tiny", "method": "kto"}))[
        "dataset_version_id"]
    assert message.startswith("KTO trains on preference pairs") and "holds none" in message
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny", method="dpo")
    assert {e["field"]: e["message"] for e in exc.value.errors}["dataset_version_id"] == message.replace(
        "KTO", "DPO", 1)
    pairs = _pairs_version(member)
    settings.TOGETHER_API_KEY = "test-key"
    assert "KTO runs train locally" in _errors(post({"dataset_version_id": pairs.pk, "base_model": "m",
                                                     "method": "kto", "backend": "together"}))["backend"]
    bad = _errors(post({"dataset_version_id": pairs.pk, "base_model": "tiny", "method": "kto",
                        "hyperparameters": {"batch_size": 1, "beta": 0, "desirable_weight": -1,
                                            "undesirable_weight": 0}}))
    assert set(bad) == {"hyperparameters.batch_size", "hyperparameters.beta", "hyperparameters.desirable_weight",
                        "hyperparameters.undesirable_weight"}
    assert "at least 2" in bad["hyperparameters.batch_size"]
    # the KTO weights belong to kto runs only (a dpo run does not keep them)
    dpo = services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny", method="dpo",
                              hyperparameters={"desirable_weight": 2}, dry_run=True)
    assert "desirable_weight" not in dpo["hyperparameters"]
    assert TrainingRun.objects.count() == 0


@pytest.mark.django_db
def test_kto_dry_run_counts_two_rows_per_pair_and_stores_its_weights(member, tiny_base_model):
    pairs = _pairs_version(member)
    kto = services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny", method="kto",
                              hyperparameters={"epochs": 1, "batch_size": 4, "undesirable_weight": 1.5}, dry_run=True)
    dpo = services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny", method="dpo",
                              hyperparameters={"epochs": 1, "batch_size": 4}, dry_run=True)
    hp = kto["hyperparameters"]
    assert hp["beta"] == 0.1 and hp["desirable_weight"] == 1.0 and hp["undesirable_weight"] == 1.5
    assert "loss_type" not in hp and "lora_dropout" not in hp and hp["lora_r"] == 8
    assert kto["estimate"]["steps"] == 2 * dpo["estimate"]["steps"] == 12  # 24 pairs -> 48 rows, batch 4
    assert kto["estimate"]["dataset_tokens"] == dpo["estimate"]["dataset_tokens"]


# --- a real run ---------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_kto_run_trains_records_trl_metrics_and_registers_an_adapter(member, tiny_base_model, tmp_path,
                                                                      settings, client):
    from apps.registry.models import ModelVersion
    from workers.training import train_run

    prefs = _import_pairs(member, tmp_path)
    run = services.run_create(user=member, dataset_version_id=prefs.pk, base_model="tiny", method="kto",
                              hyperparameters={**FAST, "max_steps": 8, "save_steps": 4})
    assert run.method == TrainingRun.Method.KTO
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error

    points = [p.values for p in MetricPoint.objects.filter(run=run, kind="train").order_by("step")]
    assert len(points) == 8
    for p in points:
        assert math.isfinite(p["loss"]) and "kl" in p
    assert all("rewards/chosen" in p and "rewards/rejected" in p and "rewards/margins" in p for p in points)
    assert points[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-3)  # a fresh adapter is the reference
    assert sum(p["rewards/margins"] for p in points[-3:]) / 3 > points[0]["rewards/margins"]
    assert "rewards/accuracies" not in points[0]  # unpaired answers: TRL logs no accuracy
    evals = [p.values for p in MetricPoint.objects.filter(run=run, kind="eval").order_by("step")]
    assert evals and "rewards/chosen" in evals[-1] and "perplexity" not in evals[-1]
    assert run.summary["rewards/chosen"] == pytest.approx(points[-1]["rewards/chosen"])
    assert run.summary["preference"]["kl"] == pytest.approx(points[-1]["kl"])

    version = ModelVersion.objects.get(run=run)
    assert version.kind == "adapter" and version.base_model_id == "tiny" and "rewards/margins" in version.metrics
    assert (settings.ARTIFACT_ROOT / version.artifact_path / "adapter_model.safetensors").exists()
    assert not (settings.ARTIFACT_ROOT / version.artifact_path / "ref").exists()

    client.force_login(member)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="reward-chart"' in page and "js/run_preference.js" in page
    assert "<polyline" in page.split('id="reward-chart"')[1].split("</div>")[0]
    assert 'id="accuracy-chart"' not in page and "Chosen preferred" not in page and "Reward margin" in page
