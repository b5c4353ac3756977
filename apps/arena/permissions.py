"""Who may do what in an arena — the one place services, selectors, pages and the consumer ask.

- create an arena: a member or an admin (reviewers vote, they do not create);
- manage (cancel, close, judge, export, start a DPO run, see results and names at any time): its owner or an
  admin;
- vote: a listed voter; when the arena lists none, every signed-in user;
- view (the arena's page and progress): whoever may manage or vote;
- results (win rates, ranking, the per-prompt drill-down with names): whoever may manage; the other
  participants once the arena is closed (before that, names next to outputs would unblind the items they
  have still to vote on).
Services raise `PermissionDenied` (403) when the answer is no; a user who may not even view gets 404."""
from __future__ import annotations

from apps.core.exceptions import PermissionDenied


def _signed_in(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", True))


def is_admin(user) -> bool:
    return _signed_in(user) and bool(getattr(user, "is_hub_admin", False))


def can_create(user) -> bool:
    return _signed_in(user) and (is_admin(user) or getattr(user, "role", "") == "member")


def can_manage(user, arena) -> bool:
    return is_admin(user) or (_signed_in(user) and arena.owner_id == user.pk)


def is_listed_voter(user, arena) -> bool:
    if not _signed_in(user):
        return False
    cache = arena.__dict__.setdefault("_voter_cache", {})
    if user.pk not in cache:
        cache[user.pk] = arena.voter_rows.filter(user_id=user.pk).exists()
    return cache[user.pk]


def has_voter_list(arena) -> bool:
    if "_has_voters" not in arena.__dict__:
        arena.__dict__["_has_voters"] = arena.voter_rows.exists()
    return arena.__dict__["_has_voters"]


def can_vote(user, arena) -> bool:
    if not _signed_in(user):
        return False
    return is_listed_voter(user, arena) if has_voter_list(arena) else True


def can_view(user, arena) -> bool:
    return can_manage(user, arena) or can_vote(user, arena)


def can_see_results(user, arena) -> bool:
    from apps.arena.models import Arena

    return can_manage(user, arena) or (arena.status == Arena.Status.CLOSED and can_view(user, arena))


def require(allowed: bool, message: str) -> None:
    if not allowed:
        raise PermissionDenied(message)
