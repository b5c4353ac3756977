"""The optional judge: a model called through the proxy with a rubric gives its verdict on every match, so
its agreement with the human voters can be measured (apps.arena.selectors.judge_agreement).

Contract:
- `judge_start(user=, arena_id=, model=, rubric=)` (the arena's owner or an admin; the arena ready or
  closed; no judge run active: 409) stores the judge and its rubric on the arena — a different judge or
  rubric drops the verdicts of the previous one — and queues an "arena.judge" job. `judge_queue(arena_id=)`
  does the same for the judge named at creation, once the generation succeeded.
- `judge_process(arena_id=)` (the worker; idempotent) asks the judge about every match without a verdict,
  in chunks, at most the arena's concurrency in flight. The judge sees the prompt and the two answers in
  the match's own blind order, as "Answer A" (left) and "Answer B" (right), never the contestants' names.
- `parse_verdict(reply)`: the first of A, B, TIE, BOTH_BAD the reply states (a line `Verdict: X`, or the
  first word), as left / right / tie / both_bad; "" when it states none (kept, with the reply, and left out
  of the agreement).
"""
from __future__ import annotations

import logging
import re

from django.db import transaction

from apps.arena.models import Arena, ArenaMatch, JudgeVote
from apps.arena.services import calling
from apps.arena.services.common import arena_for
from apps.arena.services.targets import parse_target, target_plan
from apps.core.exceptions import Conflict, ValidationFailed
from apps.core.jobs import services as job_services

log = logging.getLogger(__name__)
CHUNK = 4

DEFAULT_RUBRIC = ("Prefer the answer that is correct, follows the instructions, and is helpful and concise. "
                  "Penalise made-up facts, refusals of harmless requests and needless length.")
JUDGE_SYSTEM = ("You are an impartial judge. You compare two answers to the same conversation and decide which "
                "one is better. The order of the answers says nothing about their quality.")
_VERDICTS = {"A": "left", "B": "right", "TIE": "tie", "BOTH_BAD": "both_bad", "BOTH BAD": "both_bad",
             "BOTHBAD": "both_bad", "NEITHER": "both_bad"}
_VERDICT_LINE = re.compile(r"verdict\s*[:=\-]\s*\**\s*\[?\s*(both[ _]?bad|tie|neither|a|b)\b", re.I)
_FIRST_WORD = re.compile(r"^\W*(both[ _]?bad|tie|neither|a|b)\b", re.I)


def parse_verdict(reply: str) -> str:
    text = reply or ""
    m = _VERDICT_LINE.search(text) or _FIRST_WORD.search(text.strip())
    if not m:
        return ""
    return _VERDICTS.get(m.group(1).upper().replace("-", "_"), "")


def _transcript(messages: list[dict]) -> str:
    return "\n\n".join(f"[{m.get('role', 'user')}]\n{m.get('content', '')}" for m in messages)


def judge_messages(*, prompt: list[dict], left: str, right: str, rubric: str) -> list[dict]:
    user = (f"Rubric: {rubric or DEFAULT_RUBRIC}\n\n"
            f"=== Conversation ===\n{_transcript(prompt)}\n\n"
            f"=== Answer A ===\n{left}\n\n=== Answer B ===\n{right}\n\n"
            "Which answer is better? Reply with one line `Verdict: A`, `Verdict: B`, `Verdict: TIE` or "
            "`Verdict: BOTH_BAD`, then one sentence saying why.")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def _create_job(arena: Arena, owner) -> None:
    arena.judge_job = job_services.job_create(kind="arena.judge", owner=owner, target=arena, args=[arena.pk],
                                              progress={"current": 0, "total": arena.matches.count(),
                                                        "unit": "verdicts"})
    arena.save(update_fields=["judge_job"])


