"""/api/reviews: review tasks, the queue (next / decision / skip / undo), turn edits, comments, flags,
agreement and stats, adjudication, bulk actions, snapshot / finish, the JSONL export, the edits as preference
pairs (`preference-export`) and a DPO run on them (`dpo`). Parses input, calls a
selector or a service (apps.review), renders; no ORM writes here. Statuses: 204 from `next` / `undo` when
there is nothing for the caller; 202 from `finish` / `snapshot` while the version's job builds it on a worker
(the body carries the job); 403 not assigned / not holding the item / not allowed; 409 edit conflict
(body carries `theirs`, the other reviewer's version) or a closed task; 422 field errors, nothing saved."""
from __future__ import annotations

from django.http import StreamingHttpResponse
from ninja import Router

from apps.core.inputs import Id, Index
from apps.core.schemas import responses
from apps.review import selectors, services
from apps.review.models import ReviewTask
from apps.review.schemas import (
    AdjudicatedOut, AdjudicateIn, AdjudicationItemOut, AgreementOut, BulkIn, BulkOut, CommentIn, CommentOut,
    DecisionIn, DecisionOut, FlagIn, FlagsOut, ItemOut, NextOut, PreferenceExportIn, PreferenceExportOut,
    ResultOut, ReviewDpoIn, ReviewDpoOut, ReviewerStatsOut, TaskIn, TaskOut, TaskPatch, TurnIn, TurnOut,
)

router = Router(tags=["reviews"])


def task_out(task: ReviewTask) -> dict:
    return {
        "id": task.pk, "name": task.name, "status": task.status, "instructions": task.instructions,
        "dataset_id": task.version.dataset_id, "dataset_version_id": task.version_id, "overlap": task.overlap,
        "assignees": list(task.assignments.order_by("user__username").values_list("user__username", flat=True)),
        "owner": task.owner.username, "lead": task.lead.username if task.lead_id else None,
        "labels": list(task.labels or []), "rating": task.rating, "filter": task.filter or {},
        "lease_seconds": task.lease_seconds, "result_version_id": task.result_version_id,
        "created_at": task.created_at.isoformat(),
        "finished_at": task.finished_at.isoformat() if task.finished_at else None,
        "progress": selectors.task_progress(task=task),
    }


def _fresh(request, task_id: int) -> ReviewTask:
    task = selectors.task_get(user=request.auth, task_id=task_id)
    return ReviewTask.objects.select_related("version", "owner", "lead").get(pk=task.pk)


def next_out(item) -> dict:
    lease = getattr(item, "lease", None)
    return {"item_id": item.pk, "example_index": item.example_index, "revision": item.revision,
            "lease_expires_at": lease.lease_expires_at.isoformat() if lease and lease.lease_expires_at else None,
            "example": selectors.example_payload(item)}


def result_out(snap, user) -> tuple[int, dict]:
    """(status code, body): 202 while the version's job builds it."""
    from apps.core.jobs.selectors import job_as_dict

    v = snap.version
    body = {"dataset_version_id": v.pk, "status": v.status, "accepted": snap.accepted, "rejected": snap.rejected,
            "edited": snap.edited, "final": snap.final, "snapshot_id": snap.pk, "error": v.error or None,
            "job": job_as_dict(v.job, user=user) if v.job_id else None}
    return (202 if v.status == "importing" else 200), body


@router.post("", response=responses({201: TaskOut}, 404, 409, body=True),
             summary="Create a review task on a dataset version")
def create_task(request, payload: TaskIn):
    task = services.task_create(
        user=request.auth, version_id=payload.dataset_version_id, name=payload.name, overlap=payload.overlap,
        assignees=payload.assignees, instructions=payload.instructions, labels=payload.labels,
        rating=payload.rating, lead=payload.lead, filter=payload.filter, lease_seconds=payload.lease_seconds)
    return 201, task_out(_fresh(request, task.pk))


@router.get("", response=responses({200: list[TaskOut]}, inputs=False), summary="Review tasks you can see")
def list_tasks(request):
    return [task_out(t) for t in selectors.task_list(user=request.auth)[:200]]


@router.get("/{task_id}", response=responses({200: TaskOut}, 403, 404))
def get_task(request, task_id: Id):
    return task_out(_fresh(request, task_id))


@router.patch("/{task_id}", response=responses({200: TaskOut}, 403, 404, 409, body=True))
def update_task(request, task_id: Id, payload: TaskPatch):
    services.task_update(user=request.auth, task_id=task_id, name=payload.name, instructions=payload.instructions,
                         assignees=payload.assignees, lead=payload.lead, clear_lead=payload.clear_lead)
    return task_out(_fresh(request, task_id))


@router.post("/{task_id}/next", response=responses({200: NextOut, 204: None}, 403, 404, 409, write=True),
             summary="Take the next item (under a short lease); 204 when nothing is left for you")
