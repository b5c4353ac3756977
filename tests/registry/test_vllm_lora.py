"""Versions served by name from a vLLM inference server (apps/registry/vllm.py, workers/registry_vllm.py).

The inference server is tests/fakes/fake_vllm.py (vLLM's load/unload/models/chat routes, its error shapes, its
--api-key), on real HTTP; the adapters are real PEFT adapters of the tiny test model; the hub is the real ASGI app
on a loopback port, called with the official openai SDK; the sync runs in a real Dramatiq worker on the stub broker,
as the worker process runs it after a deployment commits."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from django.urls import reverse

from tests.fakes.fake_vllm import FakeVLLM, serve
from tests.fakes.together_server import closed_port_url
from tests.proxy.conftest import hub_server  # noqa: F401  - the real ASGI app on a loopback port

pytestmark = pytest.mark.django_db(transaction=True)

VLLM_KEY = "vllm-secret"


@pytest.fixture(scope="module")
def fake_vllm():
    with serve(FakeVLLM(base_model="tiny", api_key=VLLM_KEY)) as fake:
        yield fake


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A real LoRA adapter (rank 4) of the tiny test model, as training saves it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


@pytest.fixture
def vllm(settings, fake_vllm):
    """The hub's inference server is the fake vLLM, with runtime LoRA loading on; a clean broker and caches."""
    import dramatiq

    from apps.proxy.gateway import caches_clear

    settings.HUB_INFERENCE_URL = fake_vllm.base_url
    settings.HUB_INFERENCE_VLLM_LORA = True
    settings.HUB_INFERENCE_BASE_MODEL = "tiny"
    settings.HUB_INFERENCE_API_KEY = VLLM_KEY
    settings.HUB_INFERENCE_ARTIFACT_ROOT = ""
    fake_vllm.reset()
    fake_vllm.max_lora_rank = 16
    dramatiq.get_broker().flush_all()
    caches_clear()
    yield fake_vllm
    caches_clear()


@pytest.fixture
def adapters(tiny_base_model, adapter_dir):
    """Two adapter versions of the tiny base model, each owning a copy of the adapter."""
    from apps.registry.services import model_version_register

    return [model_version_register(name=f"adapter {i}", kind="adapter", base_model=tiny_base_model,
                                   source_dir=adapter_dir) for i in (1, 2)]


@pytest.fixture
def sdk(hub_server, api_key):  # noqa: F811
    with openai.OpenAI(base_url=hub_server.url + "/v1", api_key=api_key, max_retries=0, timeout=20) as client:
        yield client


def run_worker() -> None:
    """Play the worker process: run every queued message (the syncs sent after commit) to the end."""
    import dramatiq

    from workers import proxy, registry_vllm  # noqa: F401  - declares the actors (syncs, request logs) here

    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        broker.join("default", timeout=60_000)
        worker.join()
    finally:
        worker.stop()


def ask(sdk, model: str) -> str:
    r = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8)
    return r.choices[0].message.content


def weights(version) -> str:
    from django.conf import settings

    return str(settings.ARTIFACT_ROOT / "models" / f"mv-{version.pk}" / "weights")


def deploy(admin, version, alias="production", reason=""):
    from apps.registry.services import alias_deploy

    return alias_deploy(actor=admin, version_id=version.pk, alias=alias, reason=reason)


def history(admin_api, alias="production") -> list[dict]:
    r = admin_api.get(f"/api/aliases/{alias}/deployments")
    assert r.status_code == 200, r.content
    return r.json()["deployments"]


