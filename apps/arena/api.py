"""/api/arenas: blind arenas — create (the generation is queued), read, the voting queue (`next`, `votes`,
skip), results (win rate per pair with Wilson intervals, Bradley–Terry ranking with bootstrap intervals, the
judge's agreement), the per-prompt drill-down, judge, close, cancel, export the votes as a preference dataset,
start a DPO run on it. Parses input, calls a selector or a service (apps.arena), renders; no ORM writes here.
Statuses: 204 from `next` when nothing is left for the caller; 403 not a voter / not holding the pair / not
allowed; 404 an arena the caller is not part of; 409 the arena is not in a state for it; 422 field errors,
nothing saved (run_create's own errors for `dpo`)."""
from __future__ import annotations

from ninja import Router

from apps.arena import selectors, services
from apps.arena.models import Arena
from apps.arena.schemas import (
    ArenaIn, ArenaOut, DpoIn, DpoOut, ExportIn, ExportOut, ItemOut, JudgeIn, NextOut, ResultsOut, VoteIn, VoteOut,
)
from apps.core.inputs import Id
from apps.core.schemas import responses

router = Router(tags=["arenas"])


def arena_out(arena: Arena) -> dict:
    arena = Arena.objects.select_related("owner", "job", "judge_job").get(pk=arena.pk)
    return {
        "id": arena.pk, "name": arena.name, "status": arena.status, "owner": arena.owner.username,
        "source": arena.source, "dataset_version_id": arena.dataset_version_id, "overlap": arena.overlap,
        "params": arena.params or {},
        "contestants": [{"id": c.pk, "position": c.position, "label": c.label, "kind": c.kind, "model": c.model,
                         "model_version_id": c.model_version_id, "provider": c.provider.name if c.provider else None}
                        for c in selectors.contestants_of(arena)],
        "judge_model": arena.judge_model, "judge_rubric": arena.judge_rubric, "error": arena.error,
        "job": selectors.job_state(arena.job), "judge_job": selectors.job_state(arena.judge_job),
        "progress": selectors.arena_progress(arena=arena), "export_version_id": arena.export_version_id,
        "dpo_run_id": arena.dpo_run_id, "created_at": arena.created_at.isoformat(),
        "closed_at": arena.closed_at.isoformat() if arena.closed_at else None,
    }


@router.post("/arenas", response=responses({201: ArenaOut}, 404, body=True),
             summary="Create an arena: contestants, prompts (or a dataset version), voters; generation is queued")
def create_arena(request, payload: ArenaIn):
    arena = services.arena_create(
        user=request.auth, name=payload.name, contestants=payload.contestants,
        dataset_version_id=payload.prompt_dataset_version_id, prompts=payload.prompts, max_prompts=payload.max_prompts,
        voters=payload.voters, overlap=payload.overlap, temperature=payload.temperature,
        max_tokens=payload.max_tokens, concurrency=payload.concurrency, judge_model=payload.judge_model,
        judge_rubric=payload.judge_rubric, lease_seconds=payload.lease_seconds)
    return 201, arena_out(arena)


@router.get("/arenas", response=responses({200: list[ArenaOut]}, inputs=False), summary="Arenas you are part of")
def list_arenas(request):
    return [arena_out(a) for a in selectors.arena_list(user=request.auth)[:200]]


@router.get("/arenas/{arena_id}", response=responses({200: ArenaOut}, 404))
def get_arena(request, arena_id: Id):
    return arena_out(selectors.arena_get(user=request.auth, arena_id=arena_id))


@router.post("/arenas/{arena_id}/next", response=responses({200: NextOut, 204: None}, 403, 404, 409, write=True),
             summary="Take the next pair of answers to vote on (blind: no names); 204 when nothing is left for you")
def next_match(request, arena_id: Id):
    vote = services.arena_next(user=request.auth, arena_id=arena_id)
    if vote is None:
        return 204, None
    return 200, selectors.match_payload(vote)


