"""Issue 14, deploying: the alias is chosen (never `production` by default) and every deploy is confirmed with the
alias, the version it replaces and the version it deploys; each rollback button names its target; a version
promoted from a checkpoint keeps its lineage (run, step, the training loss there). Client tests, then one
browser test of the deploy and rollback pages (screenshots with HUB_SHOTS=<folder>)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser import logged_in_page
from tests.factories import (
    CheckpointFactory,
    MetricPointFactory,
    ModelVersionFactory,
    TrainingRunFactory,
)

SHOTS = os.environ.get("HUB_SHOTS")


def _shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


@pytest.fixture
def served(db, admin_user):
    """production served `old`, then `current` (now); `fresh` was never deployed."""
    from apps.registry.services import alias_deploy

    old, current, fresh = (ModelVersionFactory(name=n) for n in ("old one", "current one", "fresh one"))
    alias_deploy(actor=admin_user, version_id=old.pk, alias="production", reason="first")
    alias_deploy(actor=admin_user, version_id=current.pk, alias="production", reason="second")
    return old, current, fresh


@pytest.mark.django_db
def test_deploy_needs_a_chosen_alias_and_a_confirmation(client, admin_user, served):
    from apps.registry.models import Alias

    _old, current, fresh = served
    client.force_login(admin_user)
    page = client.get(f"/models/{fresh.pk}/").content.decode()
    alias_input = re.search(r'<input[^>]*name="alias"[^>]*>', page).group(0)
    assert "value=" not in alias_input and "required" in alias_input  # no default alias: one must be chosen
    assert '<datalist id="alias-options"><option value="production">' in page
    r = client.post(f"/models/{fresh.pk}/deploy", {"alias": ""})
    assert r.status_code == 422 and b"Choose the alias to deploy to." in r.content
    r = client.post(f"/models/{fresh.pk}/deploy", {"alias": "production"})
    body = r.content.decode()
    summary = body[body.index('id="deploy-summary"'):body.index("</dl>", body.index('id="deploy-summary"'))]
    assert r.status_code == 200 and "Yes, deploy to production" in body
    assert f"current one</strong> <span class=\"mono\">mv-{current.pk}" in summary  # what it replaces
    assert f"fresh one</strong> <span class=\"mono\">mv-{fresh.pk}" in summary  # what it deploys
    assert Alias.objects.get(name="production").model_version_id == current.pk
    r = client.post(f"/models/{fresh.pk}/deploy", {"alias": "production", "confirm": "on"})
    assert r.status_code == 302 and Alias.objects.get(name="production").model_version_id == fresh.pk


@pytest.mark.django_db
def test_rollback_buttons_name_their_target(client, admin_user, served):
    old, current, _ = served
    client.force_login(admin_user)
    page = client.get("/models/aliases/production/").content.decode()
    assert f"Roll back production to <span id=\"rollback-target\">old one (mv-{old.pk})</span>" in page
    assert f"Roll back to mv-{old.pk}…" in client.get("/models/").content.decode()
    assert f"Roll back production to old one (mv-{old.pk})…" in client.get(f"/models/{current.pk}/").content.decode()


@pytest.mark.django_db
def test_promoted_checkpoint_keeps_its_lineage(client, member):
    run = TrainingRunFactory(owner=member, name="lr sweep", status="succeeded")
    for step, loss in ((10, 2.5), (20, 1.75), (30, 1.25)):
        MetricPointFactory(run=run, step=step, values={"loss": loss, "learning_rate": 1e-4})
    promoted = ModelVersionFactory(name="lr sweep @ step 20", hyperparameters={
        "lora_target_modules": ["q_proj", "v_proj"], "packing": False, "warmup_ratio": None, "run_id": run.pk})
    CheckpointFactory(run=run, step=20, eval_loss=1.9, model_version=promoted)
    from apps.registry.selectors import model_version_lineage

    lineage = model_version_lineage(promoted)
    assert lineage["run"]["id"] == run.pk and lineage["checkpoint"] == {"step": 20, "eval_loss": 1.9, "train_loss": 1.75}
    assert lineage["final_loss"] == 1.75
    client.force_login(member)
    page = client.get(f"/models/{promoted.pk}/").content.decode()
    run_cell = page[page.index('id="lineage-run"'):page.index("</dd>", page.index('id="lineage-run"'))]
    assert f"run {run.pk} · lr sweep" in run_cell and "step 20" in run_cell and "1.9000" in run_cell
    assert "1.7500" in page[page.index('id="final-loss"'):]
    hp = page[page.index('id="hyperparameters"'):page.index("</dl>", page.index('id="hyperparameters"'))]
    assert "q_proj, v_proj" in hp and ">no<" in hp and ">—<" in hp  # no Python reprs
    assert "[&#x27;" not in hp and "None" not in hp and "False" not in hp
    listing = client.get("/models/").content.decode()
    assert f"run {run.pk} @ step 20" in listing and "1.7500" in listing


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_deploy_and_rollback_pages_in_a_browser(browser, live_server, admin_user, served):
    from apps.registry.models import Alias

    old, current, fresh = served
    ctx, page, errors = logged_in_page(browser, live_server, admin_user, ignore=("status of 422",))
    page.goto(f"{live_server.url}/models/{fresh.pk}/", wait_until="networkidle")
    assert page.input_value("#deploy-form input[name=alias]") == ""
    page.fill("#deploy-form input[name=alias]", "production")
    page.click("#deploy-form button[type=submit]")
    page.wait_for_selector("#deploy-summary")
    text = page.inner_text("#deploy-box")
    assert f"mv-{current.pk}" in text and f"mv-{fresh.pk}" in text and "Yes, deploy to production" in text
    page.locator("#deploy-box").scroll_into_view_if_needed()
    _shot(page, "deploy-confirm")
    with page.expect_navigation():
        page.click("#deploy-form button[type=submit]")
    assert Alias.objects.get(name="production").model_version_id == fresh.pk
    page.goto(f"{live_server.url}/models/aliases/production/", wait_until="networkidle")
    assert page.inner_text("#rollback-button") == f"Roll back production to current one (mv-{current.pk})"
    page.select_option("#id_to", label=page.locator("#id_to option", has_text=f"mv-{old.pk}").inner_text())
    assert page.inner_text("#rollback-button") == f"Roll back production to old one (mv-{old.pk})"
    _shot(page, "alias-rollback")
    assert errors == []
    ctx.close()
