"""Alert rules (admins write them) and the evaluator that fires and resolves alerts (the `monitoring_watch` actor,
every minute).

Contract:
- A rule is `metric > threshold` over the last `window_minutes`, the threshold in the metric's unit (METRICS: %
  or ms). Traffic metrics are computed per alias from the request logs of the window (the same definitions
  as the per-minute roll-ups, services/aggregation.traffic_stats), for the rule's alias or, when it has none,
  for every alias on its own ("" = requests that named a model directly); a subject with fewer than
  `min_requests` requests in the window gets no verdict. Resource metrics are per host: the mean of the
  window's HostSamples.
- `alerts_evaluate()`: a subject above the threshold opens an Alert (firing) or updates the one firing
  (last and peak value); a firing alert whose subject is back at or below the threshold, has no verdict, or
  whose rule is disabled or gone, is resolved. At most one firing alert per (rule, subject) (a partial
  unique constraint); the evaluator is safe to run twice.
- Validation errors name their field (ValidationFailed, a 422 on /api and field errors on the page); nothing is
  written then.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import re

from django.db import IntegrityError, transaction
from django.db.models import Avg
from django.utils import timezone

from apps.accounts.services import require_admin
from apps.core.exceptions import NotFound, ValidationFailed
from apps.monitoring.models import METRICS, Alert, AlertRule, HostSample
from apps.monitoring.services.aggregation import traffic_stats

log = logging.getLogger(__name__)

SLUG = re.compile(r"^[a-z0-9]+(?:(?:(?:_|-_)+-?|-)[a-z0-9]+)*$")
MAX_WINDOW = 1440
RESOURCE_COLUMNS = {"cpu": "cpu_percent", "memory": "memory_percent", "gpu_memory": "gpu_memory_percent",
                    "gpu_util": "gpu_util_percent"}
RULE_FIELDS = ("name", "metric", "alias", "threshold", "window_minutes", "min_requests", "enabled")


def _clean_rule(values: dict) -> dict:
    """The rule's fields checked together; raises one ValidationFailed naming every bad field."""
    errors = []

    def bad(field, message):
        errors.append({"field": field, "message": message})

    name = str(values.get("name") or "").strip()
    if not name:
        bad("name", "Give the rule a name.")
    elif len(name) > 100 or "\x00" in name:
        bad("name", "At most 100 characters, no NUL byte.")
    metric = values.get("metric")
    spec = METRICS.get(metric) if isinstance(metric, str) else None
    if spec is None:
        bad("metric", f"One of: {', '.join(METRICS)}.")
    alias = str(values.get("alias") or "").strip()
    if alias and (len(alias) > 100 or not SLUG.match(alias)):
        bad("alias", "An alias name (lower-case letters, digits, `-`, `_`), or empty for every alias.")
    elif alias and spec is not None and spec.kind == "resource":
        bad("alias", "Resource rules apply to every host: leave the alias empty.")
    threshold = values.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        bad("threshold", "A number.")
    elif threshold < 0:
        bad("threshold", "At least 0.")
    elif spec is not None and spec.unit == "%" and threshold > 100:
        bad("threshold", "A percentage: at most 100.")
    window = values.get("window_minutes", 5)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
        bad("window_minutes", f"Whole minutes from 1 to {MAX_WINDOW}.")
    min_requests = values.get("min_requests", 10)
    if isinstance(min_requests, bool) or not isinstance(min_requests, int) or not 0 <= min_requests <= 1_000_000:
        bad("min_requests", "A whole number from 0 to 1000000.")
    if errors:
        raise ValidationFailed(errors[0]["message"] if len(errors) == 1 else "Some fields are not valid.",
                               errors=errors)
    return {"name": name, "metric": metric, "alias": alias, "threshold": float(threshold), "window_minutes": window,
            "min_requests": min_requests, "enabled": bool(values.get("enabled", True))}


def alert_rule_create(*, actor, name: str, metric: str, threshold: float, alias: str = "", window_minutes: int = 5,
                      min_requests: int = 10, enabled: bool = True) -> AlertRule:
    require_admin(actor)
    data = _clean_rule({"name": name, "metric": metric, "threshold": threshold, "alias": alias,
                        "window_minutes": window_minutes, "min_requests": min_requests, "enabled": enabled})
    return AlertRule.objects.create(created_by=actor, **data)


def _rule(rule_id: int) -> AlertRule:
    rule = AlertRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise NotFound("No such alert rule.")
    return rule


