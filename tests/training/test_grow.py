"""Method "grow" through the service and /api: a tiny from-scratch version grown into micro keeps its validation
loss before training (the job checks it and records both losses), then trains it lower; the new version's
parent is the small one. Bad requests are 422s naming the field: a smaller, equal or incompatible target, a
parent that is an adapter or was fine-tuned from a base model, no parent, the Together backend."""
from __future__ import annotations

import json

import pytest

from apps.training import services
from apps.training.models import TrainingRun

pytestmark = pytest.mark.django_db

FAST = {"learning_rate": 3e-3, "batch_size": 4, "save_steps": 50, "eval_max_new_tokens": 4}


@pytest.fixture
def scratch_version(member, tiny_model_dir):
    """The session's tiny nano model (hidden 64, 2 layers, context 256) registered as a from-scratch version."""
    from apps.registry.services import model_version_register

    return model_version_register(name="nano from scratch", kind="full", base_model=None, source_dir=tiny_model_dir,
                                  hyperparameters={"method": "scratch", "size": "nano"}, created_by=member)


def _errors(response) -> dict[str, str]:
    assert response.status_code == 422, response.content
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def _post(api, **body):
    return api.post("/api/runs", body, content_type="application/json")


@pytest.fixture
def trained_scratch_version(member, qa_version, tiny_model_dir, tmp_path):
    """The tiny nano model trained a few steps on the dataset's training split (what a short scratch run
    leaves), registered as a from-scratch version: its loss is well below a random model's."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from apps.registry.services import model_version_register
    from workers.engine.data import PadCollator, tokenize_examples

    train, _ = services.version_examples(qa_version)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    items = tokenize_examples(tokenizer, train, max_len=128)[0].items
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    collate = PadCollator(tokenizer.pad_token_id)
    for step in range(12):
        batch = collate([items[(4 * step + i) % len(items)] for i in range(4)])
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(tmp_path / "parent")
    tokenizer.save_pretrained(tmp_path / "parent")
    return model_version_register(name="nano, trained from scratch", kind="full", base_model=None,
                                  source_dir=tmp_path / "parent", dataset_version=qa_version,
                                  hyperparameters={"method": "scratch", "size": "nano"}, created_by=member)


@pytest.mark.django_db(transaction=True)
def test_grow_keeps_the_loss_then_trains_and_records_the_parent(client, member, qa_version,
                                                                 trained_scratch_version, settings):
    from transformers import AutoConfig

    from workers.training import train_run

    parent = trained_scratch_version
    run = services.run_create(user=member, dataset_version_id=qa_version.pk, method="grow",
                              parent_version_id=parent.pk, hyperparameters={**FAST, "max_steps": 6})
    assert run.hyperparameters["target_size"] == "micro"  # "next" resolved and stored
    assert run.hyperparameters["max_seq_len"] == 256  # capped at the parent's context
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error

    grow = run.summary["grow"]
    assert grow["split"] == "validation" and grow["examples"] == 4
    assert grow["parent_loss"] < 5.0  # a trained parent (a random one sits near ln(vocab) = 5.9)
    # before any training the grown model computes what its parent computes ...
    assert abs(grow["grown_loss"] - grow["parent_loss"]) <= 1e-4 * grow["parent_loss"]
    assert grow["rel_diff"] <= grow["tolerance"] == 1e-4 and grow["max_abs_logit_diff"] < 1e-3
    # ... then it trains lower
    assert run.summary["eval_loss"] < grow["grown_loss"] - 0.05
    version = run.model_version
    assert version.parent_id == parent.pk and version.kind == "full" and version.base_model_id is None
    config = AutoConfig.from_pretrained(settings.ARTIFACT_ROOT / version.artifact_path)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (128, 4, 4)
    assert grow["parameters_after"] > grow["parameters_before"]

    # the run page shows both losses and the loss after training; the version page names the parent
    client.force_login(member)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert f"grows <a href=\"/models/{parent.pk}/\">version #{parent.pk}</a>" in page
    assert f"Grown from version #{parent.pk}" in page
    for cell, value in (("grow-parent-loss", grow["parent_loss"]), ("grow-start-loss", grow["grown_loss"]),
                        ("grow-trained-loss", run.summary["eval_loss"])):
        assert f'id="{cell}">{value:.6f}<' in page
    page = client.get(f"/models/{version.pk}/").content.decode()
    assert f'<a href="/models/{parent.pk}/">{parent.name}</a>' in page


def test_estimate_shows_the_grown_size(api, qa_version, scratch_version, tiny_model_dir):
    from workers.engine.grow import parameters
    from workers.engine.tiny import NAMED_SIZES

    r = api.post("/api/runs/estimate", {"dataset_version_id": qa_version.pk, "method": "grow",
                                        "parent_version_id": scratch_version.pk,
                                        "hyperparameters": {"target_size": {"hidden": 128, "layers": 3}}},
                 content_type="application/json")
    assert r.status_code == 200, r.content
    body = r.json()
    target = body["hyperparameters"]["target_size"]
    assert target == {"hidden_size": 128, "num_hidden_layers": 3, "intermediate_size": 256,
                      "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 32}
    vocab = json.loads((tiny_model_dir / "config.json").read_text())["vocab_size"]
    assert body["estimate"]["parameters"] == parameters(target, vocab)
    assert body["estimate"]["parameters"] > parameters({**NAMED_SIZES["nano"], "num_key_value_heads": 4,
                                                         "head_dim": 16}, vocab)


@pytest.mark.parametrize("target,message", [
    ({"hidden_size": 32}, "The target is smaller than the model (hidden 32 < 64, head size 8 < 16)"),
    ("nano", "The target is the model's own size"),
    ({"hidden_size": 96}, "hidden_size 96 is not a whole multiple of the model's 64"),
    ("huge", "Unknown size; choose one of next, nano"),
    ({"depth": 4}, "Unknown dimension 'depth'"),
])
def test_bad_targets_are_422_on_target_size(api, qa_version, scratch_version, target, message):
    r = _post(api, dataset_version_id=qa_version.pk, method="grow", parent_version_id=scratch_version.pk,
              hyperparameters={"target_size": target})
    errors = _errors(r)
    assert set(errors) == {"hyperparameters.target_size"} and errors["hyperparameters.target_size"].startswith(message)
    assert TrainingRun.objects.count() == 0


def test_wrong_parents_are_422_on_parent_version_id(api, member, qa_version, tiny_base_model, tiny_model_dir,
                                                     settings):
    from apps.registry.services import model_version_register
    from tests.factories import ModelVersionFactory

    adapter = ModelVersionFactory(kind="adapter", base_model=tiny_base_model, artifact_path="models/x/weights")
    finetuned = model_version_register(name="full fine-tune of tiny", kind="full", base_model=tiny_base_model,
                                       source_dir=tiny_model_dir)
    cases = {adapter.pk: "Grow needs a from-scratch full-weights version; version %d is a LoRA adapter on tiny",
             finetuned.pk: "Version %d was fine-tuned from the base model tiny"}
    for pk, message in cases.items():
        errors = _errors(_post(api, dataset_version_id=qa_version.pk, method="grow", parent_version_id=pk,
                               hyperparameters={"target_size": "micro"}))
        assert errors["parent_version_id"].startswith(message % pk)
        assert "hyperparameters.target_size" not in errors  # only the parent is named
    errors = _errors(_post(api, dataset_version_id=qa_version.pk, method="grow"))
    assert errors == {"parent_version_id": "A grow run starts from a from-scratch model version: give "
                                           "parent_version_id."}
    assert TrainingRun.objects.count() == 0


def test_grow_on_together_is_refused(api, qa_version, scratch_version, settings):
    settings.TOGETHER_API_KEY = "test-key"
    errors = _errors(_post(api, dataset_version_id=qa_version.pk, method="grow", backend="together",
                           parent_version_id=scratch_version.pk, base_model="m"))
    assert errors["backend"] == "Grow runs train locally: choose the local backend."


def test_form_creates_a_grow_run(client, member, qa_version, scratch_version):
    client.force_login(member)
    page = client.get(f"/runs/new/?method=grow&parent_version={scratch_version.pk}").content.decode()
    assert 'name="target_size"' in page and 'name="grow_noise"' in page
    r = client.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "grow", "backend": "local",
                                   "parent_version": scratch_version.pk, "target_size": "tiny", "max_steps": "2",
                                   "action": "create"})
    assert r.status_code == 302, r.content.decode()[-2000:]
    run = TrainingRun.objects.get()
    assert run.method == "grow" and run.parent_version_id == scratch_version.pk and run.base_model_id is None
    assert run.hyperparameters["target_size"] == "tiny" and run.hyperparameters["grow_noise"] == 0.05
    r = client.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "grow", "backend": "local",
                                   "parent_version": scratch_version.pk, "target_size": "nano", "action": "estimate"},
                    HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and "The target is the model&#x27;s own size" in r.content.decode()
