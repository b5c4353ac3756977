"""Live events of an arena: the websocket group and its events, sent only after commit.

Group `arena-<arena_id>` (consumer: apps.arena.consumers.ArenaConsumer at /ws/arenas/<arena_id>/). Events,
each `{"event": name, "payload": ...}` on the wire:
- `snapshot` (on connect) and `progress` (after a vote or a skip) and `closed`: `selectors.arena_progress`
  (status, matches, votes, required, per_voter) plus `arena_id`;
- `status` / `job_progress`: the arena's generation and judge jobs (apps.core.jobs' one job-event shape,
  with `arena_id` and `job_kind`).
Vote counts only: which output won is never sent (voters are blind until they vote)."""
from __future__ import annotations

from django.db import transaction

from apps.core.realtime import broadcast


def arena_group(arena_id: int) -> str:
    return f"arena-{arena_id}"


def progress_payload(arena_id: int) -> dict | None:
    from apps.arena import selectors
    from apps.arena.models import Arena

    arena = Arena.objects.filter(pk=arena_id).first()
    if arena is None:
        return None
    return {"arena_id": arena.pk, **selectors.arena_progress(arena=arena)}


def _send(arena_id: int, event: str) -> None:
    payload = progress_payload(arena_id)
    if payload is not None:
        broadcast(arena_group(arena_id), event, payload)


def progress_on_commit(arena_id: int, event: str = "progress") -> None:
    """Broadcast the arena's voting progress once the current transaction commits."""
    transaction.on_commit(lambda: _send(arena_id, event))