def judge_start(*, user, arena_id: int, model: str, rubric: str = "") -> Arena:
    rubric = rubric if isinstance(rubric, str) else ""
    if len(rubric) > 20000 or "\x00" in rubric:
        raise ValidationFailed("The rubric is text of at most 20000 characters.", field="rubric")
    name = parse_target(model, field="model").name
    with transaction.atomic():
        arena = arena_for(user, arena_id, need="manage", lock=True, status=(Arena.Status.READY, Arena.Status.CLOSED))
        if arena.judge_job is not None and arena.judge_job.is_active:
            raise Conflict("The judge is already running in this arena.", code="judge_running")
        if (name, rubric.strip()) != (arena.judge_model, arena.judge_rubric):
            JudgeVote.objects.filter(arena=arena).delete()
        arena.judge_model, arena.judge_rubric = name, rubric.strip()
        arena.save(update_fields=["judge_model", "judge_rubric"])
        _create_job(arena, user)
    return arena


def judge_queue(*, arena_id: int) -> None:
    """Queue the judge named at the arena's creation (after its generation succeeded)."""
    with transaction.atomic():
        arena = (Arena.objects.select_for_update(of=("self",)).select_related("owner", "judge_job")
                 .filter(pk=arena_id).first())
        if arena is None or not arena.judge_model or (arena.judge_job is not None and arena.judge_job.is_active):
            return
        _create_job(arena, arena.owner)


def judge_process(*, arena_id: int) -> None:
    arena = Arena.objects.filter(pk=arena_id).first()
    if arena is None or arena.judge_job_id is None:
        return
    job = job_services.job_claim(job_id=arena.judge_job_id)
    if job is None:
        return
    try:
        with job_services.job_heartbeat_thread(job_id=job.pk):
            _judge(arena, job.pk)
    except Exception as exc:
        log.exception("arena %s: judge failed", arena_id)
        job_services.job_finish(job_id=job.pk, status="failed", error=f"The judge failed: {exc}",
                                error_code="E_ARENA_JUDGE")


def _judge(arena: Arena, job_id: int) -> None:
    plan = target_plan(arena.judge_model)
    if plan is None or not plan.targets:
        job_services.job_finish(job_id=job_id, status="failed", error_code="E_ARENA_JUDGE",
                                error=f"The judge `{arena.judge_model}` no longer routes to any model.")
        return
    matches = list(ArenaMatch.objects.filter(arena=arena, judge_vote__isnull=True).select_related("item")
                   .order_by("order"))
    outputs = {(o.item_id, o.contestant_id): o.text for o in arena_outputs(arena)}
    total = arena.matches.count()
    current = total - len(matches)
    params = arena.params or {}
    concurrency = int(params.get("concurrency") or 4)
    job_services.job_progress(job_id=job_id, current=current, total=total, unit="verdicts", force=True)
    step = max(1, concurrency * CHUNK)
    for start in range(0, len(matches), step):
        if job_services.job_should_stop(job_id=job_id):
            job_services.job_finish(job_id=job_id, status="cancelled")
            return
        chunk = matches[start:start + step]
        requests = []
        for m in chunk:
            a, b = outputs.get((m.item_id, m.a_id), ""), outputs.get((m.item_id, m.b_id), "")
            left, right = (a, b) if m.left_is_a else (b, a)
            body = calling.chat_body(judge_messages(prompt=m.item.messages, left=left, right=right,
                                                    rubric=arena.judge_rubric), temperature=0.0, max_tokens=256)
            requests.append((m.pk, plan, body))
        answers = calling.call_all(requests, concurrency=concurrency)
        rows = []
        for m in chunk:
            ans = answers[m.pk]
            winner = parse_verdict(ans.text) if not ans.error else ""
            rows.append(JudgeVote(match=m, arena=arena, model=arena.judge_model, winner=winner,
                                  outcome=outcome_of(winner, m.left_is_a), reply=ans.text[:4000],
                                  error=ans.error[:500]))
        JudgeVote.objects.bulk_create(rows, ignore_conflicts=True)
        current += len(chunk)
        job_services.job_progress(job_id=job_id, current=current, total=total, unit="verdicts")
    job_services.job_finish(job_id=job_id, status="succeeded")


def arena_outputs(arena: Arena):
    from apps.arena.models import ArenaOutput

    return ArenaOutput.objects.filter(item__arena=arena, error="").only("item_id", "contestant_id", "text")


def outcome_of(winner: str, left_is_a: bool) -> str:
    """A vote as the voter saw it (left / right) in terms of the match's contestants (a / b)."""
    if winner == "left":
        return "a" if left_is_a else "b"
    if winner == "right":
        return "b" if left_is_a else "a"
    return winner
