"""Writes of online experiments: create, stop, promote a winner; feedback; exposures; rollout events.
Canaries (start, evaluation, rollback) are apps/experiments/canary.py.

Contract:
- `experiment_create(*, actor, alias, arms=[{"model_version_id", "weight"}], sticky_by, metric, name)`
  (admins): 2..MAX_ARMS distinct versions, integer weights 0..10000 with at least one above 0, on an alias that
  exists (a registry alias or a chain) and has no running experiment (Conflict). Arms are named A, B, C...
  in the given order; A is the control the others are compared with.
- `experiment_stop(*, actor, experiment_id, reason)` (admins): the split ends, the alias serves what it served.
- `experiment_promote(*, actor, experiment_id, arm=None, reason)` (admins): the alias is deployed to the arm's
  version (registry action `promote`, with the reason); without `arm`, the verdict's winner (a field error
  when the test has not found one). An arm whose version the alias already serves ends the split without a
  deployment (nothing would change).
- `feedback_record(*, actor, request_id, thumbs, score, comment, edit_accepted)`: one per (request, caller),
  a second call updates it. The request must be the caller's (admins: anyone's) and already logged (the
  log is written within a second of the answer): NotFound otherwise. value = score, else thumbs (1 / 0).
- `exposure_record(...)`: called by the request-log worker (apps.proxy.services); idempotent.
- `event_record(...)`: a RolloutEvent, and its webhook queued after commit (actor `rollout_webhook_send`).
Every change of a split publishes invalidation.ROUTES after commit, so each web process rebuilds its plans.
"""
from __future__ import annotations

import datetime as dt

import httpx
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.services import require_admin
from apps.core import invalidation
from apps.core.exceptions import Conflict, NotFound, ValidationFailed
from apps.core.jobs import enqueue as jobs
from apps.experiments.models import Arm, Experiment, Exposure, Feedback, RolloutEvent

MAX_ARMS = 8
MAX_WEIGHT = 10_000
ARM_NAMES = "ABCDEFGH"


def _alias_exists(alias: str) -> bool:
    from apps.proxy.models import AliasChain
    from apps.registry.models import Alias

    return Alias.objects.filter(name=alias).exists() or AliasChain.objects.filter(name=alias).exists()


def ensure_no_running(alias: str) -> None:
    running = Experiment.objects.filter(alias=alias, status=Experiment.Status.RUNNING).first()
    if running is not None:
        raise Conflict(f"{running.get_kind_display().capitalize()} {running.pk} is running on alias {alias!r}: "
                       "stop, promote or roll it back first.", field="alias")


def _clean_arms(arms) -> list[tuple[int, int]]:
    from apps.registry.models import ModelVersion

    if not isinstance(arms, list) or not 2 <= len(arms) <= MAX_ARMS:
        raise ValidationFailed(f"Give 2 to {MAX_ARMS} arms.", field="arms")
    out, errors = [], []
    for i, arm in enumerate(arms):
        vid = arm.get("model_version_id") if isinstance(arm, dict) else None
        weight = arm.get("weight") if isinstance(arm, dict) else None
        if not isinstance(vid, int) or isinstance(vid, bool) or vid <= 0:
            errors.append({"field": f"arms.{i}.model_version_id", "message": "A model version id."})
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= MAX_WEIGHT:
            errors.append({"field": f"arms.{i}.weight", "message": f"A whole number from 0 to {MAX_WEIGHT}."})
        out.append((vid, weight))
    if errors:
        raise ValidationFailed("Some arms are invalid.", errors=errors)
    found = set(ModelVersion.objects.filter(pk__in=[v for v, _ in out]).values_list("pk", flat=True))
    for i, (vid, _) in enumerate(out):
        if vid not in found:
            errors.append({"field": f"arms.{i}.model_version_id", "message": f"Model version {vid} does not exist."})
        elif vid in [v for v, _ in out[:i]]:
            errors.append({"field": f"arms.{i}.model_version_id", "message": "Each arm needs its own version."})
    if not errors and not any(w > 0 for _, w in out):
        errors.append({"field": "arms", "message": "At least one arm needs a weight above 0."})
    if errors:
        raise ValidationFailed(errors[0]["message"], errors=errors)
    return out


