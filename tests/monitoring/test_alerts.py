"""Alert rules and the evaluator at the seed's default thresholds: error rate > 5 %, p95 latency > 1000 ms, CPU /
memory / GPU memory > 80 % — firing just above, silent at the threshold, resolving when the window is clean,
one firing alert per subject, acknowledgement by admins, and field errors for bad rules."""
from __future__ import annotations

import datetime as dt

import pytest

from apps.core.exceptions import PermissionDenied, ValidationFailed
from apps.monitoring.models import Alert, AlertRule, HostSample
from apps.monitoring.services import (alert_acknowledge, alert_rule_create, alert_rule_update, alerts_evaluate)
from tests.monitoring.conftest import log_rows

pytestmark = pytest.mark.django_db
M = dt.timedelta(minutes=1)


def traffic(now, *, n=20, errors=0, slow=0, alias="prod", slow_ms=1500.0, fast_ms=900.0):
    """`n` requests in the minute before `now`: `errors` of them 500s, `slow` of them slow."""
    rows = []
    for i in range(n):
        rows.append({"at": now - dt.timedelta(seconds=50) + dt.timedelta(milliseconds=i), "alias": alias,
                     "status_code": 500 if i < errors else 200,
                     "latency_ms": slow_ms if errors <= i < errors + slow else fast_ms})
    log_rows(*rows)


def firing(metric=None):
    qs = Alert.objects.filter(state="firing")
    return qs.filter(rule__metric=metric) if metric else qs


def test_the_seeds_defaults_come_with_the_hub():
    rules = {r.metric: r for r in AlertRule.objects.filter(is_default=True)}
    assert {m: (r.threshold, r.window_minutes, r.alias, r.enabled) for m, r in rules.items()} == {
        "error_rate": (5.0, 5, "", True), "latency_p95": (1000.0, 5, "", True), "cpu": (80.0, 5, "", True),
        "memory": (80.0, 5, "", True), "gpu_memory": (80.0, 5, "", True)}


def test_error_rate_fires_above_five_percent_and_resolves(now):
    traffic(now, n=20, errors=1)  # exactly 5 %: not above
    assert alerts_evaluate(now=now)["fired"] == []
    traffic(now, n=1, errors=1, alias="prod")  # 2 of 21: 9.5 %
    out = alerts_evaluate(now=now)
    (alert,) = firing("error_rate")
    assert out["fired"] == [alert.pk]
    assert (alert.subject, alert.value, alert.requests, alert.threshold) == ("prod", pytest.approx(9.524, abs=1e-3),
                                                                           21, 5.0)
    # a minute later the same window still holds the errors: still one alert, its value updated
    traffic(now + M, n=10)
    out = alerts_evaluate(now=now + M)
    assert out["fired"] == [] and firing("error_rate").count() == 1
    assert firing("error_rate").get().last_value == pytest.approx(2 / 31 * 100, abs=1e-3)
    # six minutes on, the errors are out of the 5-minute window and the traffic is clean
    later = now + 6 * M
    traffic(later, n=20)
    out = alerts_evaluate(now=later)
    assert out["resolved"] == [alert.pk]
    alert.refresh_from_db()
    assert (alert.state, alert.resolved_at, alert.last_value, alert.peak_value) == (
        "resolved", later, 0.0, pytest.approx(9.524, abs=1e-3))


def test_each_alias_is_judged_on_its_own(now):
    traffic(now, n=20, errors=5, alias="canary")
    traffic(now, n=200, alias="prod")  # the hub as a whole is at 2.3 %, the canary alias at 25 %
    alerts_evaluate(now=now)
    assert list(firing("error_rate").values_list("subject", flat=True)) == ["canary"]


def test_too_few_requests_give_no_verdict(now):
    traffic(now, n=9, errors=9)  # min_requests is 10
    assert alerts_evaluate(now=now)["fired"] == []


def test_latency_p95_fires_above_1000_ms(now):
    traffic(now, n=20, slow=1)  # p95 at rank 19 × 0.95 = 18.05: 900 + 0.05 × 600 = 930 ms
    alerts_evaluate(now=now)
    assert not firing("latency_p95").exists()
    traffic(now, n=1, slow=1)  # 2 slow of 21: rank 19 -> 1500 ms
    alerts_evaluate(now=now)
    alert = firing("latency_p95").get()
    assert (alert.subject, alert.value) == ("prod", 1500.0)


def test_a_rule_for_one_alias_ignores_the_others(now, admin_user):
    AlertRule.objects.filter(is_default=True).update(enabled=False)
    alert_rule_create(actor=admin_user, name="canary errors", metric="error_rate", threshold=1, alias="canary",
                      min_requests=1)
    traffic(now, n=10, errors=5, alias="prod")
    traffic(now, n=10, errors=1, alias="canary")
    alerts_evaluate(now=now)
    assert list(firing().values_list("subject", "value")) == [("canary", 10.0)]


