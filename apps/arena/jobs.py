"""Job kinds of arenas (registered with apps.core.jobs):

- "arena.generate": every contestant answers every prompt (workers.arena.arena_generate, `default` queue;
  apps/arena/services/generation.py). Resumable: answers are saved chunk by chunk, so a run whose worker
  died is queued again and calls only what is missing; a retry also calls again the answers that failed.
  Succeeded: the arena is `ready` (its matches were made in the same transaction); failed / cancelled: the
  arena says so (its answers so far are kept for a retry).
- "arena.judge": a judge model gives its verdict on every match (workers.arena.arena_judge;
  apps/arena/services/judge.py). Idempotent: matches with a verdict are skipped.

The hooks keep the Arena in step with its jobs (inside the lifecycle's transaction; they write only the arena
and its failed answers). Every event of both kinds also goes to the arena's websocket group.
"""
from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from apps.arena.models import Arena, ArenaOutput
from apps.arena.realtime import arena_group
from apps.core.jobs.registry import REQUEUE, JobKind, register_kind


def _arena(job) -> Arena | None:
    cached = job.__dict__.get("_arena")
    if cached is None or cached.pk != job.target_id:
        cached = Arena.objects.filter(pk=job.target_id).first()
        job.__dict__["_arena"] = cached
    return cached


class _ArenaKind(JobKind):
    queue_name = "default"
    stale_after_s = 180.0

    def target(self, job):
        return _arena(job)

    def target_label(self, job) -> str:
        a = _arena(job)
        return f"arena {a.name}" if a is not None else f"arena #{job.target_id}"

    def target_url(self, job) -> str | None:
        return reverse("arena:detail", args=[job.target_id]) if job.target_id else None

    def groups(self, job) -> list[str]:
        return [arena_group(job.target_id)] if job.target_id else []

    def payload(self, job) -> dict:
        return {"arena_id": job.target_id, "job_kind": job.kind}

    def on_holder_dead(self, job):
        return REQUEUE


@register_kind
class GenerateKind(_ArenaKind):
    kind = "arena.generate"
    label = "Arena generation"
    actor_name = "arena_generate"
    requeued_label = "resumed"
    phases = ("queued", "generating", "saving")

    def on_claim(self, job) -> None:
        job.phase = "generating"
        Arena.objects.filter(pk=job.target_id).update(status=Arena.Status.GENERATING, error="")

    def on_finish(self, job, status: str, result: dict) -> None:
        fields = {"finished_at": timezone.now()}
        if status == job.Status.SUCCEEDED:
            fields.update(status=Arena.Status.READY, error="")
        elif status == job.Status.CANCELLED:
            fields.update(status=Arena.Status.CANCELLED, error="")
        else:
            fields.update(status=Arena.Status.FAILED, error=(job.error or "The generation failed.")[:500])
        Arena.objects.filter(pk=job.target_id).update(**fields)

    def on_requeue(self, job, reason: str) -> None:
        if reason == "retry":  # a person asked again: call again what failed
            ArenaOutput.objects.filter(item__arena_id=job.target_id).exclude(error="").delete()
        Arena.objects.filter(pk=job.target_id).update(status=Arena.Status.GENERATING, error="", finished_at=None)


@register_kind
class JudgeKind(_ArenaKind):
    kind = "arena.judge"
    label = "Arena judge"
    actor_name = "arena_judge"
    phases = ("queued", "judging")

    def on_claim(self, job) -> None:
        job.phase = "judging"