def alert_rule_update(*, actor, rule_id: int, **changes) -> AlertRule:
    """Change the fields given (the others stay); the whole rule is checked again."""
    require_admin(actor)
    rule = _rule(rule_id)
    unknown = set(changes) - set(RULE_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown field {sorted(unknown)[0]!r}.", field=sorted(unknown)[0])
    data = _clean_rule({**{f: getattr(rule, f) for f in RULE_FIELDS}, **changes})
    for k, v in data.items():
        setattr(rule, k, v)
    rule.save()
    return rule


def alert_rule_delete(*, actor, rule_id: int) -> None:
    require_admin(actor)
    _rule(rule_id).delete()


def alert_acknowledge(*, actor, alert_id: int) -> Alert:
    """Mark an alert seen by `actor` (admins). Acknowledging twice keeps the first acknowledgement."""
    require_admin(actor)
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
        if alert is None:
            raise NotFound("No such alert.")
        if alert.acknowledged_at is None:
            alert.acknowledged_at, alert.acknowledged_by = timezone.now(), actor
            alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
    return alert


def _traffic_values(rule: AlertRule, now: dt.datetime, cache: dict) -> dict[str, tuple[float | None, int]]:
    key = (rule.window_minutes, rule.alias)
    if key not in cache:
        cache[key] = traffic_stats(start=now - dt.timedelta(minutes=rule.window_minutes), end=now, per_minute=False,
                                   sets=("alias",), alias=rule.alias or None)
    out = {}
    for cell in cache[key]:
        n = cell["requests"]
        if n < max(rule.min_requests, 1):
            value = None
        elif rule.metric == "error_rate":
            value = round(cell["errors"] / n * 100, 3)
        else:
            value = cell[{"latency_p95": "p95_ms", "latency_p50": "p50_ms", "ttft_p50": "ttft_p50_ms"}[rule.metric]]
        out[cell["alias"]] = (value, n)
    return out


def _resource_values(rule: AlertRule, now: dt.datetime) -> dict[str, tuple[float | None, None]]:
    column = RESOURCE_COLUMNS[rule.metric]
    rows = (HostSample.objects.filter(minute__gte=now - dt.timedelta(minutes=rule.window_minutes), minute__lte=now)
            .values("hostname").annotate(v=Avg(column)).order_by())
    return {r["hostname"]: (None if r["v"] is None else round(r["v"], 2), None) for r in rows}


def _fire(rule: AlertRule, subject: str, value: float, n: int | None, now: dt.datetime) -> Alert | None:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(rule=rule, subject=subject, value=value, peak_value=value, last_value=value,
                                         threshold=rule.threshold, requests=n, fired_at=now, evaluated_at=now)
    except IntegrityError:  # another evaluator opened it a moment ago
        return None
    log.warning("alert fired: %s on %r: %s > %s %s", rule.name, subject, value, rule.threshold, rule.spec.unit)
    return alert


def _resolve(alert: Alert, value: float | None, now: dt.datetime) -> None:
    Alert.objects.filter(pk=alert.pk, state=Alert.State.FIRING).update(
        state=Alert.State.RESOLVED, resolved_at=now, evaluated_at=now, last_value=value)
    log.warning("alert resolved: %s on %r (%s)", alert.rule.name, alert.subject, value)


def alerts_evaluate(*, now: dt.datetime | None = None) -> dict:
    """Fire and resolve; returns {"fired": [alert ids], "resolved": [alert ids], "firing": count}."""
    now = now or timezone.now()
    fired, resolved, cache = [], [], {}
    firing_by_rule: dict[int, dict[str, Alert]] = {}
    for a in Alert.objects.filter(state=Alert.State.FIRING).select_related("rule"):
        firing_by_rule.setdefault(a.rule_id, {})[a.subject] = a
    for rule in AlertRule.objects.filter(enabled=True):
        if rule.metric not in METRICS:
            continue
        values = (_traffic_values(rule, now, cache) if rule.spec.kind == "traffic" else _resource_values(rule, now))
        open_alerts = firing_by_rule.pop(rule.pk, {})
        for subject, (value, n) in values.items():
            current = open_alerts.pop(subject, None)
            if value is not None and value > rule.threshold:
                if current is None:
                    alert = _fire(rule, subject, value, n, now)
                    if alert is not None:
                        fired.append(alert.pk)
                else:
                    Alert.objects.filter(pk=current.pk).update(last_value=value, evaluated_at=now,
                                                               peak_value=max(current.peak_value, value))
            elif current is not None:
                _resolve(current, value, now)
                resolved.append(current.pk)
        for current in open_alerts.values():  # no traffic (or no sample) in the window
            _resolve(current, None, now)
            resolved.append(current.pk)
    for alerts in firing_by_rule.values():  # rules disabled since they fired
        for current in alerts.values():
            _resolve(current, None, now)
            resolved.append(current.pk)
    return {"fired": fired, "resolved": resolved, "firing": Alert.objects.filter(state=Alert.State.FIRING).count()}
