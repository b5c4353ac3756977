"""DPO in a real browser (Debian's chromium through Playwright; HTML from Django's test client, the run's
websocket mocked): the new-run form with method dpo shows the preference rows and hides what DPO does not
use; a DPO run page draws its rewards and accuracy charts from the stored points and extends them with live
progress; a run the actor really trained shows its margins and accuracy in the results. With
HUB_SHOTS=<folder> the pages are also saved as 1440x900 screenshots."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.training.test_dpo import _pairs_version
from tests.training.test_run_page_browser import page_for  # noqa: F401 - the fixture

pytestmark = [pytest.mark.django_db, pytest.mark.browser]
SHOTS = os.environ.get("HUB_SHOTS")


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1440, "height": 900})
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def test_new_run_form_with_method_dpo(client, member, tiny_base_model, page_for):  # noqa: F811
    pairs = _pairs_version(member)
    client.force_login(member)
    html = client.get(f"/runs/new/?dataset_version={pairs.pk}&method=dpo").content.decode()
    page = page_for(html, "/runs/new/", [])
    assert page.input_value("select[name=method]") == "dpo"
    visible = page.evaluate("""() => {
        const form = document.getElementById('run-form'), out = {};
        for (const name of ['beta', 'loss_type', 'lora_r', 'lora_dropout', 'size', 'base_model', 'parent_version',
                            'stage1_version']) {
            const el = form.elements[name];
            out[name] = !el.disabled && !!el.offsetParent;
        }
        return out;
    }""")
    assert visible == {"beta": True, "loss_type": True, "lora_r": True, "lora_dropout": False, "size": False,
                       "base_model": True, "parent_version": True, "stage1_version": False}
    assert page.get_attribute("#run-form input[name=learning_rate]", "placeholder") == "5e-05"
    assert page.get_attribute("#run-form input[name=beta]", "placeholder") == "0.1"
    assert "Preference (DPO)" in page.inner_text("#run-form")
    _shot(page, "new-run-dpo.png")
    page.select_option("select[name=method]", "lora")
    assert page.is_hidden("#run-form input[name=beta]")


def test_dpo_run_page_draws_and_extends_the_preference_charts(client, member, tiny_base_model, page_for):  # noqa: F811
    from apps.training import services

    pairs = _pairs_version(member)
    run = services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny", method="dpo",
                              hyperparameters={"max_steps": 12})

    def point(step):
        return (step, {"kind": "train", "loss": 0.69 - 0.03 * step, "rewards/chosen": 0.02 * step,
                       "rewards/rejected": -0.06 * step, "rewards/margins": 0.08 * step,
                       "rewards/accuracies": min(1.0, 0.4 + 0.08 * step), "tokens_per_s": 900.0, "total_steps": 12})

    services.run_progress_record(run_id=run.pk, points=[point(s) for s in range(1, 7)] + [
        (6, {"kind": "eval", "eval_loss": 0.5, "rewards/margins": 0.45, "rewards/accuracies": 0.75})])
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    live = [point(s) for s in range(7, 10)]
    page = page_for(html, f"/runs/{run.pk}/", [
        {"event": "progress", "payload": {"run_id": run.pk, "status": "running", "current_step": 9, "total_steps": 12,
                                          "points": [{"step": s, **m} for s, m in live],
                                          "summary": {"rewards/margins": 0.72, "rewards/accuracies": 1.0}}},
    ])
    page.wait_for_function("() => { const g = document.getElementById('reward-chart');"
                           " return g.data && g.data[2].x.length === 9; }")
    traces = page.evaluate("""() => ({
        rewards: document.getElementById('reward-chart').data.map(t => [t.name, t.x.length]),
        accuracy: document.getElementById('accuracy-chart').data.map(t => [t.name, t.x.length]),
    })""")
    assert traces["rewards"] == [["chosen", 9], ["rejected", 9], ["margin", 9], ["validation margin", 1]]
    assert traces["accuracy"] == [["train", 9], ["validation", 1]]
    page.wait_for_function("() => document.getElementById('stat-margin').textContent === '0.7200'")
    assert page.inner_text("#stat-accuracy").strip() == "100 %"
    assert "{" not in page.inner_text("#preference-charts")  # no raw JSON on the page
    _shot(page, "run-dpo.png")


@pytest.mark.django_db(transaction=True)
def test_finished_dpo_run_page(client, member, tiny_base_model, page_for):  # noqa: F811
    """A run really trained by the actor: its results card and its charts from the stored points."""
    from apps.training import services
    from workers.training import train_run

    pairs = _pairs_version(member)
    run = services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny", method="dpo",
                              hyperparameters={"max_steps": 8, "learning_rate": 5e-3, "save_steps": 4,
                                               "warmup_ratio": 0.0, "eval_max_new_tokens": 4})
    train_run.fn(run.pk)
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    page = page_for(html, f"/runs/{run.pk}/", [])
    page.wait_for_function("() => { const g = document.getElementById('accuracy-chart');"
                           " return g.data && g.data[0].x.length === 8; }")
    results = page.inner_text("#results")
    assert "Reward margin" in results and "validation" in results and "Chosen preferred" in results
    assert "Perplexity" not in results and "None" not in results
    _shot(page, "run-dpo-finished.png")
