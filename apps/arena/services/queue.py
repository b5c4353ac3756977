"""Blind voting: the next pair of answers for a voter under a lease, the vote, skip.

Contract:
- A match is offered to at most `arena.overlap` different voters: `ArenaMatch.taken` counts live leases and
  done votes, changed only while the match's row is locked; `open` is `taken < overlap`.
- `arena_next` gives back the lease the caller holds (renewed), else takes the first open match (queue
  order: the random `order`) the caller has no vote on, locking it with `SELECT … FOR UPDATE SKIP LOCKED`
  so voters asking at the same moment get different matches; then the caller's skipped matches, oldest
  skip first. Expired leases are given back first (their holder may still vote until then).
- `vote_cast` records the caller's vote on the match they hold (`winner` as they saw it: left | right |
  tie | both_bad, an optional comment); voting again on a match they voted on replaces their vote, while
  the arena is open. It returns the vote, whose match names the contestants: the names are revealed only
  now. 403 `not_holder` for a match the caller was never given; 409 when voting is not open.
- `match_skip` gives a held match back: it comes back to the caller after everything else.
Every change broadcasts the arena's progress after commit (counts only)."""
from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from apps.arena.models import WINNERS, Arena, ArenaMatch, ArenaVote
from apps.arena.realtime import progress_on_commit
from apps.arena.services.common import arena_for
from apps.arena.services.judge import outcome_of
from apps.core.exceptions import NotFound, PermissionDenied, ValidationFailed

Status = ArenaVote.Status
MAX_COMMENT = 5000


def _set_taken(match: ArenaMatch, overlap: int, delta: int) -> None:
    match.taken = max(0, match.taken + delta)
    match.open = match.taken < overlap
    ArenaMatch.objects.filter(pk=match.pk).update(taken=match.taken, open=match.open)


def _reclaim(arena: Arena, now) -> int:
    """Give back the slots of expired leases (matches locked by someone else are left for later)."""
    expired = list(ArenaVote.objects.filter(arena=arena, status=Status.LEASED, lease_expires_at__lt=now)
                   .values_list("match_id", flat=True)[:500])
    n = 0
    if not expired:
        return 0
    with transaction.atomic():
        for match in ArenaMatch.objects.select_for_update(skip_locked=True).filter(pk__in=expired).order_by("pk"):
            gone = ArenaVote.objects.filter(match=match, status=Status.LEASED, lease_expires_at__lt=now).delete()[0]
            if gone:
                _set_taken(match, arena.overlap, -gone)
                n += gone
    return n


def _lease(arena: Arena, user, match: ArenaMatch, now, vote: ArenaVote | None = None) -> ArenaVote:
    expires = now + timedelta(seconds=arena.lease_seconds)
    if vote is None:
        vote = ArenaVote.objects.create(arena=arena, match=match, voter=user, status=Status.LEASED, leased_at=now,
                                        lease_expires_at=expires)
    else:
        vote.status, vote.leased_at, vote.lease_expires_at, vote.skipped_at = Status.LEASED, now, expires, None
        vote.save(update_fields=["status", "leased_at", "lease_expires_at", "skipped_at"])
    _set_taken(match, arena.overlap, +1)
    vote.match = match
    return vote


def _with_match(vote_id: int) -> ArenaVote:
    return (ArenaVote.objects.select_related("match__item", "match__a", "match__b").get(pk=vote_id))


def arena_next(*, user, arena_id: int) -> ArenaVote | None:
    """The caller's lease on their next match (with `.match` loaded), or None when nothing is left for them."""
    arena = arena_for(user, arena_id, need="vote", status=(Arena.Status.READY,))
    now = timezone.now()
    if ArenaVote.objects.filter(arena=arena, status=Status.LEASED, lease_expires_at__lt=now).exists():
        _reclaim(arena, now)
    held = ArenaVote.objects.filter(arena=arena, voter=user, status=Status.LEASED).order_by("-leased_at").first()
    if held is not None:
        held.lease_expires_at = now + timedelta(seconds=arena.lease_seconds)
        ArenaVote.objects.filter(pk=held.pk).update(lease_expires_at=held.lease_expires_at)
        return _with_match(held.pk)
    for _attempt in range(3):
        try:
            with transaction.atomic():
                vote = _take(arena, user, now)
        except IntegrityError:  # the same voter asked twice at once and both picked one match
            continue
        return _with_match(vote.pk) if vote is not None else None
    return None


