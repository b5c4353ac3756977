"""Guarded rollouts: a canary of a new version on an alias, watched every minute, rolled back on a breach,
promoted after it held. And the monitor's tick over every running experiment.

Contract:
- `canary_start(*, actor, version_id, alias, percent, thresholds, ...)` (admins; POST /api/models/{id}/deploy
  with canary_percent): an Experiment of kind canary with arms `stable` (the alias's current version, weight
  100 - percent) and `canary` (the new version, weight percent), split per request unless `sticky_by` says
  otherwise. The alias row keeps pointing at the stable version (the registry records a `canary` deployment);
  the split is the proxy's. Field errors: an alias that does not exist (a canary needs a version to compare
  with), the version it already serves, a percent outside 1..99, unknown or out-of-range thresholds.
- Thresholds (THRESHOLDS; absolute, on the canary arm over the last `window_minutes`): error_rate (max, 0..1),
  p95_ms (max), ttft_ms (max p95 time to first token), tool_call_validity (min, 0..1), feedback (min mean,
  0..1). A metric is judged once it has `min_requests` observations in the window (requests; tool calls;
  feedback answers). Without thresholds: error_rate 0.05 (the seed's alert default).
- `canary_evaluate(exp, now)`: the first breached threshold rolls the canary back: the split ends
  (status rolled_back), the registry records a `rollback` to the stable version with the breach as its
  reason, a RolloutEvent(kind breach) keeps the metric, its value, the threshold, both arms' metrics and
  the window. Otherwise, once `hold_minutes` have passed since the start with at least `min_requests`
  canary requests: promoted when `auto_promote`, else marked ready (one RolloutEvent ready; one click on
  the page promotes it).
- `canary_rollback(*, actor, experiment_id, reason)`: the same rollback by hand (admins).
- `monitor_tick(now=None)`: every running experiment, each in its own transaction (rows locked with SKIP
  LOCKED, so overlapping ticks never evaluate one twice): canaries as above; experiments get their running
  minimum of always-valid p-values updated (apps.experiments.verdict). Run by the `experiments_monitor`
  actor every MONITOR_EVERY_S seconds (workers/experiments.py), never on the request path.
"""
from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from apps.accounts.services import require_admin
from apps.core import invalidation
from apps.core.exceptions import ValidationFailed
from apps.experiments.metrics import arm_metrics
from apps.experiments.models import Arm, Experiment, RolloutEvent
from apps.experiments.services import end, ensure_no_running, event_record, experiment_promote, locked

MONITOR_EVERY_S = 60
DEFAULT_THRESHOLDS = {"error_rate": 0.05}
# name: (direction, metric key in arm_metrics, count key, lower bound, upper bound, label)
THRESHOLDS = {
    "error_rate": ("max", "error_rate", "requests", 0.0, 1.0, "error rate"),
    "p95_ms": ("max", "p95_ms", "requests", 1.0, 3_600_000.0, "p95 latency (ms)"),
    "ttft_ms": ("max", "ttft_p95_ms", "requests", 1.0, 3_600_000.0, "p95 time to first token (ms)"),
    "tool_call_validity": ("min", "tool_call_validity", "tool_calls", 0.0, 1.0, "tool-call validity"),
    "feedback": ("min", "feedback_mean", "feedback_n", 0.0, 1.0, "mean feedback"),
}


def clean_thresholds(thresholds: dict | None) -> dict:
    if thresholds is None:
        return dict(DEFAULT_THRESHOLDS)
    if not isinstance(thresholds, dict):
        raise ValidationFailed("An object of thresholds.", field="thresholds")
    out, errors = {}, []
    for key, value in thresholds.items():
        if value is None:
            continue
        if key not in THRESHOLDS:
            errors.append({"field": f"thresholds.{key}", "message": f"Unknown threshold; use {', '.join(THRESHOLDS)}."})
            continue
        lo, hi = THRESHOLDS[key][3], THRESHOLDS[key][4]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
            errors.append({"field": f"thresholds.{key}", "message": f"A number from {lo:g} to {hi:g}."})
            continue
        out[key] = float(value)
    if errors:
        raise ValidationFailed(errors[0]["message"], errors=errors)
    if not out:
        raise ValidationFailed("Give at least one threshold.", field="thresholds")
    return out