def host_minutes(now, host, *, cpu=None, memory=None, gpu_memory=None, minutes=5):
    for i in range(minutes):
        HostSample.objects.create(minute=(now - i * M).replace(second=0, microsecond=0), hostname=host,
                                  cpu_percent=cpu, memory_percent=memory, gpu_memory_percent=gpu_memory, workers=1)


def test_resources_fire_above_80_percent_per_host(now):
    host_minutes(now, "gpu-1", cpu=85, memory=80, gpu_memory=97)
    host_minutes(now, "cpu-1", cpu=79.5, memory=40)
    alerts_evaluate(now=now)
    assert sorted(firing().values_list("rule__metric", "subject", "value")) == [
        ("cpu", "gpu-1", 85.0), ("gpu_memory", "gpu-1", 97.0)]  # memory at exactly 80 % is not above
    # the host cools down: the next five minutes at 50 %
    later = now + 5 * M
    host_minutes(later, "gpu-1", cpu=50, memory=50, gpu_memory=50)
    out = alerts_evaluate(now=later)
    assert len(out["resolved"]) == 2 and not firing().exists()


def test_a_host_that_stops_reporting_resolves_its_alert(now):
    host_minutes(now, "gone", cpu=99)
    alerts_evaluate(now=now)
    assert firing("cpu").count() == 1
    alerts_evaluate(now=now + 10 * M)
    assert not firing("cpu").exists()


def test_evaluating_twice_opens_no_second_alert(now):
    traffic(now, n=20, errors=10)
    alerts_evaluate(now=now)
    alerts_evaluate(now=now)
    assert Alert.objects.count() == 1


def test_disabling_a_rule_resolves_its_alerts(now, admin_user):
    traffic(now, n=20, errors=10)
    alerts_evaluate(now=now)
    rule = firing().get().rule
    alert_rule_update(actor=admin_user, rule_id=rule.pk, enabled=False)
    out = alerts_evaluate(now=now)
    assert len(out["resolved"]) == 1 and not firing().exists()


def test_acknowledge_is_for_admins_and_keeps_the_first(now, admin_user, member, make_user):
    traffic(now, n=20, errors=10)
    alerts_evaluate(now=now)
    alert = firing().get()
    with pytest.raises(PermissionDenied):
        alert_acknowledge(actor=member, alert_id=alert.pk)
    alert_acknowledge(actor=admin_user, alert_id=alert.pk)
    other = make_user("boss2", "admin")
    alert_acknowledge(actor=other, alert_id=alert.pk)
    alert.refresh_from_db()
    assert alert.acknowledged_by == admin_user and alert.acknowledged_at is not None
    assert alert.state == "firing"  # acknowledged is not resolved


@pytest.mark.parametrize("values, fields", [
    ({"metric": "nope"}, ["metric"]),
    ({"threshold": 150}, ["threshold"]),  # a percentage
    ({"threshold": -1}, ["threshold"]),
    ({"threshold": float("nan")}, ["threshold"]),
    ({"metric": "cpu", "alias": "prod"}, ["alias"]),  # resources are per host
    ({"alias": "Not A Slug"}, ["alias"]),
    ({"window_minutes": 0}, ["window_minutes"]),
    ({"window_minutes": 5000, "name": ""}, ["name", "window_minutes"]),
])
def test_bad_rules_name_their_fields_and_write_nothing(admin_user, values, fields):
    before = AlertRule.objects.count()
    args = {"name": "r", "metric": "error_rate", "threshold": 5, **values}
    with pytest.raises(ValidationFailed) as exc:
        alert_rule_create(actor=admin_user, **args)
    assert [e["field"] for e in exc.value.errors] == fields
    assert AlertRule.objects.count() == before


def test_rules_are_written_by_admins_only(member):
    with pytest.raises(PermissionDenied):
        alert_rule_create(actor=member, name="r", metric="error_rate", threshold=5)


def test_alert_values_read_with_thousands_separators(now, client, admin_user):
    """A p95 of 12 seconds reads "12,345.6 ms" in the firing list (its row and the summary above it)."""
    traffic(now, n=25, slow=25, slow_ms=12345.6)
    alerts_evaluate(now=now)
    assert firing("latency_p95").get().value == pytest.approx(12345.6)
    client.force_login(admin_user)
    html = client.get("/monitoring/").content.decode()
    assert html.count("12,345.6 ms") >= 2 and "12345.6" not in html
    assert "25 req." in html and "1,000 ms" in html  # the latency rule's threshold, in the rules table
