"""Reads of experiments, shared by /api, the pages, the proxy and the Monitoring page.

- `split_rows(alias)`: the running experiment on an alias as the proxy caches it with the alias's plan
  (apps.proxy.selectors._split): (experiment id, sticky_by, [(arm name, weight, ModelVersion)]) or None. Two
  queries, only when a plan is built (never per request).
- `experiment_list`, `experiment_get` (NotFound), `running_on(alias)`, `arm_rows(experiment)`.
- `rollout_events_recent(limit=20, alias=None)`: the newest RolloutEvents as plain dicts for other apps
  (Monitoring): {id, created_at, alias, kind, experiment_id, experiment_kind, metric, value, threshold,
  window_start, window_end, message, actor, url} - `url` is the experiment's page.
- `events_for(experiment)`: its events, newest first.
"""
from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.urls import reverse

from apps.core.exceptions import NotFound
from apps.experiments.models import Arm, Experiment, RolloutEvent


def split_rows(alias: str):
    exp = (Experiment.objects.filter(alias=alias, status=Experiment.Status.RUNNING)
           .prefetch_related(Prefetch("arms", queryset=Arm.objects.select_related("model_version__base_model")))
           .first())
    if exp is None:
        return None
    return exp.pk, exp.sticky_by, [(a.name, a.weight, a.model_version) for a in exp.arms.all()]


def experiment_list(*, alias: str | None = None, status: str | None = None) -> QuerySet[Experiment]:
    qs = Experiment.objects.select_related("created_by", "ended_by").prefetch_related(
        Prefetch("arms", queryset=Arm.objects.select_related("model_version")))
    if alias:
        qs = qs.filter(alias=alias)
    if status:
        qs = qs.filter(status=status)
    return qs


def experiment_get(experiment_id: int) -> Experiment:
    exp = experiment_list().filter(pk=experiment_id).first()
    if exp is None:
        raise NotFound(f"Experiment {experiment_id} does not exist.")
    return exp


def running_on(alias: str) -> Experiment | None:
    return experiment_list().filter(alias=alias, status=Experiment.Status.RUNNING).first()


def arm_rows(experiment: Experiment) -> list[Arm]:
    return list(experiment.arms.all())


def events_for(experiment: Experiment) -> QuerySet[RolloutEvent]:
    return experiment.events.select_related("actor").order_by("-created_at", "-id")


def event_out(e: RolloutEvent) -> dict:
    return {"id": e.pk, "created_at": e.created_at, "alias": e.alias, "kind": e.kind,
            "experiment_id": e.experiment_id, "experiment_kind": e.experiment.kind if e.experiment else None,
            "metric": e.metric, "value": e.value, "threshold": e.threshold, "values": e.values,
            "window_start": e.window_start, "window_end": e.window_end, "message": e.message,
            "actor": e.actor.username if e.actor else None, "webhook_status": e.webhook_status,
            "url": reverse("experiments:detail", args=[e.experiment_id]) if e.experiment_id else None}


def rollout_events_recent(limit: int = 20, alias: str | None = None) -> list[dict]:
    qs = RolloutEvent.objects.select_related("experiment", "actor").order_by("-created_at", "-id")
    if alias:
        qs = qs.filter(alias=alias)
    return [event_out(e) for e in qs[:max(0, min(int(limit), 500))]]