@router.post("/arenas/{arena_id}/votes", response=responses({200: VoteOut}, 403, 404, 409, body=True),
             summary="Vote on the pair you hold: left, right, tie or both_bad; the names are revealed in the answer")
def vote(request, arena_id: Id, payload: VoteIn):
    v = services.vote_cast(user=request.auth, arena_id=arena_id, item_id=payload.item_id, match_id=payload.match_id,
                           winner=payload.winner, comment=payload.comment)
    return selectors.reveal_payload(v)


@router.post("/arenas/{arena_id}/matches/{match_id}/skip", response=responses({204: None}, 403, 404, 409, write=True),
             summary="Give the pair you hold back; it comes back to you after the rest")
def skip(request, arena_id: Id, match_id: Id):
    services.match_skip(user=request.auth, arena_id=arena_id, match_id=match_id)
    return 204, None


@router.get("/arenas/{arena_id}/results", response=responses({200: ResultsOut}, 403, 404),
            summary="Win rate per pair (Wilson 95 %), Bradley–Terry ranking (bootstrap 95 %), judge agreement")
def results(request, arena_id: Id):
    return selectors.arena_results(arena=selectors.results_arena(user=request.auth, arena_id=arena_id))


@router.get("/arenas/{arena_id}/items/{item_id}", response=responses({200: ItemOut}, 403, 404),
            summary="One prompt: every contestant's answer, every vote and the judge's verdict, with names")
def item(request, arena_id: Id, item_id: Id):
    arena = selectors.results_arena(user=request.auth, arena_id=arena_id)
    return selectors.item_detail(arena=arena, item_id=item_id)


@router.post("/arenas/{arena_id}/judge", response=responses({202: ArenaOut}, 403, 404, 409, body=True),
             summary="Queue a judge model's verdict on every pair (with a rubric)")
def judge(request, arena_id: Id, payload: JudgeIn):
    arena = services.judge_start(user=request.auth, arena_id=arena_id, model=payload.model, rubric=payload.rubric)
    return 202, arena_out(arena)


@router.post("/arenas/{arena_id}/close", response=responses({200: ArenaOut}, 403, 404, 409, write=True),
             summary="End the voting; the results open to every participant")
def close(request, arena_id: Id):
    return arena_out(services.arena_close(user=request.auth, arena_id=arena_id))


@router.post("/arenas/{arena_id}/cancel", response=responses({200: ArenaOut}, 403, 404, 409, write=True),
             summary="Stop the generation (or the judge) in whatever phase it is")
def cancel(request, arena_id: Id):
    return arena_out(services.arena_cancel(user=request.auth, arena_id=arena_id))


@router.post("/arenas/{arena_id}/export", response=responses({201: ExportOut}, 403, 404, body=True),
             summary="The votes as a preference dataset version (chosen / rejected pairs)")
def export(request, arena_id: Id, payload: ExportIn):
    e = services.arena_export(user=request.auth, arena_id=arena_id, name=payload.name)
    return 201, {"dataset_id": e.version.dataset_id, "dataset_version_id": e.version_id, "pairs": e.pairs,
                 "voted": e.counts["voted"], "undecided": e.counts["undecided"]}


@router.post("/arenas/{arena_id}/dpo", response=responses({201: DpoOut}, 403, 404, body=True),
             summary="Start a DPO run on the arena's last preference export (continuing the winner's version)")
def dpo(request, arena_id: Id, payload: DpoIn):
    run = services.arena_dpo_start(user=request.auth, arena_id=arena_id, base_model=payload.base_model,
                                   parent_version_id=payload.parent_version_id, from_winner=payload.from_winner,
                                   hyperparameters=payload.hyperparameters, name=payload.name)
    return 201, {"run_id": run.pk, "dataset_version_id": run.dataset_version_id,
                 "parent_version_id": getattr(run, "parent_version_id", None), "method": run.method,
                 "status": run.status}
