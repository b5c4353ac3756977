"""Shared by the arena services: loading an arena for an action (404 / 403 / 409), users by name."""
from __future__ import annotations

from django.contrib.auth import get_user_model

from apps.arena import permissions as perms
from apps.arena.models import Arena
from apps.core.exceptions import Conflict, NotFound, ValidationFailed

_NEEDS = {
    "view": (perms.can_view, "You are not part of this arena."),
    "vote": (perms.can_vote, "You are not one of this arena's voters."),
    "manage": (perms.can_manage, "Only the arena's owner or an admin can do this."),
    "results": (perms.can_see_results, "The results show once the arena's owner closes the voting."),
}


def arena_for(user, arena_id: int, *, need: str = "view", lock: bool = False,
              status: tuple[str, ...] | None = None) -> Arena:
    """The arena, after checking that `user` may `need` (view | vote | manage | results) it; with `status`,
    409 unless the arena is in one of those statuses. Someone who may not even view it gets 404."""
    qs = Arena.objects.select_related("owner", "dataset_version", "job", "judge_job")
    if lock:
        qs = qs.select_for_update(of=("self",))
    arena = qs.filter(pk=arena_id).first() if isinstance(arena_id, int) else None
    if arena is None or not perms.can_view(user, arena):
        raise NotFound("No such arena.")
    check, message = _NEEDS[need]
    perms.require(check(user, arena), message)
    if status is not None and arena.status not in status:
        raise Conflict(_status_message(arena), code="arena_" + arena.status)
    return arena


def _status_message(arena: Arena) -> str:
    return {
        Arena.Status.GENERATING: "The arena's answers are still being generated.",
        Arena.Status.READY: "Voting is open in this arena.",
        Arena.Status.CLOSED: "Voting in this arena is closed.",
        Arena.Status.FAILED: f"The arena's generation failed{': ' + arena.error if arena.error else ''}.",
        Arena.Status.CANCELLED: "The arena's generation was cancelled.",
    }.get(arena.status, f"The arena is {arena.status}.")


def users_by_name(usernames, *, field: str) -> list:
    """Active users for a list of usernames, in order (each once); 422 naming the unknown ones."""
    if usernames is None:
        return []
    if isinstance(usernames, str) or not isinstance(usernames, (list, tuple)):
        raise ValidationFailed("Give a list of usernames.", field=field)
    names = list(dict.fromkeys(str(u).strip() for u in usernames if str(u).strip()))
    if len(names) > 500:
        raise ValidationFailed("At most 500 voters.", field=field)
    users = {u.username: u for u in get_user_model().objects.filter(username__in=names, is_active=True)}
    missing = [n for n in names if n not in users]
    if missing:
        raise ValidationFailed(f"Unknown user{'s' if len(missing) > 1 else ''}: {', '.join(missing[:10])}.",
                               field=field)
    return [users[n] for n in names]
