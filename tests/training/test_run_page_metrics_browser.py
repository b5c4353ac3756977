"""The run page in a real browser (issue 14 #1 and #5), the websocket mocked as in test_run_page_browser: the
ETA names the phase after training ("evaluating…", never "0 s"); the metric panels (learning rate, grad norm,
throughput, memory) plot the points, the loss chart smooths and switches to log scale and a time axis, and an
empty chart says so instead of drawing −1…6 axes."""
from __future__ import annotations

import pytest

from tests.training.test_run_page_browser import page_for  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.browser]


def _run_page(client, member, qa_version):
    from apps.training.services import run_claim, run_create

    run = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    run_claim(run_id=run.pk)
    client.force_login(member)
    return run, client.get(f"/runs/{run.pk}/").content.decode()


def _points(n=6):
    return [{"kind": "train", "step": i + 1, "loss": 2.0 / (i + 1), "learning_rate": 1e-4 * (i + 1),
             "grad_norm": 0.5 + i, "tokens_per_s": 100.0 + i, "rss_mb": 900 + i, "t": 1000.0 + 2 * i}
            for i in range(n)]


def test_eta_names_the_phase_after_training(client, member, qa_version, tiny_base_model, page_for):  # noqa: F811
    run, html = _run_page(client, member, qa_version)
    page = page_for(html, f"/runs/{run.pk}/", [
        {"event": "snapshot", "payload": {"status": "running", "phase": "training", "summary": {"eta_s": 40},
                                          "points": [], "current_step": 4, "total_steps": 12}},
        {"event": "status", "payload": {"status": "running", "run_status": "running", "phase": "evaluating"}},
        {"event": "progress", "payload": {"status": "running", "points": [], "summary": {"eta_s": 0},
                                          "current_step": 12, "total_steps": 12}},
    ])
    page.wait_for_function("() => document.getElementById('stat-phase').textContent === 'evaluating'")
    page.wait_for_function("() => document.getElementById('stat-step').textContent === '12'")
    assert page.inner_text("#stat-eta").strip() == "evaluating…"
    assert page.inner_text("#run-phase").strip() == "evaluating"


def _store_points(run, n=6):
    from apps.training.services import run_progress_record

    run_progress_record(run_id=run.pk, points=[(p["step"], {k: v for k, v in p.items() if k not in ("step", "t")})
                                               for p in _points(n)], total_steps=n)


def test_metric_panels_smoothing_log_scale_and_time_axis(client, member, qa_version, tiny_base_model,
                                                         page_for):  # noqa: F811
    from apps.training.services import run_claim, run_create

    run = run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    run_claim(run_id=run.pk)
    _store_points(run)
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert "No points yet" in html  # the hidden empty-state notes exist, but the charts show
    page = page_for(html, f"/runs/{run.pk}/", [])
    page.wait_for_function("() => document.querySelector('#panel-memory .main-svg')")
    data = lambda id: page.evaluate(f"() => document.getElementById('{id}').data.map(t => [t.name, t.x, t.y])")
    assert data("panel-learning_rate")[0][2] == pytest.approx([1e-4 * (i + 1) for i in range(6)])
    assert data("panel-grad_norm")[0][2] == pytest.approx([0.5 + i for i in range(6)])
    assert data("panel-throughput")[0][2] == pytest.approx([100.0 + i for i in range(6)])
    assert data("panel-memory")[0][2] == [900 + i for i in range(6)]
    for key in ("learning_rate", "grad_norm", "throughput", "memory"):
        assert page.is_hidden(f"#panel-{key}-empty")
    raw = [2.0 / (i + 1) for i in range(6)]
    assert data("loss-chart")[0][2] == pytest.approx(raw)
    page.fill("#loss-smoothing", "0.6")
    page.dispatch_event("#loss-smoothing", "input")
    smoothed = data("loss-chart")
    assert smoothed[0][0] == "train loss (smoothed)" and smoothed[2][2] == pytest.approx(raw)
    assert smoothed[0][2][0] == pytest.approx(raw[0]) and smoothed[0][2][-1] > raw[-1]  # lags the raw curve
    page.check("#loss-log")
    assert page.evaluate("() => document.getElementById('loss-chart').layout.yaxis.type") == "log"
    page.select_option("#chart-axis", "time")
    x = data("loss-chart")[0][1]
    assert x != [1, 2, 3, 4, 5, 6] and all(v >= 0 for v in x)
    assert page.evaluate("() => document.getElementById('loss-chart').layout.xaxis.title.text") == "seconds since start"


def test_empty_charts_say_no_points_yet(client, member, qa_version, tiny_base_model, page_for):  # noqa: F811
    run, html = _run_page(client, member, qa_version)
    page = page_for(html, f"/runs/{run.pk}/", [
        {"event": "snapshot", "payload": {"status": "running", "phase": "loading", "summary": {}, "points": []}}])
    page.wait_for_function("() => document.getElementById('stat-phase').textContent === 'loading'")
    assert page.is_visible("#loss-chart-empty") and page.is_hidden("#loss-chart")
    assert "No points yet" in page.inner_text("#loss-chart-empty")
    assert page.query_selector("#loss-chart .main-svg") is None  # no −1…6 axes drawn
    for key in ("learning_rate", "grad_norm", "throughput", "memory"):
        assert page.is_visible(f"#panel-{key}-empty")


@pytest.mark.parametrize("method,chart", [("grpo", "grpo-reward-chart"), ("dpo", "reward-chart")])
def test_empty_reward_charts_say_no_points_yet(client, member, qa_version, tiny_base_model, page_for,  # noqa: F811
                                               method, chart):
    from apps.training.models import TrainingRun

    run = TrainingRun.objects.create(owner=member, dataset_version=qa_version, base_model=tiny_base_model,
                                     method=method, status="succeeded")
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    page = page_for(html, f"/runs/{run.pk}/", [])
    page.wait_for_selector(f"#{chart}-empty")
    assert page.is_visible(f"#{chart}-empty") and page.is_hidden(f"#{chart}")
    assert page.query_selector(f"#{chart} .main-svg") is None


def test_preference_section_title_follows_the_method_select(client, member, qa_version, tiny_base_model,
                                                            page_for):  # noqa: F811
    client.force_login(member)
    html = client.get(f"/runs/new/?dataset_version={qa_version.pk}").content.decode()
    page = page_for(html, "/runs/new/", [])
    summary = "[data-hp-group=preference] summary"
    page.select_option("select[name=method]", "kto")
    assert page.inner_text(summary).strip() == "Preference (KTO)"
    page.select_option("select[name=method]", "grpo")
    assert page.inner_text(summary).strip() == "KL penalty (GRPO)"


def test_live_figures_keep_thousands_separators(client, member, qa_version, tiny_base_model, page_for):  # noqa: F811
    """A GPU run's throughput is in the thousands: the live stats read 12,345.7 tokens/s as the server-rendered
    page does (the `num` filter), not 12345.7."""
    run, html = _run_page(client, member, qa_version)
    page = page_for(html, f"/runs/{run.pk}/", [
        {"event": "progress", "payload": {"status": "running", "points": [], "current_step": 3, "total_steps": 12,
                                          "summary": {"tokens_per_s": 12345.67, "steps_per_s": 1.5, "loss": 0.5}}},
    ])
    page.wait_for_function("() => document.getElementById('stat-step').textContent === '3'")
    assert page.inner_text("#stat-tps").strip() == "12,345.7"
    assert page.inner_text("#stat-loss").strip() == "0.5000"
