"""/api routes of online experiments, canaries, feedback and rollout events. Parses input, calls a selector or a
service, renders; every status an operation returns is declared (apps.core.schemas). Canaries are started by
POST /api/models/{id}/deploy with canary_percent (apps.registry.api)."""
from __future__ import annotations

from django.db import transaction
from ninja import Body, Query, Router

from apps.core.inputs import Id, PageNumber, Slug
from apps.core.schemas import responses
from apps.experiments import canary, selectors, services
from apps.experiments.schemas import (EventOut, ExperimentDetail, ExperimentIn, ExperimentOut, FeedbackIn,
                                      FeedbackOut, PromoteIn, ReasonIn)
from apps.experiments.verdict import experiment_report

router = Router(tags=["experiments"])


def experiment_out(e) -> dict:
    return {"id": e.pk, "name": e.name, "alias": e.alias, "kind": e.kind, "status": e.status,
            "sticky_by": e.sticky_by, "metric": e.metric, "thresholds": e.thresholds or {},
            "window_minutes": e.window_minutes, "min_requests": e.min_requests, "hold_minutes": e.hold_minutes,
            "auto_promote": e.auto_promote, "winner": e.winner, "started_at": e.started_at, "ended_at": e.ended_at,
            "end_reason": e.end_reason, "created_by": e.created_by.username if e.created_by else None,
            "arms": [{"name": a.name, "model_version_id": a.model_version_id, "weight": a.weight}
                     for a in e.arms.all()]}


def experiment_detail(e) -> dict:
    report = experiment_report(e)
    st = e.stats or {}
    canary_state = None
    if e.kind == "canary":
        canary_state = {"last_evaluated_at": st.get("last_evaluated_at"), "evaluations": st.get("evaluations", 0),
                        "window": st.get("window"), "last": st.get("last"), "ready_at": st.get("ready_at")}
    return {**experiment_out(e), "per_arm": report["arms"], "comparisons": report["comparisons"],
            "alpha": report["alpha"], "verdict": report["verdict"], "srm": report["srm"],
            "events": [selectors.event_out(ev) for ev in selectors.events_for(e)[:100]], "canary": canary_state}


@router.get("/experiments", response=responses({200: list[ExperimentOut]}))
def experiment_list(request, alias: Slug | None = None, status: str | None = Query(None, pattern="^[a-z_]{1,16}$")):
    """Experiments and canaries, newest first (filter by alias or status)."""
    return [experiment_out(e) for e in selectors.experiment_list(alias=alias, status=status)[:500]]


@router.post("/experiments", response=responses({201: ExperimentDetail}, 409, body=True))
def experiment_create(request, payload: ExperimentIn):
    """Split an alias's traffic across model versions with weights, sticky by API key, user, session or request
    (admins only). The first arm is the control."""
    exp = services.experiment_create(actor=request.auth, alias=payload.alias,
                                     arms=[a.model_dump() for a in payload.arms], sticky_by=payload.sticky_by,
                                     metric=payload.metric, name=payload.name or "")
    return 201, experiment_detail(selectors.experiment_get(exp.pk))


@router.get("/experiments/{experiment_id}", response=responses({200: ExperimentDetail}, 404))
def experiment_get(request, experiment_id: Id):
    """Per-arm metrics, each arm against the control (always-valid p-values and intervals), the verdict with
    its stopping rule, the sample-ratio-mismatch check and the rollout events."""
    return experiment_detail(selectors.experiment_get(experiment_id))


@router.post("/experiments/{experiment_id}/stop", response=responses({200: ExperimentDetail}, 404, 409, body=True))
def experiment_stop(request, experiment_id: Id, payload: ReasonIn = Body(None)):
    """End the split; the alias serves what it served before (admins only)."""
    services.experiment_stop(actor=request.auth, experiment_id=experiment_id, reason=(payload.reason or "") if payload else "")
    return experiment_detail(selectors.experiment_get(experiment_id))


@router.post("/experiments/{experiment_id}/promote", response=responses({200: ExperimentDetail}, 404, 409, body=True))
def experiment_promote(request, experiment_id: Id, payload: PromoteIn = Body(None)):
    """Deploy the winning arm's version to the alias and end the split (admins only); a canary promotes its
    canary arm."""
    p = payload or PromoteIn()
    services.experiment_promote(actor=request.auth, experiment_id=experiment_id, arm=p.arm, reason=p.reason or "")
    return experiment_detail(selectors.experiment_get(experiment_id))


@router.post("/experiments/{experiment_id}/rollback", response=responses({200: ExperimentDetail}, 404, 409, body=True))
def canary_rollback(request, experiment_id: Id, payload: ReasonIn = Body(None)):
    """Roll a canary back by hand: the split ends, the alias keeps its stable version (admins only)."""
    canary.canary_rollback(actor=request.auth, experiment_id=experiment_id,
                           reason=(payload.reason or "") if payload else "")
    return experiment_detail(selectors.experiment_get(experiment_id))


@router.post("/feedback", response=responses({201: FeedbackOut}, 404, body=True))
def feedback_create(request, payload: FeedbackIn):
    """Feedback on one /v1 answer, keyed by its request id (the `x-request-id` header): thumbs, a score 0..1, a
    comment, whether an edit was accepted. One per caller and request: sending again updates it."""
    with transaction.atomic():
        fb = services.feedback_record(actor=request.auth, request_id=payload.request_id, thumbs=payload.thumbs,
                                      score=payload.score, comment=payload.comment or "",
                                      edit_accepted=payload.edit_accepted)
    return 201, fb


@router.get("/rollouts/events", response=responses({200: list[EventOut]}))
def rollout_events(request, limit: PageNumber = 50, alias: Slug | None = None):
    """Rollout events (canary started, breach and rollback, ready, promoted, stopped), newest first."""
    return selectors.rollout_events_recent(limit=min(limit, 500), alias=alias)