def _int_in(value, lo: int, hi: int, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValidationFailed(f"A whole number from {lo} to {hi}.", field=field)
    return value


@transaction.atomic
def canary_start(*, actor, version_id: int, alias: str, percent: int, thresholds: dict | None = None,
                 window_minutes: int = 5, min_requests: int = 20, hold_minutes: int = 30, auto_promote: bool = False,
                 sticky_by: str = "request", webhook_url: str = "", reason: str = "") -> Experiment:
    from apps.registry.models import Alias, Deployment, ModelVersion

    require_admin(actor)
    percent = _int_in(percent, 1, 99, "canary_percent")
    window_minutes = _int_in(window_minutes, 1, 1440, "window_minutes")
    min_requests = _int_in(min_requests, 1, 1_000_000, "min_requests")
    hold_minutes = _int_in(hold_minutes, 0, 60 * 24 * 30, "hold_minutes")
    clean = clean_thresholds(thresholds)
    if sticky_by not in Experiment.StickyBy.values:
        raise ValidationFailed(f"One of {', '.join(Experiment.StickyBy.values)}.", field="sticky_by")
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        from apps.core.exceptions import NotFound

        raise NotFound(f"Model version {version_id} does not exist.")
    current = Alias.objects.select_for_update().filter(name=alias).first()
    if current is None:
        raise ValidationFailed(f"Alias {alias!r} serves nothing yet: a canary needs a current version to compare "
                               "with. Deploy without a canary first.", field="alias")
    if current.model_version_id == version.pk:
        raise ValidationFailed(f"Alias {alias!r} already serves mv-{version.pk}.", field="alias")
    ensure_no_running(alias)
    exp = Experiment.objects.create(
        alias=alias, kind=Experiment.Kind.CANARY, sticky_by=sticky_by, metric=Experiment.Metric.ERROR_RATE,
        thresholds=clean, window_minutes=window_minutes, min_requests=min_requests, hold_minutes=hold_minutes,
        auto_promote=bool(auto_promote), webhook_url=webhook_url or "", created_by=actor,
        name=f"canary mv-{version.pk} on {alias}")
    Arm.objects.bulk_create([
        Arm(experiment=exp, name="stable", position=0, model_version_id=current.model_version_id, weight=100 - percent),
        Arm(experiment=exp, name="canary", position=1, model_version=version, weight=percent)])
    Deployment.objects.create(alias_name=alias, model_version=version, previous_version_id=current.model_version_id,
                              action="canary", actor=actor,
                              reason=(reason or f"Canary at {percent} % (experiment {exp.pk}).")[:2000])
    event_record(experiment=exp, kind=RolloutEvent.Kind.STARTED, actor=actor,
                 message=f"Canary mv-{version.pk} at {percent} % next to mv-{current.model_version_id}; "
                         f"thresholds {_describe(clean)} over {window_minutes} min, at least {min_requests} "
                         f"observations; hold {hold_minutes} min{', then promote automatically' if auto_promote else ''}.")
    invalidation.publish_on_commit(invalidation.ROUTES)
    return exp


def _describe(thresholds: dict) -> str:
    parts = []
    for key, value in thresholds.items():
        direction, label = THRESHOLDS[key][0], THRESHOLDS[key][5]
        shown = f"{value * 100:g} %" if key in ("error_rate", "tool_call_validity") else f"{value:g}"
        parts.append(f"{label} {'≤' if direction == 'max' else '≥'} {shown}")
    return ", ".join(parts)


def breach_of(exp: Experiment, metrics: dict) -> dict | None:
    """The first threshold the canary arm breaks in `metrics` (arm -> arm_metrics row), or None."""
    canary = metrics.get("canary") or {}
    for key, limit in (exp.thresholds or DEFAULT_THRESHOLDS).items():
        if key not in THRESHOLDS:
            continue
        direction, field, count_key, *_ = THRESHOLDS[key]
        value = canary.get(field)
        if value is None or (canary.get(count_key) or 0) < exp.min_requests:
            continue
        if (direction == "max" and value > limit) or (direction == "min" and value < limit):
            return {"metric": key, "value": float(value), "threshold": float(limit), "label": THRESHOLDS[key][5],
                    "direction": direction}
    return None


def _rollback(exp: Experiment, *, actor, reason: str, breach: dict | None = None, values=None, window=None):
    from apps.registry.models import Deployment

    arms = {a.name: a for a in exp.arms.all()}
    end(exp, status=Experiment.Status.ROLLED_BACK, actor=actor, reason=reason)
    Deployment.objects.create(alias_name=exp.alias, model_version_id=arms["stable"].model_version_id,
                              previous_version_id=arms["canary"].model_version_id, action="rollback",
                              actor=actor if getattr(actor, "is_authenticated", False) else None, reason=reason[:2000])
    return event_record(experiment=exp, kind=RolloutEvent.Kind.BREACH if breach else RolloutEvent.Kind.STOPPED,
                        actor=actor, message=reason, metric=breach["metric"] if breach else "",
                        value=breach["value"] if breach else None, threshold=breach["threshold"] if breach else None,
                        values=values, window=window)


@transaction.atomic
def canary_rollback(*, actor, experiment_id: int, reason: str = "") -> Experiment:
    require_admin(actor)
    exp = locked(experiment_id)
    if exp.kind != Experiment.Kind.CANARY:
        raise ValidationFailed("Only a canary rolls back; stop an experiment instead.", field="experiment_id")
    if not exp.running:
        from apps.core.exceptions import Conflict

        raise Conflict(f"Canary {exp.pk} is already {exp.get_status_display()}.")
    _rollback(exp, actor=actor, reason=reason or f"Canary {exp.pk} rolled back by hand.")
    return exp


def _window(exp: Experiment, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return max(exp.started_at, now - dt.timedelta(minutes=exp.window_minutes)), now


def canary_evaluate(exp: Experiment, *, now: dt.datetime | None = None) -> str:
    """One evaluation (inside the caller's transaction, `exp` locked): 'rolled_back', 'promoted', 'ready',
    'holding' or 'waiting' (too few observations)."""
    now = now or timezone.now()
    window = _window(exp, now)
    metrics = arm_metrics(exp.pk, ["stable", "canary"], since=window[0], until=window[1])
    stats = dict(exp.stats or {})
    stats.update(evaluations=int(stats.get("evaluations") or 0) + 1, last_evaluated_at=now.isoformat(),
                 window={"start": window[0].isoformat(), "end": window[1].isoformat()}, last=metrics)
    breach = breach_of(exp, metrics)
    if breach is not None:
        exp.stats = stats
        exp.save(update_fields=["stats"])
        shown = (f"{breach['value'] * 100:.1f} %" if breach["metric"] in ("error_rate", "tool_call_validity")
                 else f"{breach['value']:g}")
        limit = (f"{breach['threshold'] * 100:g} %" if breach["metric"] in ("error_rate", "tool_call_validity")
                 else f"{breach['threshold']:g}")
        reason = (f"Canary {exp.pk} breached {breach['label']}: {shown} "
                  f"{'>' if breach['direction'] == 'max' else '<'} {limit} over "
                  f"{window[0]:%H:%M:%S}–{window[1]:%H:%M:%S} UTC ({metrics['canary']['requests']} canary requests); "
                  "rolled back automatically.")
        _rollback(exp, actor=None, reason=reason, breach=breach, values=metrics, window=window)
        return "rolled_back"
    total = arm_metrics(exp.pk, ["canary"])["canary"]["requests"]
    held = now - exp.started_at >= dt.timedelta(minutes=exp.hold_minutes)
    outcome = "waiting" if metrics["canary"]["requests"] < exp.min_requests else "holding"
    if held and total >= exp.min_requests:
        if exp.auto_promote:
            exp.stats = stats
            exp.save(update_fields=["stats"])
            experiment_promote(actor=None, experiment_id=exp.pk, automatic=True)
            return "promoted"
        if not stats.get("ready_at"):
            stats["ready_at"] = now.isoformat()
            event_record(experiment=exp, kind=RolloutEvent.Kind.READY, values=metrics, window=window,
                         message=f"Canary {exp.pk} held for {exp.hold_minutes} min ({total} requests, no threshold "
                                 "breached): ready to promote.")
        outcome = "ready"
    exp.stats = stats
    exp.save(update_fields=["stats"])
    return outcome


def monitor_tick(*, now: dt.datetime | None = None) -> dict[int, str]:
    from apps.experiments.verdict import experiment_evaluate

    outcomes: dict[int, str] = {}
    for pk in list(Experiment.objects.filter(status=Experiment.Status.RUNNING).values_list("pk", flat=True)):
        with transaction.atomic():
            exp = (Experiment.objects.select_for_update(skip_locked=True)
                   .filter(pk=pk, status=Experiment.Status.RUNNING).first())
            if exp is None:
                continue
            if exp.kind == Experiment.Kind.CANARY:
                outcomes[pk] = canary_evaluate(exp, now=now)
            else:
                outcomes[pk] = experiment_evaluate(exp, now=now)
    return outcomes
