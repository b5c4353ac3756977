"""The arena's generation job ("arena.generate"): every contestant answers every prompt, through the proxy.

Contract: `arena_generate_process(arena_id=)` (the worker's actor calls it; idempotent and resumable) claims
the job, resolves each contestant to its proxy plan (a contestant that routes nowhere any more fails the job
with its name), then calls what is still missing in chunks of `CHUNK × concurrency` requests (at most
`concurrency` in flight: apps.arena.services.calling), saving each chunk's answers — text, or the call's
error — and reporting progress (answers done / total) between chunks, where a cancel is also honoured.
At the end (phase `saving`) the matches are made in the job's finishing transaction: for each item, each
pair of contestants whose answers both came back, with its own random left/right order and a random place
in the voting queue. When no prompt was answered by two contestants the job fails with the first error seen.
With a judge model, its run is queued once the generation succeeded.
"""
from __future__ import annotations

import itertools
import logging
import random

from django.db.models import Count

from apps.arena.models import Arena, ArenaItem, ArenaMatch, ArenaOutput
from apps.arena.services import calling
from apps.arena.services.targets import plan_for
from apps.core.jobs import services as job_services

log = logging.getLogger(__name__)
CHUNK = 4  # requests per chunk = CHUNK × concurrency (progress and cancel between chunks)
_random = random.SystemRandom()  # positions and queue order nobody can predict


class GenerationFailed(Exception):
    def __init__(self, message: str, code: str = "E_ARENA_FAILED"):
        super().__init__(message)
        self.message, self.code = message, code


def arena_generate_process(*, arena_id: int) -> None:
    arena = Arena.objects.filter(pk=arena_id).first()
    if arena is None or arena.job_id is None:
        return
    job = job_services.job_claim(job_id=arena.job_id)
    if job is None:
        return
    try:
        with job_services.job_heartbeat_thread(job_id=job.pk):
            finished = _generate(arena, job.pk)
    except GenerationFailed as exc:
        job_services.job_finish(job_id=job.pk, status="failed", error=exc.message, error_code=exc.code)
        return
    except Exception as exc:
        log.exception("arena %s: generation failed", arena_id)
        job_services.job_finish(job_id=job.pk, status="failed", error=f"The generation failed: {exc}",
                                error_code="E_ARENA_FAILED")
        return
    if finished and arena.judge_model:
        from apps.arena.services.judge import judge_queue

        try:
            judge_queue(arena_id=arena.pk)
        except Exception:  # the answers are in and the arena is open: the owner can start the judge by hand
            log.exception("arena %s: the judge could not be queued", arena_id)


def _plans(arena: Arena) -> dict:
    plans = {}
    for c in arena.contestants.select_related("provider"):
        plan = plan_for(kind=c.kind, model=c.model, provider=c.provider)
        if plan is None or not plan.targets:
            raise GenerationFailed(f"{c.label}: `{c.model}` no longer routes to any model (was its alias, version or "
                                   f"provider removed?).", code="E_ARENA_UNROUTABLE")
        plans[c.pk] = (c, plan)
    return plans


def _generate(arena: Arena, job_id: int) -> bool:
    """Returns True when the job finished succeeded (False: cancelled)."""
    plans = _plans(arena)
    done = set(ArenaOutput.objects.filter(item__arena=arena).values_list("item_id", "contestant_id"))
    items = list(ArenaItem.objects.filter(arena=arena).order_by("index").only("pk", "messages"))
    todo = [(item, cid) for item in items for cid in plans if (item.pk, cid) not in done]
    total = len(items) * len(plans)
    current = total - len(todo)
    params = arena.params or {}
    concurrency = int(params.get("concurrency") or 4)
    job_services.job_set_phase(job_id=job_id, phase="generating")
    job_services.job_progress(job_id=job_id, current=current, total=total, unit="answers", force=True)
    step = max(1, concurrency * CHUNK)
    for start in range(0, len(todo), step):
        if job_services.job_should_stop(job_id=job_id):
            job_services.job_finish(job_id=job_id, status="cancelled")
            return False
        chunk = todo[start:start + step]
        requests = [((item.pk, cid), plans[cid][1],
                     calling.chat_body(item.messages, temperature=params.get("temperature"),
                                       max_tokens=params.get("max_tokens"))) for item, cid in chunk]
        answers = calling.call_all(requests, concurrency=concurrency)
        ArenaOutput.objects.bulk_create([
            ArenaOutput(item_id=item_id, contestant_id=cid, text=a.text, error=a.error[:500],
                        served_by=a.served_by[:300], latency_ms=a.latency_ms, completion_tokens=a.completion_tokens)
            for (item_id, cid), a in answers.items()], ignore_conflicts=True)
        current += len(chunk)
        failed = ArenaOutput.objects.filter(item__arena=arena).exclude(error="").count()
        job_services.job_progress(job_id=job_id, current=current, total=total, unit="answers",
                                  message=f"{failed} call{'s' if failed != 1 else ''} failed" if failed else "",
                                  force=current == total)
    job_services.job_set_phase(job_id=job_id, phase="saving")
    ok = ArenaOutput.objects.filter(item__arena=arena, error="")
    if not ok.values("item_id").annotate(n=Count("id")).filter(n__gte=2).exists():
        first = ArenaOutput.objects.filter(item__arena=arena).exclude(error="").values_list("error", flat=True).first()
        what = ("No contestant answered any prompt" if not ok.exists()
                else "No prompt was answered by two contestants, so there is nothing to compare")
        raise GenerationFailed(f"{what}{': ' + first if first else ''}.", code="E_ARENA_NO_ANSWERS")
    return job_services.job_finish(job_id=job_id, status="succeeded",
                                   effects=lambda job: {"matches": matches_create(arena=arena)})


def matches_create(*, arena: Arena) -> int:
    """One match per item and pair of contestants with both answers; random sides, random queue order.
    Idempotent (matches that exist stay as they are). Returns how many were made."""
    ok: dict[int, set[int]] = {}
    for item_id, cid in ArenaOutput.objects.filter(item__arena=arena, error="").values_list("item_id",
                                                                                            "contestant_id"):
        ok.setdefault(item_id, set()).add(cid)
    positions = dict(arena.contestants.values_list("pk", "position"))
    pairs = list(itertools.combinations(sorted(positions, key=positions.get), 2))
    existing = set(ArenaMatch.objects.filter(arena=arena).values_list("item_id", "a_id", "b_id"))
    rows = [ArenaMatch(arena=arena, item_id=item_id, a_id=a, b_id=b, left_is_a=_random.random() < 0.5, order=0)
            for item_id in sorted(ok) for a, b in pairs
            if a in ok[item_id] and b in ok[item_id] and (item_id, a, b) not in existing]
    order = list(range(len(existing), len(existing) + len(rows)))
    _random.shuffle(order)
    for row, n in zip(rows, order):
        row.order = n
    ArenaMatch.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)