def _take(arena: Arena, user, now) -> ArenaVote | None:
    mine = ArenaVote.objects.filter(match=OuterRef("pk"), voter_id=user.pk)
    base = ArenaMatch.objects.filter(arena=arena, open=True).filter(~Exists(mine)).order_by("order")
    match = base.select_for_update(skip_locked=True, of=("self",)).first()
    if match is None and base.exists():  # the rest is locked by voters taking it right now: wait for them
        match = base.select_for_update(of=("self",)).first()
        if match is not None and not match.open:
            match = None
    if match is not None:
        vote = _lease(arena, user, match, now)
    else:  # the caller's skipped matches, oldest skip first
        skipped = (ArenaVote.objects.filter(arena=arena, voter=user, status=Status.SKIPPED, match__open=True)
                   .order_by("skipped_at", "pk").select_related("match").first())
        if skipped is None:
            return None
        match = ArenaMatch.objects.select_for_update().get(pk=skipped.match_id)
        if not match.open:
            return None
        vote = _lease(arena, user, match, now, skipped)
    progress_on_commit(arena.pk)
    return vote


def _find_match(arena: Arena, user, match_id: int | None, item_id: int | None) -> ArenaMatch:
    if match_id is not None:
        match = ArenaMatch.objects.filter(pk=match_id, arena=arena).first()
        if match is None:
            raise NotFound("No such pair in this arena.", field="match_id")
        if item_id is not None and match.item_id != item_id:
            raise ValidationFailed(f"Pair {match_id} is not on item {item_id}.", field="item_id")
        return match
    if item_id is None:
        raise ValidationFailed("Say which item (item_id) you vote on.", field="item_id")
    votes = list(ArenaVote.objects.filter(arena=arena, voter=user, match__item_id=item_id)
                 .exclude(status=Status.SKIPPED).select_related("match"))
    held = [v for v in votes if v.status == Status.LEASED]
    if held:
        return held[0].match
    if len(votes) == 1:
        return votes[0].match
    if not votes:
        if not arena.items.filter(pk=item_id).exists():
            raise NotFound("No such item in this arena.", field="item_id")
        raise PermissionDenied("You were not given this item: take it with `next` first.", code="not_holder")
    raise ValidationFailed("You voted on several pairs of this item: say which (match_id).", field="match_id")


def vote_cast(*, user, arena_id: int, winner: str, item_id: int | None = None, match_id: int | None = None,
              comment: str = "") -> ArenaVote:
    if winner not in WINNERS:
        raise ValidationFailed(f"`winner` is one of {', '.join(WINNERS)}.", field="winner")
    comment = (comment or "").strip() if isinstance(comment, str) else ""
    if len(comment) > MAX_COMMENT or "\x00" in comment:
        raise ValidationFailed(f"A comment is text of at most {MAX_COMMENT} characters.", field="comment")
    arena = arena_for(user, arena_id, need="vote", status=(Arena.Status.READY,))
    target = _find_match(arena, user, match_id, item_id)
    now = timezone.now()
    with transaction.atomic():
        match = ArenaMatch.objects.select_for_update().get(pk=target.pk)
        vote = ArenaVote.objects.filter(match=match, voter=user).first()
        if vote is None or vote.status == Status.SKIPPED:
            raise PermissionDenied("You do not hold this pair: take it with `next` first.", code="not_holder")
        first = vote.status == Status.LEASED
        vote.winner, vote.outcome, vote.comment = winner, outcome_of(winner, match.left_is_a), comment
        vote.status, vote.voted_at, vote.lease_expires_at = Status.DONE, now, None
        if first and vote.leased_at:
            vote.duration_ms = min(int((now - vote.leased_at).total_seconds() * 1000), 2**31 - 1)
        vote.save()
        if first:
            match.done += 1
            ArenaMatch.objects.filter(pk=match.pk).update(done=match.done)
        progress_on_commit(arena.pk)
    return _with_match(vote.pk)


@transaction.atomic
def match_skip(*, user, arena_id: int, match_id: int) -> None:
    arena = arena_for(user, arena_id, need="vote", status=(Arena.Status.READY,))
    match = ArenaMatch.objects.select_for_update().filter(pk=match_id, arena=arena).first()
    if match is None:
        raise NotFound("No such pair in this arena.", field="match_id")
    vote = ArenaVote.objects.filter(match=match, voter=user).first()
    if vote is None or vote.status != Status.LEASED:
        raise PermissionDenied("You do not hold this pair.", code="not_holder")
    vote.status, vote.skipped_at, vote.lease_expires_at = Status.SKIPPED, timezone.now(), None
    vote.save(update_fields=["status", "skipped_at", "lease_expires_at"])
    _set_taken(match, arena.overlap, -1)
    progress_on_commit(arena.pk)
