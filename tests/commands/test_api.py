"""POST /api/commands/parse: 422s and 401, names resolved against the database for the caller, the `api` call it
returns performed as-is (the run, the deploy, the rollback, the chain it describes really happen), and the
permission check living in the service that executes: a member's deploy is planned with `allowed: false` and
its request is refused with 403, the alias untouched."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client

from apps.registry.models import Alias, BaseModel
from tests.factories import (
    AliasFactory,
    ApiKeyFactory,
    BaseModelFactory,
    DatasetVersionFactory,
    DeploymentFactory,
    ModelVersionFactory,
    TrainingRunFactory,
    qa_example,
)

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    c = Client()
    c.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=user).plaintext}"
    return c


def parse(client, text, status=200) -> dict:
    r = client.post("/api/commands/parse", {"text": text}, content_type="application/json")
    assert r.status_code == status, r.content
    return r.json()


def perform(client, out):
    api = out["api"]
    body = json.dumps(api["body"]) if api["body"] is not None else None
    return client.generic(api["method"], api["path"], body or "", content_type="application/json")


@pytest.fixture
def demo(member):
    return DatasetVersionFactory(owner=member, dataset__name="demo", examples=[qa_example(i) for i in range(12)],
                                 examples__validation=[qa_example(i) for i in range(12, 14)])


@pytest.mark.parametrize("body", [{"text": ""}, {"text": "   "}, {}, {"text": "train\x00demo"}, {"text": "x" * 1001},
                                  {"text": 12}])
def test_bad_text_is_a_422(member, body):
    r = _client(member).post("/api/commands/parse", body, content_type="application/json")
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "invalid"


def test_anonymous_is_401(db):
    assert Client().post("/api/commands/parse", {"text": "status"}, content_type="application/json").status_code == 401


def test_train_resolves_the_dataset_and_its_call_creates_the_run(member, demo, tiny_base_model):
    from apps.training.models import TrainingRun

    c = _client(member)
    out = parse(c, "train demo with lr 1e-5 and 3 epochs")
    assert out["action"] == "train" and out["allowed"] and out["missing"] == []
    assert out["api"] == {"method": "POST", "path": "/api/runs", "body": {
        "dataset_version_id": demo.pk, "method": "lora", "base_model": "tiny",
        "hyperparameters": {"learning_rate": 1e-5, "epochs": 3}}}
    assert out["params"]["dataset"] == "demo" and out["params"]["base_model"] == "tiny"
    assert "learning rate 1e-5" in out["summary"] and "3 epochs" in out["summary"]
    assert out["form_url"] == (f"/runs/new/?method=lora&dataset_version={demo.pk}&base_model=tiny&learning_rate=1e-5"
                               "&epochs=3")
    assert out["hub_do"] == 'hub do "train demo with lr 1e-5 and 3 epochs"'
    assert not TrainingRun.objects.exists()  # nothing runs on parse
    r = perform(c, out)
    assert r.status_code == 201, r.content
    run = TrainingRun.objects.get(pk=r.json()["id"])
    assert run.hyperparameters["learning_rate"] == 1e-5 and run.hyperparameters["epochs"] == 3
    assert out["result_url"].format(**r.json()) == f"/runs/{run.pk}/"
    # the form the bar links to shows the same values
    c.force_login(member)
    html = c.get(out["form_url"]).content.decode()
    assert 'name="learning_rate" value="1e-5"' in html and 'name="epochs" value="3"' in html
    # any hyperparameter of the table prefills it; bad values are shown, never a 5xx (the POST validates them)
    from apps.training.forms import RunForm
    from tests.test_url_fuzz import BAD_QUERY_VALUES

    for bad in BAD_QUERY_VALUES:
        query = urlencode({k: bad for k in ("base_model", "backend", "name", *RunForm.HP_FIELDS)})
        assert c.get(f"/runs/new/?{query}").status_code == (422 if bad == "\x00" else 200), bad  # NUL: refused early


def test_train_without_a_dataset_asks_for_one_and_suggests_them(member, demo):
    BaseModelFactory(id="smol", is_default=True)
    out = parse(_client(member), "Train model with learning rate 0.00001 and 3 epochs")
    assert out["missing"] == ["dataset"] and out["api"] is None and out["params"]["base_model"] == "smol"
    assert out["suggestions"][0] == "Train model with learning rate 0.00001 and 3 epochs on demo"
    typo = parse(_client(member), "train dmeo with 2 epochs")
    assert typo["missing"] == ["dataset"] and "Did you mean demo?" in typo["problems"][0]["message"]
    assert typo["suggestions"] == ["train demo with 2 epochs"]
    BaseModelFactory(id="other")  # two base models and no default: which one is asked, not guessed
    BaseModel.objects.filter(pk="smol").update(is_default=False)
    out = parse(_client(member), "train demo")
    assert out["missing"] == ["base_model"] and out["suggestions"] == ["train demo with base model other",
                                                                       "train demo with base model smol"]


def test_hyperparameters_the_backend_does_not_use_are_noted(member, demo):
    BaseModelFactory(id="smol", is_default=True)
    out = parse(_client(member), "train demo with suffix mine and lr 2e-4")
    assert out["api"]["body"]["hyperparameters"] == {"learning_rate": 2e-4}
    assert any(n.startswith("suffix mine: not used by Together.ai runs") for n in out["notes"])
    remote = parse(_client(member), "Fine-tune model meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo with suffix "
                                    "my-elizaos-model learning rate 0.0001 epochs 5 batch size 2 on demo")
    body = remote["api"]["body"]
    assert body["backend"] == "together" and body["base_model"] == "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo"
    assert body["hyperparameters"] == {"learning_rate": 1e-4, "epochs": 5, "batch_size": 2,
                                       "suffix": "my-elizaos-model"}


def test_deploy_is_for_admins_and_the_service_refuses_a_member(member, admin_user):
    v_old, v_new = ModelVersionFactory(name="old"), ModelVersionFactory(name="demo-lora", final_loss=0.51234)
    AliasFactory(name="production", model_version=v_old)
    mine = _client(member)
    out = parse(mine, f"deploy version {v_new.pk} to production")
    assert out["action"] == "deploy" and out["allowed"] is False
    assert out["problems"] == [{"field": None, "message": out["problems"][0]["message"]}]
    assert "Only admins" in out["problems"][0]["message"]
    assert out["api"]["path"] == f"/api/models/{v_new.pk}/deploy" and out["api"]["body"]["alias"] == "production"
    r = perform(mine, out)  # what a client that ignored `allowed` would get
    assert r.status_code == 403
    assert Alias.objects.get(name="production").model_version_id == v_old.pk
    boss = _client(admin_user)
    out = parse(boss, f"deploy version {v_new.pk} to production")
    assert out["allowed"] is True
    assert out["summary"] == (f"Point production at mv-{v_new.pk} (demo-lora, final loss 0.5123), replacing "
                              f"mv-{v_old.pk} (old).")
    r = perform(boss, out)
    assert r.status_code == 200, r.content
    assert Alias.objects.get(name="production").model_version_id == v_new.pk
    assert out["result_url"].format(**r.json()) == "/models/aliases/production/"


def test_deploy_never_defaults_the_alias(admin_user):
    v = ModelVersionFactory()
    AliasFactory(name="staging")
    out = parse(_client(admin_user), f"deploy version {v.pk}")
    assert out["missing"] == ["alias"] and out["api"] is None
    assert out["suggestions"] == [f"deploy version {v.pk} to staging"]


def test_rollback_names_its_target_and_performs_it(admin_user):
    v1, v2 = ModelVersionFactory(name="first"), ModelVersionFactory(name="second")
    DeploymentFactory(alias_name="production", model_version=v1)
    DeploymentFactory(alias_name="production", model_version=v2, previous_version=v1)
    AliasFactory(name="production", model_version=v2)
    c = _client(admin_user)
    out = parse(c, "roll back production")
    assert out["api"]["body"]["to_version_id"] == v1.pk
    assert out["summary"].startswith(f"Roll production back from mv-{v2.pk} (second) to mv-{v1.pk} (first)")
    assert perform(c, out).status_code == 200
    assert Alias.objects.get(name="production").model_version_id == v1.pk
    unknown = parse(c, "roll back prodution")
    assert unknown["missing"] == ["alias"] and unknown["suggestions"] == ["roll back production"]


def test_configure_keeps_the_chain_and_adds_settings_and_a_fallback(admin_user):
    from apps.proxy import selectors
    from apps.proxy.models import Provider

    Provider.objects.create(name="openrouter", kind="openai", base_url="https://openrouter.example/v1",
                            model_ids=["gemini-pro"])
    deployed = ModelVersionFactory()
    AliasFactory(name="auto-coder", model_version=deployed)
    AliasFactory(name="production")
    c = _client(admin_user)
    out = parse(c, "Setup auto-coder with temperature 0.1")
    assert out["api"] == {"method": "PUT", "path": "/api/aliases/auto-coder/chain", "body": {
        "targets": [], "settings": {"temperature": 0.1, "max_tokens": None, "timeout_s": None, "system_prefix": "",
                                    "tools_allow": None}}}
    assert perform(c, out).status_code == 200
    out = parse(c, "configure auto-coder with max tokens 4000 and fallback model gemini-pro, timeout 30000")
    assert out["api"]["body"]["targets"] == [{"model_version_id": deployed.pk},
                                             {"provider": "openrouter", "model": "gemini-pro"}]
    assert perform(c, out).status_code == 200, out
    chain = selectors.chain_get("auto-coder")
    assert chain["settings"]["temperature"] == 0.1  # kept from the first command
    assert chain["settings"]["max_tokens"] == 4000 and chain["settings"]["timeout_s"] == 30.0
    assert [t["label"] for t in chain["targets"]] == [f"version:{deployed.pk}", "provider:openrouter/gemini-pro"]
    missing = parse(c, "configure production with fallback model no-such-model")
    assert missing["api"] is None and "No provider lists 'no-such-model'" in missing["problems"][0]["message"]


def test_status_by_job_id_latest_and_all(member):
    run = TrainingRunFactory(owner=member, remote_job_id="ft-abc123", backend="together", status="running",
                             current_step=5, total_steps=12, name="eliza")
    c = _client(member)
    out = parse(c, "Check training status for job ft-abc123")
    assert out["api"] == {"method": "GET", "path": f"/api/runs/{run.pk}", "body": None}
    assert out["summary"] == f"Run {run.pk} (eliza) is running: step 5 of 12."
    assert parse(c, "status of the latest run")["params"]["run_id"] == run.pk
    everything = parse(c, "Check training status")
    assert everything["api"]["path"] == "/api/runs?status=queued,running"
    assert everything["params"] == {"running": 1, "queued": 0}
    assert c.get(everything["api"]["path"]).status_code == 200
    nope = parse(c, "Check training status for job ft-nope")
    assert nope["api"] is None and nope["problems"][0]["message"] == "No run has the remote job id ft-nope."


def test_review_needs_the_right_to_create_one(member, make_user, demo):
    bob = make_user("bob", "member")
    out = parse(_client(member), "start a review of demo with bob")
    assert out["allowed"] and out["api"]["body"] == {"dataset_version_id": demo.pk, "name": "Review of demo v1",
                                                     "assignees": ["bob"], "overlap": 1}
    r = perform(_client(member), out)
    assert r.status_code == 201, r.content
    other = parse(_client(bob), "start a review of demo")  # bob does not own demo
    assert other["allowed"] is False
    assert "Only admins, and members on their own datasets" in other["problems"][0]["message"]


def test_generate_resolves_the_source(member):
    from apps.sources.models import Source

    src = Source.objects.create(name="ElizaOS", kind="path", location="/srv/eliza", location_key="/srv/eliza",
                                owner=member)
    out = parse(_client(member), "Generate training data for ElizaOS with max 1000 scenarios")
    assert out["api"] == {"method": "POST", "path": f"/api/sources/{src.pk}/generations",
                          "body": {"max_examples": 1000}}
    assert out["form_url"] == f"/sources/{src.pk}/generate/?max_examples=1000"  # the form, prefilled
    out = parse(_client(member), "Generate training data with max 500 scenarios")  # the only source
    assert out["api"]["body"] == {"max_examples": 500} and out["notes"] == ["Using your only source, ElizaOS."]
    bad = parse(_client(member), "generate from elizza with max 0 scenarios")
    assert bad["api"] is None and bad["suggestions"] == ["generate from ElizaOS with max 0 scenarios"]


def test_unknown_commands_get_suggestions(member):
    out = parse(_client(member), "trian demo with lr 1e-5")
    assert out["action"] == "unknown" and out["api"] is None
    assert out["suggestions"][0] == "train demo with lr 1e-5"
    out = parse(_client(member), "make me a sandwich")
    assert out["action"] == "unknown" and len(out["suggestions"]) >= 3
