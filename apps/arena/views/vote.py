"""The blind voting screen (templates/arena/vote.html): the prompt and two unnamed answers side by side; keys
1 left, 2 right, 3 tie, 4 both bad (static/js/arena_vote.js clicks the buttons), c comment, s skip. Its
named fragment `match` is swapped by htmx after each vote or skip: the next pair, with the previous vote's
reveal above it (who was left, who was right) — names appear only after the vote. Refused actions (403,
409, 422) are shown in place with their status kept."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.arena import permissions as perms
from apps.arena import selectors, services
from apps.arena.models import WINNER_LABELS, Arena
from apps.core.exceptions import ApplicationError, PermissionDenied

TEMPLATE = "arena/vote.html"
KEYS = [("left", "1", "Left is better"), ("right", "2", "Right is better"), ("tie", "3", "Tie"),
        ("both_bad", "4", "Both are bad")]


def _is_htmx(request) -> bool:
    return bool(getattr(request, "htmx", False))


def _context(request, arena: Arena, *, reveal=None, hint: str = "", hint_error: bool = False) -> dict:
    payload = None
    if arena.status == Arena.Status.READY:
        vote = services.arena_next(user=request.user, arena_id=arena.pk)
        payload = selectors.match_payload(vote) if vote is not None else None
    return {"arena": arena, "m": payload, "reveal": reveal, "hint": hint, "hint_error": hint_error, "keys": KEYS,
            "my_votes": selectors.my_votes(arena=arena, user=request.user),
            "progress": selectors.arena_progress(arena=arena),
            "can_results": perms.can_see_results(request.user, arena)}


def _render(request, arena: Arena, *, status: int = 200, **kw):
    ctx = _context(request, arena, **kw)
    if _is_htmx(request):
        return render(request, f"{TEMPLATE}#match", ctx, status=status)
    return render(request, TEMPLATE, ctx, status=status)


@login_required
def vote_view(request, arena_id: int):
    arena = selectors.arena_get(user=request.user, arena_id=arena_id)
    if not perms.can_vote(request.user, arena):
        raise PermissionDenied("You are not one of this arena's voters.")
    return _render(request, arena)


def _refused(request, arena_id: int, exc: ApplicationError):
    if not _is_htmx(request):
        messages.error(request, exc.message)
        return redirect(reverse("arena:vote", args=[arena_id]))
    arena = selectors.arena_get(user=request.user, arena_id=arena_id)
    msgs = [e.get("message") for e in (exc.errors or []) if e.get("message")] or [exc.message]
    return _render(request, arena, status=exc.status_code, hint=" ".join(msgs), hint_error=True)


@login_required
@require_POST
def vote_action_view(request, arena_id: int, match_id: int):
    winner = request.POST.get("winner", "")
    try:
        vote = services.vote_cast(user=request.user, arena_id=arena_id, match_id=match_id, winner=winner,
                                  comment=request.POST.get("comment", ""))
    except ApplicationError as exc:
        return _refused(request, arena_id, exc)
    reveal = selectors.reveal_payload(vote)
    reveal["winner_label"] = WINNER_LABELS.get(vote.winner, vote.winner)
    arena = selectors.arena_get(user=request.user, arena_id=arena_id)
    if not _is_htmx(request):
        messages.info(request, f"You chose: {reveal['winner_label']}. Left was {reveal['left']['label']}, right was "
                               f"{reveal['right']['label']}.")
        return redirect(reverse("arena:vote", args=[arena_id]))
    return _render(request, arena, reveal=reveal)


@login_required
@require_POST
def skip_view(request, arena_id: int, match_id: int):
    try:
        services.match_skip(user=request.user, arena_id=arena_id, match_id=match_id)
    except ApplicationError as exc:
        return _refused(request, arena_id, exc)
    arena = selectors.arena_get(user=request.user, arena_id=arena_id)
    if not _is_htmx(request):
        return redirect(reverse("arena:vote", args=[arena_id]))
    return _render(request, arena, hint="Skipped: that pair comes back after the rest.")