# --- deploy, the proxy, rollback ----------------------------------------------------------------------------
def test_deploy_loads_the_adapter_by_name_and_the_alias_reaches_it(vllm, adapters, admin_user, admin_api, sdk):
    from apps.registry.services import alias_rollback

    v1, v2 = adapters
    deploy(admin_user, v1, reason="first rollout")
    assert "/v1/load_lora_adapter" not in vllm.paths(), "the HTTP call waits for the worker, after the commit"
    run_worker()
    assert vllm.adapters == {f"mv-{v1.pk}": weights(v1)}
    load = next(c for c in vllm.calls if c["path"] == "/v1/load_lora_adapter")
    assert load["body"] == {"lora_name": f"mv-{v1.pk}", "lora_path": weights(v1)}
    assert load["auth"] == f"Bearer {VLLM_KEY}"

    assert ask(sdk, "production") == f"served by mv-{v1.pk}"
    chat = [c for c in vllm.calls if c["path"] == "/v1/chat/completions"][-1]
    assert chat["body"]["model"] == f"mv-{v1.pk}" and chat["auth"] == f"Bearer {VLLM_KEY}"

    vllm.calls.clear()
    deploy(admin_user, v2)
    run_worker()
    assert vllm.adapters == {f"mv-{v2.pk}": weights(v2)}
    posts = [(c["path"], c["body"]["lora_name"]) for c in vllm.calls if c["method"] == "POST"]
    assert posts == [("/v1/load_lora_adapter", f"mv-{v2.pk}"), ("/v1/unload_lora_adapter", f"mv-{v1.pk}")], \
        "the new version is loaded before the old one goes"
    assert ask(sdk, "production") == f"served by mv-{v2.pk}"

    alias_rollback(actor=admin_user, alias="production", reason="v2 regressed")
    run_worker()
    assert vllm.adapters == {f"mv-{v1.pk}": weights(v1)}
    assert ask(sdk, "production") == f"served by mv-{v1.pk}"
    with pytest.raises(openai.APIStatusError) as err:  # unloaded: vLLM's 404, as the proxy reports an upstream's
        ask(sdk, f"mv-{v2.pk}")
    assert err.value.status_code == 502 and f"The model `mv-{v2.pk}` does not exist" in str(err.value)

    rows = history(admin_api)
    assert [(d["action"], d["warning"]) for d in rows] == [("rollback", None), ("deploy", None), ("deploy", None)]
    assert rows[-1]["reason"] == "first rollout"


def test_a_version_two_aliases_serve_stays_loaded_until_neither_does(vllm, adapters, admin_user):
    v1, v2 = adapters
    deploy(admin_user, v1, alias="production")
    deploy(admin_user, v1, alias="staging")
    run_worker()
    deploy(admin_user, v2, alias="production")
    run_worker()
    assert set(vllm.adapters) == {f"mv-{v1.pk}", f"mv-{v2.pk}"}  # staging still serves v1
    deploy(admin_user, v2, alias="staging")
    run_worker()
    assert set(vllm.adapters) == {f"mv-{v2.pk}"}


# --- failures: the deploy stands, with a warning -------------------------------------------------------------
def test_a_failed_load_commits_the_deploy_with_a_warning_on_the_page_and_in_the_api(vllm, adapters, admin_user,
                                                                                    admin_api, client):
    from apps.registry.models import Alias

    v1, _ = adapters
    vllm.load_status = 500
    deploy(admin_user, v1, reason="first rollout")
    run_worker()
    assert Alias.objects.get(name="production").model_version_id == v1.pk  # committed
    assert vllm.adapters == {}
    row = history(admin_api)[0]
    assert row["reason"] == "first rollout"
    assert f"mv-{v1.pk}" in row["warning"] and "HTTP 500" in row["warning"] and "out of memory" in row["warning"]
    assert f"from <artifacts>/models/mv-{v1.pk}/weights" in row["warning"]  # no server path, as job errors
    detail = admin_api.get(f"/api/models/{v1.pk}").json()["deployments"][0]
    assert detail["reason"] == "first rollout" and "HTTP 500" in detail["warning"]

    client.force_login(admin_user)
    page = client.get(reverse("registry:alias", args=["production"])).content.decode()
    assert 'id="serving-warning"' in page and "not served" in page and "out of memory" in page
    assert "first rollout" in page

    vllm.load_status = None  # the GPU has room again: the minute's reconcile loads it and says so
    from workers.registry_vllm import registry_lora_reconcile

    registry_lora_reconcile()
    assert set(vllm.adapters) == {f"mv-{v1.pk}"}
    row = history(admin_api)[0]
    assert "HTTP 500" in row["warning"] and "loaded later, at" in row["warning"]
    page = client.get(reverse("registry:alias", args=["production"])).content.decode()
    assert 'id="serving-warning"' not in page and "loaded later, at" in page