def next_item(request, task_id: Id):
    item = services.queue_next(user=request.auth, task_id=task_id)
    if item is None:
        return 204, None
    return 200, next_out(item)


@router.get("/{task_id}/items/{item_id}", response=responses({200: ItemOut}, 403, 404))
def get_item(request, task_id: Id, item_id: Id):
    return selectors.item_view(user=request.auth, task_id=task_id, item_id=item_id)


@router.post("/{task_id}/items/{item_id}/decision", response=responses({200: DecisionOut}, 403, 404, 409, body=True),
             summary="Accept, reject or skip the item you hold (with edits, labels, rating, comment)")
def decide(request, task_id: Id, item_id: Id, payload: DecisionIn):
    resp = services.item_decide(
        user=request.auth, task_id=task_id, item_id=item_id, decision=payload.decision, messages=payload.messages,
        comment=payload.comment, labels=payload.labels, rating=payload.rating,
        turn_decisions=payload.turn_decisions, base_revision=payload.base_revision)
    if resp is None:
        return {"item_id": item_id, "decision": "skip"}
    item = resp.item
    item.refresh_from_db(fields=["state", "done"])
    return {"item_id": item_id, "decision": resp.decision, "state": item.state, "done": item.done,
            "edited_turns": resp.edited_turns}


@router.post("/{task_id}/items/{item_id}/skip", response=responses({200: DecisionOut}, 403, 404, 409, write=True))
def skip(request, task_id: Id, item_id: Id):
    services.item_skip(user=request.auth, task_id=task_id, item_id=item_id)
    return {"item_id": item_id, "decision": "skip"}


@router.post("/{task_id}/items/{item_id}/lease", response=responses({200: NextOut}, 403, 404, 409, write=True),
             summary="Keep holding the item (renews its lease)")
def extend(request, task_id: Id, item_id: Id):
    resp = services.lease_extend(user=request.auth, task_id=task_id, item_id=item_id)
    item = resp.item
    item.lease = resp
    return next_out(item)


@router.post("/{task_id}/items/{item_id}/turns/{turn}", response=responses({200: TurnOut}, 403, 404, 409, body=True),
             summary="Edit and/or decide one turn (inline); the diff against the original comes back")
def turn(request, task_id: Id, item_id: Id, turn: Index, payload: TurnIn):
    out = None
    if payload.message is not None:
        out = services.turn_edit(user=request.auth, task_id=task_id, item_id=item_id, turn_index=turn,
                                 message=payload.message, base_revision=payload.base_revision)
    if payload.decision is not None:
        services.turn_decide(user=request.auth, task_id=task_id, item_id=item_id, turn_index=turn,
                             decision=payload.decision)
    view = selectors.item_view(user=request.auth, task_id=task_id, item_id=item_id)
    if turn >= len(view["turns"]):
        from apps.core.exceptions import NotFound

        raise NotFound(f"The example has no turn {turn}.", field="turn")
    mine = view["mine"] or {}
    return {"item_id": item_id, "turn_index": turn, "revision": view["revision"],
            "message": view["example"]["messages"][turn], "diff": view["turns"][turn]["diff"],
            "changed": bool(out and out["changed"]),
            "decision": (mine.get("turn_decisions") or {}).get(str(turn))}


@router.post("/{task_id}/items/{item_id}/comments", response=responses({201: CommentOut}, 403, 404, body=True))
def comment(request, task_id: Id, item_id: Id, payload: CommentIn):
    c = services.comment_add(user=request.auth, task_id=task_id, item_id=item_id, body=payload.body)
    return 201, {"id": c.pk, "author": request.auth.username, "body": c.body, "created_at": c.created_at.isoformat()}


@router.post("/{task_id}/items/{item_id}/flags", response=responses({200: FlagsOut}, 403, 404, body=True))
def flag(request, task_id: Id, item_id: Id, payload: FlagIn):
    flags = services.flag_set(user=request.auth, task_id=task_id, item_id=item_id, flag=payload.flag, on=payload.on)
    return {"item_id": item_id, "flags": flags}


@router.post("/{task_id}/undo", response=responses({200: NextOut, 204: None}, 403, 404, 409, write=True),
             summary="Take back your last decision: the item comes back to you; 204 when there is none")
def undo(request, task_id: Id):
    item = services.decision_undo(user=request.auth, task_id=task_id)
    if item is None:
        return 204, None
    item.refresh_from_db()
    return 200, next_out(item)


@router.get("/{task_id}/agreement", response=responses({200: AgreementOut}, 403, 404))
def agreement(request, task_id: Id):
    return selectors.agreement(task=selectors.task_get(user=request.auth, task_id=task_id))


@router.get("/{task_id}/stats", response=responses({200: list[ReviewerStatsOut]}, 403, 404))
def stats(request, task_id: Id):
    return selectors.reviewer_stats(task=selectors.task_get(user=request.auth, task_id=task_id))


