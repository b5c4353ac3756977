"""GRPO in a real browser (Debian's chromium through Playwright; HTML from Django's test client, the run's
websocket mocked): the new-run form with method grpo shows the reward rows and hides what GRPO does not use; a
GRPO run page draws the mean reward and each component from the stored points and extends them with live
progress (a component first seen live gets its own line); a run the actor really trained shows its reward,
its components and a failing component's error. With HUB_SHOTS=<folder> the pages are also saved as 1440x900
screenshots."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.training.test_grpo import _tasks_version, digits_base_model, digits_model_dir  # noqa: F401 - fixtures
from tests.training.test_run_page_browser import page_for  # noqa: F401 - the fixture

pytestmark = [pytest.mark.django_db, pytest.mark.browser]
SHOTS = os.environ.get("HUB_SHOTS")


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1440, "height": 900})
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def test_new_run_form_with_method_grpo(client, member, digits_base_model, page_for):  # noqa: F811
    tasks = _tasks_version(member)
    client.force_login(member)
    html = client.get(f"/runs/new/?dataset_version={tasks.pk}&method=grpo").content.decode()
    page = page_for(html, "/runs/new/", [])
    assert page.input_value("select[name=method]") == "grpo"
    visible = page.evaluate("""() => {
        const form = document.getElementById('run-form'), out = {};
        for (const name of ['reward_preset', 'reward_weights', 'num_generations', 'max_completion_length',
                            'temperature', 'beta', 'full_weights', 'lora_r', 'loss_type', 'size', 'stage1_version']) {
            const el = form.elements[name];
            out[name] = !el.disabled && !!el.offsetParent;
        }
        return out;
    }""")
    assert visible == {"reward_preset": True, "reward_weights": True, "num_generations": True,
                       "max_completion_length": True, "temperature": True, "beta": True, "full_weights": True,
                       "lora_r": True, "loss_type": False, "size": False, "stage1_version": False}
    assert page.get_attribute("#run-form input[name=beta]", "placeholder") == "0.04"
    assert page.get_attribute("#run-form input[name=num_generations]", "placeholder") == "4"
    assert "default (arithmetic)" in page.inner_text("#run-form select[name=reward_preset]")
    assert "Rewards (GRPO)" in page.inner_text("#run-form")
    _shot(page, "new-run-grpo.png")
    page.select_option("select[name=method]", "lora")
    assert page.is_hidden("#run-form input[name=reward_weights]")


def test_grpo_run_page_draws_and_extends_the_reward_chart(client, member, digits_base_model, page_for):  # noqa: F811
    from apps.training import services

    tasks = _tasks_version(member)
    run = services.run_create(user=member, dataset_version_id=tasks.pk, base_model="digits", method="grpo",
                              hyperparameters={"max_steps": 12, "batch_size": 8,
                                               "reward_weights": {"answer_match": 0.8, "length": 0.2}})

    def point(step, extra=None):
        match = min(1.0, 0.05 + 0.08 * step)
        return (step, {"kind": "train", "loss": 0.01, "reward": 0.8 * match + 0.2, "reward_std": 0.3,
                       "rewards/answer_match/mean": match, "rewards/length/mean": 1.0, "kl": 0.002 * step,
                       "reward_errors/answer_match": 0.0, "reward_errors/length": 0.0,
                       "completions/mean_length": 12.0, "tokens_per_s": 300.0, "total_steps": 12, **(extra or {})})

    services.run_progress_record(run_id=run.pk, points=[point(s) for s in range(1, 7)] + [
        (6, {"kind": "eval", "eval_loss": 0.0, "reward": 0.55, "rewards/answer_match/mean": 0.45})])
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    live = [point(s, {"rewards/judge/mean": 0.5}) for s in range(7, 10)]
    page = page_for(html, f"/runs/{run.pk}/", [
        {"event": "progress", "payload": {"run_id": run.pk, "status": "running", "current_step": 9, "total_steps": 12,
                                          "points": [{"step": s, **m} for s, m in live],
                                          "summary": {"reward": 0.876, "rewards/answer_match/mean": 0.77,
                                                      "reward_errors/length": 0.25}}},
    ])
    page.wait_for_function("() => { const g = document.getElementById('grpo-reward-chart');"
                           " return g.data && g.data[0].x.length === 9; }")
    traces = page.evaluate("() => document.getElementById('grpo-reward-chart').data.map(t => [t.name, t.x.length])")
    assert traces == [["mean reward", 9], ["answer_match", 9], ["length", 9], ["judge", 3], ["validation reward", 1]]
    page.wait_for_function("() => document.getElementById('stat-reward').textContent === '0.876'")
    row = page.inner_text('#reward-components tr[data-component="length"]')
    assert "25 % of the last step's answers (scored 0)" in row
    assert "0.770" in page.inner_text('#reward-components tr[data-component="answer_match"]')
    assert "{" not in page.inner_text("#reward-charts") and "None" not in page.inner_text("#reward-components")
    _shot(page, "run-grpo-live.png")


@pytest.mark.django_db(transaction=True)
def test_finished_grpo_run_page(client, member, digits_base_model, page_for, monkeypatch):  # noqa: F811
    """A run really trained by the actor (a few steps): its results and charts from the stored points, and the
    error of a component that failed on every answer."""
    from apps.training import services
    from workers.engine import rewards
    from workers.training import train_run

    def judge(completion, task):
        raise ValueError("no judge configured")

    monkeypatch.setitem(rewards.COMPONENTS, "judge", rewards.Component("judge", "Judge", "fails", "custom", judge,
                                                                       in_process=True))
    tasks = _tasks_version(member)
    run = services.run_create(user=member, dataset_version_id=tasks.pk, base_model="digits", method="grpo",
                              hyperparameters={"max_steps": 4, "batch_size": 16, "num_generations": 8,
                                               "max_completion_length": 2, "learning_rate": 5e-2,
                                               "warmup_ratio": 0.0, "eval_max_new_tokens": 2,
                                               "reward_weights": {"answer_match": 0.8, "length": 0.1, "judge": 0.1}})
    train_run.fn(run.pk)
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    page = page_for(html, f"/runs/{run.pk}/", [])
    page.wait_for_function("() => { const g = document.getElementById('grpo-reward-chart');"
                           " return g.data && g.data[0].x.length === 4; }")
    assert "Mean reward" in page.inner_text("#results") and "None" not in page.inner_text("#results")
    judge_row = page.inner_text('#reward-components tr[data-component="judge"]')
    assert "64 (scored 0): ValueError: no judge configured" in judge_row
    _shot(page, "run-grpo-finished.png")