@transaction.atomic
def experiment_create(*, actor, alias: str, arms: list[dict], sticky_by: str = "api_key",
                      metric: str = "feedback", name: str = "") -> Experiment:
    require_admin(actor)
    if sticky_by not in Experiment.StickyBy.values:
        raise ValidationFailed(f"One of {', '.join(Experiment.StickyBy.values)}.", field="sticky_by")
    if metric not in Experiment.Metric.values:
        raise ValidationFailed(f"One of {', '.join(Experiment.Metric.values)}.", field="metric")
    if not isinstance(alias, str) or not alias or not _alias_exists(alias):
        raise ValidationFailed(f"Alias {alias!r} does not exist: deploy a version to it first.", field="alias")
    clean = _clean_arms(arms)
    ensure_no_running(alias)
    try:
        with transaction.atomic():
            exp = Experiment.objects.create(alias=alias, kind=Experiment.Kind.EXPERIMENT, sticky_by=sticky_by,
                                            metric=metric, name=(name or "")[:200], created_by=actor)
    except IntegrityError:  # a concurrent start on the same alias won
        ensure_no_running(alias)
        raise
    Arm.objects.bulk_create([Arm(experiment=exp, name=ARM_NAMES[i], position=i, model_version_id=vid, weight=w)
                             for i, (vid, w) in enumerate(clean)])
    event_record(experiment=exp, kind=RolloutEvent.Kind.STARTED, actor=actor,
                 message="Split " + ", ".join(f"{ARM_NAMES[i]} mv-{v} {w}" for i, (v, w) in enumerate(clean))
                 + f"; sticky by {'API key' if sticky_by == Experiment.StickyBy.API_KEY else sticky_by}.")
    invalidation.publish_on_commit(invalidation.ROUTES)
    return exp


def locked(experiment_id: int) -> Experiment:
    exp = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
    if exp is None:
        raise NotFound(f"Experiment {experiment_id} does not exist.")
    return exp


def end(exp: Experiment, *, status: str, actor, reason: str, winner: str = "") -> None:
    exp.status, exp.ended_at, exp.ended_by = status, timezone.now(), actor
    exp.end_reason, exp.winner = (reason or "")[:2000], winner
    exp.save(update_fields=["status", "ended_at", "ended_by", "end_reason", "winner"])
    invalidation.publish_on_commit(invalidation.ROUTES)


def _require_running(exp: Experiment) -> None:
    if not exp.running:
        raise Conflict(f"Experiment {exp.pk} is already {exp.get_status_display()}.")


@transaction.atomic
def experiment_stop(*, actor, experiment_id: int, reason: str = "") -> Experiment:
    require_admin(actor)
    exp = locked(experiment_id)
    _require_running(exp)
    end(exp, status=Experiment.Status.STOPPED, actor=actor, reason=reason or "Stopped.")
    event_record(experiment=exp, kind=RolloutEvent.Kind.STOPPED, actor=actor, message=reason or "Stopped by hand.")
    return exp


@transaction.atomic
def experiment_promote(*, actor, experiment_id: int, arm: str | None = None, reason: str = "",
                       automatic: bool = False) -> Experiment:
    """See the module's contract. `automatic`: the canary monitor promoting a canary that held (no actor)."""
    from apps.registry.models import Alias
    from apps.registry.services import alias_deploy

    if not automatic:
        require_admin(actor)
    exp = locked(experiment_id)
    _require_running(exp)
    arms = {a.name: a for a in exp.arms.select_related("model_version")}
    if not arm:
        if exp.kind == Experiment.Kind.CANARY:
            arm = "canary"
        else:
            from apps.experiments.verdict import experiment_report

            arm = experiment_report(exp)["verdict"]["winner"]
            if not arm:
                raise ValidationFailed("The test has no winner yet: name the arm to promote.", field="arm")
    if arm not in arms:
        raise ValidationFailed(f"No arm {arm!r} in this experiment (arms: {', '.join(arms)}).", field="arm")
    version = arms[arm].model_version
    why = reason or (f"Canary {exp.pk} held for {exp.hold_minutes} min." if exp.kind == Experiment.Kind.CANARY
                     else f"Arm {arm} won experiment {exp.pk}.")
    end(exp, status=Experiment.Status.PROMOTED, actor=actor, reason=why, winner=arm)
    current = Alias.objects.filter(name=exp.alias).values_list("model_version_id", flat=True).first()
    if current != version.pk:
        alias_deploy(actor=actor, version_id=version.pk, alias=exp.alias, action="promote",
                     reason=f"{why} (experiment {exp.pk}, arm {arm})", system=automatic)
    event_record(experiment=exp, kind=RolloutEvent.Kind.PROMOTED, actor=actor,
                 message=f"{'Automatically promoted' if automatic else 'Promoted'} arm {arm} (mv-{version.pk}) "
                         f"on {exp.alias}. {why}" + ("" if current != version.pk else " It already served the alias."))
    return exp


