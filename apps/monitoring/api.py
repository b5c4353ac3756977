"""/api routes of monitoring (mounted at "/"): traffic series per alias and version, worker health, alert rules,
alerts. Reads are open to every signed-in user (the hub's health is not one member's); writing rules and
acknowledging alerts is for admins (checked in apps.monitoring.services.alerts)."""
from __future__ import annotations

from typing import Literal, Optional

from ninja import Query, Router

from apps.core.exceptions import ValidationFailed
from apps.core.inputs import Id, Slug, Text, is_id
from apps.core.schemas import responses
from apps.monitoring import selectors, services
from apps.monitoring.models import ALL, METRICS, Alert, AlertRule
from apps.monitoring.schemas import AlertOut, RuleIn, RuleOut, RulePatch, SeriesOut, WorkersOut

router = Router(tags=["monitoring"])

Minutes = Query(60, ge=selectors.MIN_MINUTES, le=selectors.MAX_MINUTES,
                description="the window: the last N minutes (one point per minute up to 6 h, wider buckets after)")


def parse_version(raw: str | None) -> str | None:
    """`12` or `version:12` -> `version:12`; `provider:NAME/MODEL` as it is; empty -> None; else a 422."""
    raw = (raw or "").strip()
    if not raw:
        return None
    if raw.isascii() and raw.isdigit():
        if not is_id(raw):
            raise ValidationFailed("`version` is a model version id (1 and up) or a served target.", field="version")
        return f"version:{int(raw)}"
    if raw.startswith("version:") and not is_id(raw[8:]):
        raise ValidationFailed("`version:` takes a model version id, e.g. version:12.", field="version")
    if raw == ALL or ":" not in raw:
        raise ValidationFailed("`version` is a model version id (`12`), `version:12` or `provider:NAME/MODEL`.",
                               field="version")
    return raw


@router.get("/monitoring/series", response=responses({200: SeriesOut}))
def monitoring_series(request, alias: Optional[Slug] = Query(None, description="one alias; none: every alias"),
                      version: Optional[Text] = Query(None, max_length=300,
                                                      description="a model version id or served target"),
                      minutes: int = Minutes):
    """Per-minute traffic of an alias and/or version from the roll-ups: requests, errors, p50/p95 latency, TTFT,
    tokens/s, fallbacks; the first line is the total, the others its breakdown."""
    return selectors.series(alias=alias, target=parse_version(version), minutes=minutes)


@router.get("/monitoring/workers", response=responses({200: WorkersOut}))
def monitoring_workers(request, minutes: int = Minutes):
    """Worker processes (live / stale / stopped, their CPU, memory and GPUs), queue depths, live consumers and
    each host's resource use, now and over the window."""
    return selectors.workers_overview(minutes=minutes)


def rule_out(rule: AlertRule, firing: dict[int, int] | None = None) -> dict:
    spec = METRICS[rule.metric]
    return {"id": rule.pk, "name": rule.name, "metric": rule.metric, "unit": spec.unit, "kind": spec.kind,
            "alias": rule.alias, "threshold": rule.threshold, "window_minutes": rule.window_minutes,
            "min_requests": rule.min_requests, "enabled": rule.enabled, "is_default": rule.is_default,
            "firing": (firing or {}).get(rule.pk, 0)}


def alert_out(a: Alert) -> dict:
    return {"id": a.pk, "rule_id": a.rule_id, "rule": a.rule.name, "metric": a.rule.metric,
            "unit": METRICS[a.rule.metric].unit, "subject": a.subject, "state": a.state, "value": a.value,
            "peak_value": a.peak_value, "last_value": a.last_value, "threshold": a.threshold, "requests": a.requests,
            "fired_at": a.fired_at, "evaluated_at": a.evaluated_at, "resolved_at": a.resolved_at,
            "acknowledged_at": a.acknowledged_at,
            "acknowledged_by": a.acknowledged_by.username if a.acknowledged_by else None}


def _firing_counts() -> dict[int, int]:
    counts: dict[int, int] = {}
    for rule_id in Alert.objects.filter(state=Alert.State.FIRING).values_list("rule_id", flat=True):
        counts[rule_id] = counts.get(rule_id, 0) + 1
    return counts


@router.get("/alerts/rules", response=responses({200: list[RuleOut]}, inputs=False))
def rule_list(request):
    """Alert rules; the defaults (error rate > 5 %, p95 latency > 1000 ms, CPU / memory / GPU memory > 80 %) come
    with the hub."""
    firing = _firing_counts()
    return [rule_out(r, firing) for r in selectors.alert_rules()]


@router.post("/alerts/rules", response=responses({201: RuleOut}, 403, body=True))
def rule_create(request, payload: RuleIn):
    """Add a rule (admins only)."""
    rule = services.alert_rule_create(actor=request.auth, **payload.dict())
    return 201, rule_out(rule)


@router.patch("/alerts/rules/{rule_id}", response=responses({200: RuleOut}, 403, 404, body=True))
def rule_update(request, rule_id: Id, payload: RulePatch):
    """Change the fields sent (admins only)."""
    changes = {k: v for k, v in payload.dict(exclude_unset=True).items() if v is not None}
    rule = services.alert_rule_update(actor=request.auth, rule_id=rule_id, **changes)
    return rule_out(rule, _firing_counts())


@router.delete("/alerts/rules/{rule_id}", response=responses({204: None}, 403, 404, write=True))
def rule_delete(request, rule_id: Id):
    """Remove a rule and its alerts (admins only)."""
    services.alert_rule_delete(actor=request.auth, rule_id=rule_id)
    return 204, None


@router.get("/alerts", response=responses({200: list[AlertOut]}))
def alert_list(request, state: Optional[Literal["firing", "resolved"]] = Query(None),
               limit: int = Query(100, ge=1, le=500)):
    """Alerts, newest first."""
    return [alert_out(a) for a in selectors.alerts_list(state=state, limit=limit)]


@router.post("/alerts/{alert_id}/ack", response=responses({200: AlertOut}, 403, 404, write=True))
def alert_ack(request, alert_id: Id):
    """Acknowledge an alert (admins only); a second acknowledgement keeps the first."""
    services.alert_acknowledge(actor=request.auth, alert_id=alert_id)
    return alert_out(selectors.alert_get(alert_id))
