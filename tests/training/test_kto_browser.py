"""KTO in a real browser (Debian's chromium through Playwright; HTML from Django's test client, the run's
websocket mocked): the new-run form with method kto shows beta and the two KTO weights and hides DPO's loss
type; a KTO run page draws its reward chart (no accuracy chart: TRL logs none for unpaired answers) from the
stored points and extends it with live progress. With HUB_SHOTS=<folder> the pages are saved as screenshots."""
from __future__ import annotations

import pytest

from tests.training.test_dpo import _pairs_version
from tests.training.test_dpo_browser import _shot
from tests.training.test_run_page_browser import page_for  # noqa: F401 - the fixture

pytestmark = [pytest.mark.django_db, pytest.mark.browser]


def test_new_run_form_with_method_kto(client, member, tiny_base_model, page_for):  # noqa: F811
    pairs = _pairs_version(member)
    client.force_login(member)
    html = client.get(f"/runs/new/?dataset_version={pairs.pk}&method=kto").content.decode()
    page = page_for(html, "/runs/new/", [])
    assert page.input_value("select[name=method]") == "kto"
    visible = page.evaluate("""() => {
        const form = document.getElementById('run-form'), out = {};
        for (const name of ['beta', 'desirable_weight', 'undesirable_weight', 'loss_type', 'lora_r', 'lora_dropout',
                            'base_model', 'stage1_version']) {
            const el = form.elements[name];
            out[name] = !el.disabled && !!el.offsetParent;
        }
        return out;
    }""")
    assert visible == {"beta": True, "desirable_weight": True, "undesirable_weight": True, "loss_type": False,
                       "lora_r": True, "lora_dropout": False, "base_model": True, "stage1_version": False}
    assert page.get_attribute("#run-form input[name=desirable_weight]", "placeholder") == "1"
    _shot(page, "new-run-kto.png")
    page.select_option("select[name=method]", "dpo")
    assert page.is_hidden("#run-form input[name=desirable_weight]")


def test_kto_run_page_draws_and_extends_the_reward_chart(client, member, tiny_base_model, page_for):  # noqa: F811
    from apps.training import services

    pairs = _pairs_version(member)
    run = services.run_create(user=member, dataset_version_id=pairs.pk, base_model="tiny", method="kto",
                              hyperparameters={"max_steps": 12})

    def point(step):
        return (step, {"kind": "train", "loss": 0.5 - 0.02 * step, "rewards/chosen": 0.02 * step,
                       "rewards/rejected": -0.05 * step, "rewards/margins": 0.07 * step, "kl": 0.01 * step,
                       "tokens_per_s": 900.0, "total_steps": 12})

    services.run_progress_record(run_id=run.pk, points=[point(s) for s in range(1, 7)] + [
        (6, {"kind": "eval", "eval_loss": 0.4, "rewards/margins": 0.4, "kl": 0.05})])
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    live = [point(s) for s in range(7, 10)]
    page = page_for(html, f"/runs/{run.pk}/", [
        {"event": "progress", "payload": {"run_id": run.pk, "status": "running", "current_step": 9, "total_steps": 12,
                                          "points": [{"step": s, **m} for s, m in live],
                                          "summary": {"rewards/margins": 0.63}}},
    ])
    page.wait_for_function("() => { const g = document.getElementById('reward-chart');"
                           " return g.data && g.data[2].x.length === 9; }")
    traces = page.evaluate("() => document.getElementById('reward-chart').data.map(t => [t.name, t.x.length])")
    assert traces == [["chosen", 9], ["rejected", 9], ["margin", 9], ["validation margin", 1]]
    assert page.query_selector("#accuracy-chart") is None
    page.wait_for_function("() => document.getElementById('stat-margin').textContent === '0.6300'")
    assert "{" not in page.inner_text("#preference-charts")  # no raw JSON on the page
    _shot(page, "run-kto.png")