def event_record(*, experiment: Experiment | None, kind: str, actor=None, message: str = "", metric: str = "",
                 value: float | None = None, threshold: float | None = None, values: dict | None = None,
                 window: tuple[dt.datetime, dt.datetime] | None = None, alias: str | None = None) -> RolloutEvent:
    event = RolloutEvent.objects.create(
        experiment=experiment, alias=alias or (experiment.alias if experiment else ""), kind=kind, metric=metric,
        value=value, threshold=threshold, values=values or {}, message=message[:4000],
        window_start=window[0] if window else None, window_end=window[1] if window else None,
        actor=actor if getattr(actor, "is_authenticated", False) else None)
    if experiment is not None and experiment.webhook_url:
        jobs.enqueue("rollout_webhook_send", event.pk, queue_name="default")
    return event


def rollout_webhook_send(*, event_id: int) -> str:
    """POST the event as JSON to its experiment's webhook (the actor's work); records the outcome."""
    from apps.experiments.selectors import event_out

    event = RolloutEvent.objects.select_related("experiment", "actor").filter(pk=event_id).first()
    if event is None or event.experiment is None or not event.experiment.webhook_url:
        return "skipped"
    body = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in event_out(event).items()}
    try:
        r = httpx.post(event.experiment.webhook_url, json={"event": "rollout." + event.kind, **body}, timeout=10)
        status = f"HTTP {r.status_code}"
    except httpx.HTTPError as exc:
        status = f"failed: {type(exc).__name__}"
    RolloutEvent.objects.filter(pk=event_id).update(webhook_status=status[:200])
    return status


def exposure_record(*, experiment_id: int, arm: str, unit: str, at: dt.datetime) -> None:
    if Experiment.objects.filter(pk=experiment_id).exists():
        Exposure.objects.bulk_create([Exposure(experiment_id=experiment_id, arm=arm[:16], unit=unit[:32], first_at=at)],
                                     ignore_conflicts=True)


@transaction.atomic
def feedback_record(*, actor, request_id: str, thumbs: bool | None = None, score: float | None = None,
                    comment: str = "", edit_accepted: bool | None = None) -> Feedback:
    from apps.proxy.models import RequestLog

    if thumbs is None and score is None:
        raise ValidationFailed("Give `thumbs` (true / false) or a `score` from 0 to 1.", field="thumbs")
    if score is not None and not (isinstance(score, (int, float)) and 0 <= score <= 1):
        raise ValidationFailed("A score from 0 to 1.", field="score")
    log = RequestLog.objects.filter(request_id=request_id).only("user_id", "experiment_id", "arm").first()
    if log is None or (log.user_id != actor.pk and not actor.is_hub_admin):
        raise NotFound(f"No request {request_id!r} of yours is logged (logs are written within a second or so "
                       "of the answer: try again shortly).", field="request_id")
    value = float(score) if score is not None else (1.0 if thumbs else 0.0)
    fb, _ = Feedback.objects.update_or_create(
        request_id=request_id, user=actor,
        defaults=dict(thumbs=thumbs, score=score, value=value, comment=(comment or "")[:10_000],
                      edit_accepted=edit_accepted, experiment_id=log.experiment_id, arm=log.arm))
    return fb
