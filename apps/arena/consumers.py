"""Websocket /ws/arenas/<arena_id>/: an arena's live progress (group `arena-<arena_id>`, apps.arena.realtime).

On connect the client gets `snapshot` (the voting progress and the generation job's state); afterwards every
`progress`, `closed`, and job `status` / `job_progress` event. Not signed in: closed with 4401; no such arena
or one the user is not part of: 4404."""
from __future__ import annotations

from apps.arena.realtime import arena_group
from apps.core.consumers import GroupStreamConsumer


class ArenaConsumer(GroupStreamConsumer):
    url_kwarg = "arena_id"

    def group_for(self, key: int) -> str:
        return arena_group(key)

    def load_snapshot(self, user, key: int):
        from apps.arena import selectors
        from apps.core.exceptions import NotFound, PermissionDenied

        try:
            arena = selectors.arena_get(user=user, arena_id=key)
        except (NotFound, PermissionDenied):
            return None, 4404
        return {"arena_id": arena.pk, **selectors.arena_progress(arena=arena),
                "job": selectors.job_state(arena.job)}, 0
