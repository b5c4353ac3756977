"""The Monitoring page: empty and with data (server-drawn SVG plots, the plotly data beside them, the worker table,
firing alerts, rules), bad selections as field errors, the rule form's 422, acknowledge, rule actions."""
from __future__ import annotations

import json
import re

import pytest

from apps.monitoring.models import Alert, AlertRule

pytestmark = pytest.mark.django_db
URL = "/monitoring/"


def charts_of(html: str) -> list[dict]:
    m = re.search(r'<script id="monitoring-charts" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_empty_page(client, member):
    client.force_login(member)
    r = client.get(URL)
    assert r.status_code == 200
    html = r.content.decode()
    assert "No proxy traffic" in html and "No worker process has reported" in html
    assert "No alert has fired yet." in html and "no roll-up has run yet" in html
    assert "<svg" not in html and charts_of(html) == []
    assert "vendor/plotly-basic.min.js" not in html  # nothing to plot: no 3 MB script
    assert "Error rate above 5 %" in html and "Latency p95 above 1000 ms" in html  # the default rules
    assert 'id="rule-form"' not in html  # members do not write rules


def test_page_with_data(client, admin_user, monitoring_data):
    client.force_login(admin_user)
    r = client.get(URL, {"alias": "prod", "range": "1h"})
    assert r.status_code == 200
    html = r.content.decode()
    charts = {c["id"]: c for c in charts_of(html)}
    assert list(charts) == ["chart-requests_per_min", "chart-error_rate", "chart-p50_ms", "chart-p95_ms",
                            "chart-ttft_p50_ms", "chart-tokens_per_s", "chart-queues", "chart-consumers",
                            "chart-host-cpu_percent", "chart-host-memory_percent", "chart-host-gpu_memory_percent",
                            "chart-host-gpu_util_percent"]
    # no fallback in this traffic: a note, not a flat plot
    assert 'id="chart-fallbacks"' in html and "No request needed a fallback in this window." in html
    queues = {t["name"]: t["y"] for t in charts["chart-queues"]["traces"]}
    assert sorted(queues) == ["default", "gpu"] and queues["gpu"][-5:] == [4, 4, 4, 4, 4]
    assert html.count('<svg class="svg-chart"') == len(charts)
    req = charts["chart-requests_per_min"]
    assert [t["name"] for t in req["traces"]] == ["prod (all versions)", "deleted version (#1)", "deleted version (#2)"]
    assert sum(req["traces"][0]["y"]) == 39 * 6 and max(req["traces"][0]["y"]) == 6
    err = charts["chart-error_rate"]["traces"][0]["y"]
    assert max(v for v in err if v is not None) == pytest.approx(100 / 6, abs=0.01)
    assert 'id="firing-alerts"' in html and "GPU memory above 80 %" in html  # 83.5 % for 10 minutes
    assert "gpu-box · pid 42" in html and "NVIDIA H200" in html
    assert 'id="rule-form"' in html and "Acknowledge" in html
    assert "vendor/plotly-basic.min.js" in html


def test_bad_selections_are_field_errors_not_500s(client, member, monitoring_data):
    client.force_login(member)
    r = client.get(URL, {"alias": "no-such-alias", "version": "version:999", "range": "3y"})
    assert r.status_code == 200
    html = r.content.decode()
    assert html.count('class="field-error"') == 3
    assert "Traffic · all traffic" in html  # the valid default, not nothing


def test_rule_form(client, admin_user, member):
    client.force_login(admin_user)
    r = client.post("/monitoring/rules/", {"name": "cpu hot", "metric": "cpu", "alias": "prod", "threshold": "120",
                                            "window_minutes": "5", "min_requests": "10"})
    assert r.status_code == 422
    html = r.content.decode()
    assert "A percentage: at most 100." in html and "Resource rules apply to every host" in html
    assert AlertRule.objects.count() == 5
    r = client.post("/monitoring/rules/", {"name": "cpu hot", "metric": "cpu", "threshold": "95",
                                            "window_minutes": "10", "min_requests": "0"})
    assert r.status_code == 302
    rule = AlertRule.objects.get(name="cpu hot")
    assert (rule.threshold, rule.window_minutes, rule.created_by) == (95.0, 10, admin_user)
    client.post(f"/monitoring/rules/{rule.pk}/", {"action": "disable"})
    rule.refresh_from_db()
    assert not rule.enabled
    client.force_login(member)
    r = client.post(f"/monitoring/rules/{rule.pk}/", {"action": "delete"}, follow=True)
    assert "Only admins can do this." in r.content.decode()
    assert AlertRule.objects.filter(pk=rule.pk).exists()
    r = client.post("/monitoring/rules/", {"name": "x", "metric": "cpu", "threshold": "500"}, follow=True)
    assert "Only admins can do this." in r.content.decode() and 'id="rule-form"' not in r.content.decode()
    assert AlertRule.objects.count() == 6


def test_acknowledge_from_the_page(client, admin_user, monitoring_data):
    client.force_login(admin_user)
    alert = Alert.objects.filter(state="firing").first()
    r = client.post(f"/monitoring/alerts/{alert.pk}/ack/", follow=True)
    assert r.status_code == 200 and "Alert acknowledged." in r.content.decode()
    alert.refresh_from_db()
    assert alert.acknowledged_by == admin_user
    assert client.post("/monitoring/alerts/999999/ack/").status_code == 302  # a message, not a 500


def test_rollout_events_section_follows_the_experiments_app(client, member):
    from django.apps import apps as django_apps

    client.force_login(member)
    html = client.get(URL).content.decode()
    assert ('id="rollout-events"' in html) == django_apps.is_installed("apps.experiments")