@pytest.mark.parametrize("case, expected", [
    ("runtime_off", "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"),
    ("rank", "LoRA rank 4 is greater than max_lora_rank 2"),
    ("unreachable", "is unreachable"),
    ("bad_key", "refused the key (HTTP 401): set HUB_INFERENCE_API_KEY"),
])
def test_each_refusal_is_a_warning_that_says_what_to_fix(vllm, adapters, admin_user, admin_api, settings, case,
                                                         expected):
    from apps.registry.models import Alias

    v1, _ = adapters
    if case == "runtime_off":
        vllm.runtime_updating = False
    elif case == "rank":
        vllm.max_lora_rank = 2
    elif case == "unreachable":
        settings.HUB_INFERENCE_URL = closed_port_url()
    else:
        settings.HUB_INFERENCE_API_KEY = "wrong"
    deploy(admin_user, v1)
    run_worker()
    assert Alias.objects.get(name="production").model_version_id == v1.pk
    assert vllm.adapters == {}
    assert expected in history(admin_api)[0]["warning"]


def test_already_loaded_counts_as_loaded_and_foreign_adapters_are_left_alone(vllm, adapters, admin_user, admin_api):
    import httpx

    from apps.registry import vllm as hub_vllm

    v1, _ = adapters
    vllm.adapters["someone-elses-lora"] = "/elsewhere"
    vllm.adapters[f"mv-{v1.pk}"] = weights(v1)
    with httpx.Client(headers={"authorization": f"Bearer {VLLM_KEY}"}) as c:  # vLLM's 400 "already been loaded"
        assert hub_vllm._load(c, f"mv-{v1.pk}", weights(v1)) is None
        assert "HTTP 404" in hub_vllm._load(c, "mv-999", "/nowhere")
    deploy(admin_user, v1)
    run_worker()
    assert set(vllm.adapters) == {"someone-elses-lora", f"mv-{v1.pk}"}
    assert history(admin_api)[0]["warning"] is None


def test_versions_vllm_cannot_serve_are_not_loaded_and_say_why(vllm, adapters, admin_user, admin_api,
                                                                tiny_model_dir, adapter_dir):
    from apps.registry.services import base_model_register, model_version_register

    full = model_version_register(name="merged", kind="full", base_model=adapters[0].base_model,
                                  source_dir=tiny_model_dir)
    other_base = base_model_register(model_id="other-base", path=str(tiny_model_dir))
    foreign = model_version_register(name="other adapter", kind="adapter", base_model=other_base,
                                     source_dir=adapter_dir)
    deploy(admin_user, full, alias="merged")
    deploy(admin_user, foreign, alias="other")
    run_worker()
    assert vllm.adapters == {} and "/v1/load_lora_adapter" not in vllm.paths()
    assert "has full weights" in history(admin_api, "merged")[0]["warning"]
    warning = history(admin_api, "other")[0]["warning"]
    assert "adapter of other-base" in warning and "serves tiny (HUB_INFERENCE_BASE_MODEL)" in warning


# --- paths on the vLLM host ----------------------------------------------------------------------------------
def test_the_adapter_path_is_mapped_to_where_the_vllm_host_mounts_the_artifacts(vllm, adapters, admin_user,
                                                                                admin_api, settings, tmp_path):
    v1, v2 = adapters
    mount = tmp_path / "vllm-host" / "artifacts"  # the same files, seen under another path (a shared volume)
    mount.parent.mkdir()
    mount.symlink_to(settings.ARTIFACT_ROOT)
    settings.HUB_INFERENCE_ARTIFACT_ROOT = str(mount)
    deploy(admin_user, v1)
    run_worker()
    assert vllm.adapters == {f"mv-{v1.pk}": f"{mount}/models/mv-{v1.pk}/weights"}

    settings.HUB_INFERENCE_ARTIFACT_ROOT = "/mnt/not-mounted-here"
    deploy(admin_user, v2)
    run_worker()
    warning = history(admin_api)[0]["warning"]
    assert f"/mnt/not-mounted-here/models/mv-{v2.pk}/weights" in warning and "No adapter found" in warning
    assert vllm.adapters == {}  # nothing routes to v1 any more; v2 could not be loaded