@router.get("/{task_id}/adjudication", response=responses({200: list[AdjudicationItemOut]}, 403, 404),
            summary="Disputed items with every reviewer's answer (admins and the task's lead)")
def adjudication(request, task_id: Id):
    items = selectors.adjudication_list(user=request.auth, task_id=task_id, limit=200)
    return [{"item_id": i.pk, "example_index": i.example_index,
             "responses": selectors.item_responses(user=request.auth, task_id=task_id, item_id=i.pk)} for i in items]


@router.post("/{task_id}/items/{item_id}/adjudicate", response=responses({200: AdjudicatedOut}, 403, 404, 409, body=True))
def adjudicate(request, task_id: Id, item_id: Id, payload: AdjudicateIn):
    item = services.item_adjudicate(user=request.auth, task_id=task_id, item_id=item_id, decision=payload.decision,
                                    messages=payload.messages, comment=payload.comment or "",
                                    turn_decisions=payload.turn_decisions, base_revision=payload.base_revision)
    return {"item_id": item.pk, "state": item.state, "final_decision": item.final_decision,
            "decided_by": request.auth.username}


@router.post("/{task_id}/bulk", response=responses({200: BulkOut}, 403, 404, 409, body=True),
             summary="Accept, reject, tag or assign every item matching a filter (one transaction, audited)")
def bulk(request, task_id: Id, payload: BulkIn):
    audit = services.bulk_apply(user=request.auth, task_id=task_id, filter=payload.filter, action=payload.action,
                                tag=payload.tag, assignees=payload.assignees)
    return {"count": audit.count, "audit_id": audit.pk, "action": audit.action}


@router.post("/{task_id}/snapshot", response=responses({201: ResultOut, 202: ResultOut}, 403, 404, 409, write=True),
             summary="A dataset version from the decisions so far (the task stays open); 202 while it is built")
def snapshot(request, task_id: Id):
    """201 with the version ready (small results are built in the request), or 202 with the version
    `importing` and the job that builds it on a worker (`job`; progress at /api/jobs/{job.id})."""
    code, body = result_out(services.task_snapshot(user=request.auth, task_id=task_id), request.auth)
    return (201 if code == 200 else code), body


@router.post("/{task_id}/finish", response=responses({200: ResultOut, 202: ResultOut}, 403, 404, 409, write=True),
             summary="Close the task and make the reviewed dataset version (the same one on every call); "
                     "202 while it is built")
def finish(request, task_id: Id):
    """200 with the version ready (small results are built in the request; a finished task answers with its
    version), or 202 with the version `importing` and the job that builds it on a worker (`job`; progress at
    /api/jobs/{job.id}, cancel there). Asking again while it is built answers 202 with the same version and
    job. The task is `finishing` meanwhile (no decisions), `finished` once the version is ready, and `open`
    again when the job failed or was cancelled."""
    return result_out(services.task_finish(user=request.auth, task_id=task_id), request.auth)


@router.get("/{task_id}/export", response=responses({200: None}, 403, 404),
            summary="Every item with every reviewer's response, as JSONL")
def export(request, task_id: Id):
    task = services.export_check(user=request.auth, task_id=task_id)
    resp = StreamingHttpResponse(services.decisions_export_lines(user=request.auth, task_id=task.pk),
                                 content_type="application/jsonl")
    resp["Content-Disposition"] = f'attachment; filename="review-{task.pk}-decisions.jsonl"'
    return resp


@router.post("/{task_id}/preference-export", response=responses({201: PreferenceExportOut}, 403, 404, body=True),
             summary="The edited assistant turns of accepted examples as a preference dataset version "
                     "(the reviewed turn preferred, the original not)")
def preference_export(request, task_id: Id, payload: PreferenceExportIn):
    """One Together / OpenAI preference row per edited assistant turn (edits of the same turn by several
    reviewers: the item's final text, as the reviewed version holds it); whitespace-only edits, examples not
    accepted and rejected turns are left out (`skipped`). 422 `edits` when no pair comes out."""
    e = services.review_preference_export(user=request.auth, task_id=task_id, name=payload.name)
    return 201, {"dataset_id": e.version.dataset_id, "dataset_version_id": e.version.pk, "pairs": e.pairs,
                 "skipped": {k: v for k, v in e.counts.items() if k != "pairs"}}


@router.post("/{task_id}/dpo", response=responses({201: ReviewDpoOut}, 403, 404, body=True),
             summary="Start a DPO run on the task's (last) preference export")
def dpo(request, task_id: Id, payload: ReviewDpoIn):
    run = services.review_dpo_start(user=request.auth, task_id=task_id, dataset_version_id=payload.dataset_version_id,
                                    base_model=payload.base_model, parent_version_id=payload.parent_version_id,
                                    hyperparameters=payload.hyperparameters, name=payload.name)
    return 201, {"run_id": run.pk, "dataset_version_id": run.dataset_version_id,
                 "parent_version_id": run.parent_version_id, "method": run.method, "status": run.status}