def test_a_relative_inference_artifact_root_stops_start_up():
    env = {**os.environ, "HUB_INFERENCE_ARTIFACT_ROOT": "artifacts", "DJANGO_SETTINGS_MODULE": "training_hub.settings"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode != 0
    assert "HUB_INFERENCE_ARTIFACT_ROOT='artifacts' is not an absolute path" in out.stderr


# --- canaries, restarts, chains, off ------------------------------------------------------------------------
def test_a_canary_loads_its_version_beside_the_stable_one_and_a_rollback_unloads_it(vllm, adapters, admin_user,
                                                                                    sdk):
    from apps.experiments.canary import canary_rollback, canary_start

    v1, v2 = adapters
    deploy(admin_user, v1)
    run_worker()
    exp = canary_start(actor=admin_user, version_id=v2.pk, alias="production", percent=50)
    run_worker()
    assert set(vllm.adapters) == {f"mv-{v1.pk}", f"mv-{v2.pk}"}
    answers = {ask(sdk, "production") for _ in range(40)}
    assert answers == {f"served by mv-{v1.pk}", f"served by mv-{v2.pk}"}  # both arms answer
    canary_rollback(actor=admin_user, experiment_id=exp.pk, reason="errors")
    run_worker()
    assert set(vllm.adapters) == {f"mv-{v1.pk}"}


def test_the_reconcile_reloads_after_a_vllm_restart_and_loads_chain_targets(vllm, adapters, admin_user, sdk):
    from apps.proxy import providers
    from workers.registry_vllm import registry_lora_reconcile

    v1, v2 = adapters
    deploy(admin_user, v1)
    run_worker()
    vllm.adapters.clear()  # vLLM restarted: runtime-loaded adapters are gone
    with pytest.raises(openai.APIStatusError, match="does not exist"):
        ask(sdk, "production")
    providers.chain_set(actor=admin_user, name="fallback", targets=[{"model_version_id": v2.pk}])
    registry_lora_reconcile()
    assert set(vllm.adapters) == {f"mv-{v1.pk}", f"mv-{v2.pk}"}
    assert ask(sdk, "production") == f"served by mv-{v1.pk}"
    assert ask(sdk, "fallback") == f"served by mv-{v2.pk}"


def test_with_the_setting_off_a_deploy_sends_nothing(vllm, adapters, admin_user, settings):
    import dramatiq

    settings.HUB_INFERENCE_VLLM_LORA = False
    deploy(admin_user, adapters[0])
    queue = dramatiq.get_broker().queues.get("default")
    sent = [json.loads(m)["actor_name"] for m in (list(queue.queue) if queue is not None else [])]
    assert "registry_lora_sync" not in sent
    run_worker()
    from workers.registry_vllm import registry_lora_reconcile

    registry_lora_reconcile()
    assert vllm.calls == []


@pytest.mark.browser
def test_the_alias_page_shows_the_warning_in_a_browser(vllm, adapters, admin_user, browser, live_server):
    """The warning card and the history row as a person sees them (screenshots into $VLLM_SHOTS when set)."""
    from django.test import Client

    from tests.browser import PROBE
    from workers.registry_vllm import registry_lora_reconcile

    v1, v2 = adapters
    deploy(admin_user, v1, reason="first rollout")
    run_worker()
    vllm.load_status = 500
    deploy(admin_user, v2, reason="more tool calls in the data")
    run_worker()
    c = Client()
    c.force_login(admin_user)
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    ctx.add_cookies([{"name": "sessionid", "value": c.cookies["sessionid"].value, "url": live_server.url}])
    ctx.add_init_script(PROBE)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(live_server.url + reverse("registry:alias", args=["production"]), wait_until="load")
    card = page.locator("#serving-warning")
    assert card.is_visible() and "out of memory" in card.inner_text() and f"mv-{v2.pk}" in card.inner_text()
    rows = page.locator("#history tr")
    assert "more tool calls in the data" in rows.nth(1).inner_text() and "HTTP 500" in rows.nth(1).inner_text()
    assert "⚠" not in rows.nth(2).inner_text()  # the first deploy loaded fine
    shots = os.environ.get("VLLM_SHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{shots}/alias-warning.png", full_page=True)
    vllm.load_status = None
    registry_lora_reconcile()
    page.reload(wait_until="load")
    assert page.locator("#serving-warning").count() == 0
    assert "loaded later, at" in page.locator("#history tr").nth(1).inner_text()
    if shots:
        page.screenshot(path=f"{shots}/alias-warning-resolved.png", full_page=True)
    assert errors == [] and page.evaluate("window.__csp") == []
    ctx.close()
