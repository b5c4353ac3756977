"""The review screen (templates/review/review.html): one example at a time, its named fragments swapped by
htmx: `item` after a decision, skip, undo or a step through the history (p / n), `turn` after a turn mark or an
inline edit (409 / 422 answers shown in place), `preview` (the diff of an edit being typed), `thread`, `flags`.
The keys are static/js/review.js."""
from __future__ import annotations

import difflib
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError, PermissionDenied, ValidationFailed
from apps.core.inputs import parse_id
from apps.review import permissions as perms
from apps.review import selectors, services
from apps.review.models import FLAG_LABELS, FLAGS
from apps.review.views.common import errors_of, int_or_none, is_htmx, live_context, task_context
from apps.review.views.render import content_text, conversation, diff_rows, message_from_post

TEMPLATE = "review/review.html"
FLAG_KEYS = {"pii": "p", "wrong": "w", "low_quality": "q", "duplicate": "d"}


# -- the review screen ----------------------------------------------------------------------------------
HISTORY = 200  # how far back p steps (the caller's newest answers)


def _neighbours(user, task, item_id: int | None) -> tuple[int | None, int | None]:
    """The caller's answered items just before and after `item_id` in the order they answered them (None:
    the item in hand): what p and n step through."""
    ids = [r["item_id"] for r in selectors.my_items(user=user, task_id=task.pk, limit=HISTORY)]  # newest first
    if item_id is None or item_id not in ids:
        return (ids[0] if ids else None), None
    at = ids.index(item_id)
    return (ids[at + 1] if at + 1 < len(ids) else None), (ids[at - 1] if at > 0 else None)


def _flag_rows(user, view: dict) -> list[dict]:
    flags = view.get("flags") or {}
    mine = set(flags.get("mine") or [])
    everyone = flags.get("all") or {}
    return [{"flag": f, "label": FLAG_LABELS[f], "key": FLAG_KEYS[f], "mine": f in mine,
             "others": [u for u in everyone.get(f) or [] if u != user.username]} for f in FLAGS]


def _comments(view: dict) -> list[dict]:
    from django.utils.dateparse import parse_datetime
    from django.utils.formats import date_format
    from django.utils.timezone import localtime

    out = []
    for c in view.get("comments") or []:
        at = parse_datetime(c.get("created_at") or "")
        out.append({**c, "when": date_format(localtime(at), "Y-m-d H:i") if at else ""})
    return out


def _item_context(request, task, view: dict | None, *, hint: str = "", hint_error: bool = False,
                  whole_page: bool = True) -> dict:
    ctx = {**task_context(request, task), "view": view, "hint": hint, "hint_error": hint_error,
           "task_open": task.status == "open"}
    if whole_page:  # the progress around the item (htmx swaps the item only; the websocket keeps these current)
        live = live_context(task)
        ctx.update(live, my_done=(live["progress"].get("per_reviewer") or {}).get(request.user.username, 0))
    if view is None:
        ctx["prev_id"], _ = _neighbours(request.user, task, None)
        ctx["next_id"] = None
        return ctx
    mine = view.get("mine") or {}
    ex = view.get("example") or {}
    ctx["turns"] = conversation(ex.get("messages") or [], turn_info=view.get("turns"),
                                marks=mine.get("turn_decisions"))
    ctx["revision"] = view.get("revision")
    ctx["history"] = (mine.get("status") == "done") and not view.get("held")
    ctx["mine"] = mine
    ctx["flag_rows"] = _flag_rows(request.user, view)
    ctx["comments"] = _comments(view)
    ctx["tools_json"] = json.dumps(ex["tools"], indent=1, ensure_ascii=False) if ex.get("tools") else ""
    ctx["prev_id"], ctx["next_id"] = _neighbours(request.user, task, view["item_id"] if ctx["history"] else None)
    ctx["rating_choices"] = [1, 2, 3, 4, 5]
    ctx["label_choices"] = [(i + 1, lab) for i, lab in enumerate(task.labels or [])]
    return ctx


def _render_item(request, task, view, *, status: int = 200, hint: str = "", hint_error: bool = False,
                 push: str | None = None):
    ctx = _item_context(request, task, view, hint=hint, hint_error=hint_error, whole_page=not is_htmx(request))
    if is_htmx(request):
        resp = render(request, f"{TEMPLATE}#item", ctx, status=status)
        if push:
            resp["HX-Push-Url"] = push
        return resp
    return render(request, TEMPLATE, ctx, status=status)


def _current_view(request, task):
    """The item the caller holds (or the next one, leased now); None when nothing is left for them."""
    if task.status != "open":
        return None
    item = services.queue_next(user=request.user, task_id=task.pk)
    if item is None:
        return None
    return selectors.item_view(user=request.user, task_id=task.pk, item_id=item.pk, item=item)


@login_required
def review_view(request, task_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    if not perms.can_review(request.user, task):
        raise PermissionDenied("You are not assigned to this review task.")
    item_id = parse_id(request.GET.get("item"), what="review item")
    if item_id:
        view = selectors.item_view(user=request.user, task_id=task.pk, item_id=item_id)
    else:
        view = _current_view(request, task)
    return _render_item(request, task, view)


def _review_url(task, item_id: int | None = None) -> str:
    url = reverse("review:review", args=[task.pk])
    return f"{url}?item={item_id}" if item_id else url


def _after_action(request, task, *, hint: str = "", item_id: int | None = None, status: int = 200):
    view = (selectors.item_view(user=request.user, task_id=task.pk, item_id=item_id) if item_id
            else _current_view(request, task))
    if not is_htmx(request):
        if hint:
            messages.info(request, hint)
        return redirect(_review_url(task, item_id))
    return _render_item(request, task, view, hint=hint, status=status, push=_review_url(task, item_id))


def _refused(request, task, item_id: int, exc: ApplicationError):
    """The item again, with the service's message under the decision bar (its status kept)."""
    try:
        view = selectors.item_view(user=request.user, task_id=task.pk, item_id=item_id)
    except ApplicationError:
        view = None
    if not is_htmx(request):
        raise exc
    return _render_item(request, task, view, status=exc.status_code, hint=" ".join(errors_of(exc)), hint_error=True)


@login_required
@require_POST
def decide_view(request, task_id: int, item_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    decision = request.POST.get("decision", "")
    history = request.POST.get("history") == "1"
    try:
        services.item_decide(
            user=request.user, task_id=task.pk, item_id=item_id, decision=decision,
            comment=request.POST.get("comment", ""), labels=request.POST.getlist("labels") or None,
            rating=int_or_none(request.POST.get("rating")))
    except ApplicationError as exc:
        return _refused(request, task, item_id, exc)
    word = {"accept": "Accepted", "reject": "Rejected", "skip": "Skipped"}.get(decision, decision)
    hint = f"{word} the example{' again' if history else ''}. u undoes it."
    return _after_action(request, task, hint=hint)


@login_required
@require_POST
def skip_view(request, task_id: int, item_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    try:
        services.item_skip(user=request.user, task_id=task.pk, item_id=item_id)
    except ApplicationError as exc:
        return _refused(request, task, item_id, exc)
    return _after_action(request, task, hint="Skipped: it comes back after the rest.")


@login_required
@require_POST
def undo_view(request, task_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    try:
        item = services.decision_undo(user=request.user, task_id=task.pk)
    except ApplicationError as exc:
        view = _current_view(request, task) if task.status == "open" else None
        if not is_htmx(request):
            raise
        return _render_item(request, task, view, status=exc.status_code, hint=exc.message, hint_error=True)
    if item is None:
        return _after_action(request, task, hint="Nothing to undo.")
    return _after_action(request, task, hint="Undone: the example is yours to decide again.")


@login_required
@require_POST
def lease_view(request, task_id: int, item_id: int):
    """Keep holding the item while the reviewer works on it (review.js calls it every two minutes)."""
    services.lease_extend(user=request.user, task_id=task_id, item_id=item_id)
    return HttpResponse(status=204)


# -- one turn: accept / reject / edit -------------------------------------------------------------------
def _render_turn(request, task, item_id: int, turn: int, *, status: int = 200, editing: bool = False,
                 errors=None, conflict=None, posted=None, revision=None):
    view = selectors.item_view(user=request.user, task_id=task.pk, item_id=item_id)
    mine = view.get("mine") or {}
    msgs = (view.get("example") or {}).get("messages") or []
    turns = conversation(msgs, turn_info=view.get("turns"), marks=mine.get("turn_decisions"))
    if not 0 <= turn < len(turns):
        raise ValidationFailed(f"The example has no turn {turn + 1}.")
    t = turns[turn]
    t["editing"], t["errors"], t["conflict"] = editing, errors or [], conflict
    if posted is not None:
        t["edit_content"] = (posted.get("content") or "").replace("\r\n", "\n")
        if "tool_calls" in posted:
            t["edit_tool_calls"] = posted.get("tool_calls") or ""
    ctx = {**task_context(request, task), "t": t, "view": view,
           "revision": view.get("revision") if revision is None else revision}
    return render(request, f"{TEMPLATE}#turn", ctx, status=status)


@login_required
@require_POST
def turn_view(request, task_id: int, item_id: int, turn: int):
    """POST action=accept|reject|clear (the reviewer's mark on the turn) or action=edit (content, tool_calls,
    base_revision): the turn again, with the inline diff, or with the edit box still open and the
    service's message (422), or the other reviewer's version (409 edit_conflict)."""
    task = selectors.task_get(user=request.user, task_id=task_id)
    action = request.POST.get("action", "")
    if action in ("accept", "reject", "clear"):
        try:
            services.turn_decide(user=request.user, task_id=task.pk, item_id=item_id, turn_index=turn,
                                 decision="" if action == "clear" else action)
        except ApplicationError as exc:
            return _render_turn(request, task, item_id, turn, status=exc.status_code, errors=errors_of(exc))
        return _render_turn(request, task, item_id, turn)
    if action != "edit":
        return _render_turn(request, task, item_id, turn, status=422,
                            errors=["Unknown action: use accept, reject, clear or edit."])
    view = selectors.item_view(user=request.user, task_id=task.pk, item_id=item_id)
    msgs = (view.get("example") or {}).get("messages") or []
    if not 0 <= turn < len(msgs):
        raise ValidationFailed(f"The example has no turn {turn + 1}.")
    try:
        message = message_from_post(msgs[turn], request.POST)
        services.turn_edit(user=request.user, task_id=task.pk, item_id=item_id, turn_index=turn, message=message,
                           base_revision=int_or_none(request.POST.get("base_revision")))
    except ApplicationError as exc:
        conflict = None
        revision = None
        if exc.code == "edit_conflict":
            theirs = exc.extra.get("theirs") or {}
            conflict = {"author": theirs.get("author") or "someone",
                        "text": content_text((theirs.get("message") or {}).get("content")),
                        "tool_calls": json.dumps((theirs.get("message") or {}).get("tool_calls"), indent=1,
                                                 ensure_ascii=False) if (theirs.get("message") or {}).get("tool_calls") else ""}
            revision = exc.extra.get("revision")  # saving again replaces theirs knowingly
        return _render_turn(request, task, item_id, turn, status=exc.status_code, editing=True,
                            errors=errors_of(exc), conflict=conflict, posted=request.POST, revision=revision)
    return _render_turn(request, task, item_id, turn)


@login_required
@require_POST
def turn_preview_view(request, task_id: int, item_id: int, turn: int):
    """The diff of an edit in progress against the example's original turn (no write, no validation:
    saving validates)."""
    view = selectors.item_view(user=request.user, task_id=task_id, item_id=item_id)
    original = ((view.get("example") or {}).get("original_messages") or [])
    if not 0 <= turn < len(original):
        return HttpResponse(status=204)
    before = content_text(original[turn].get("content")).splitlines()
    after = (request.POST.get("content") or "").replace("\r\n", "\n").splitlines()
    if "tool_calls" in request.POST:
        tc = original[turn].get("tool_calls")
        before += json.dumps(tc, indent=1, ensure_ascii=False).splitlines() if tc else []
        after += (request.POST.get("tool_calls") or "").replace("\r\n", "\n").splitlines()
    rows = diff_rows(difflib.unified_diff(before, after, "original", "edited", lineterm="", n=2))
    return render(request, f"{TEMPLATE}#preview", {"rows": rows, "t": {"index": turn}})


# -- comments and flags ---------------------------------------------------------------------------------
@login_required
@require_POST
def comment_view(request, task_id: int, item_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    error, status = "", 200
    try:
        services.comment_add(user=request.user, task_id=task.pk, item_id=item_id, body=request.POST.get("body", ""))
    except ApplicationError as exc:
        error, status = exc.message, exc.status_code
    view = selectors.item_view(user=request.user, task_id=task.pk, item_id=item_id)
    ctx = {"task": task, "view": view, "comments": _comments(view), "comment_error": error,
           "comment_draft": request.POST.get("body", "") if error else ""}
    if not is_htmx(request):
        if error:
            messages.error(request, error)
        return redirect(_review_url(task, item_id))
    return render(request, f"{TEMPLATE}#thread", ctx, status=status)


@login_required
@require_POST
def flag_view(request, task_id: int, item_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    flag = request.POST.get("flag", "")
    error, status = "", 200
    try:
        services.flag_set(user=request.user, task_id=task.pk, item_id=item_id, flag=flag,
                          on=request.POST.get("on", "1") == "1")
    except ApplicationError as exc:
        error, status = exc.message, exc.status_code
    view = selectors.item_view(user=request.user, task_id=task.pk, item_id=item_id)
    ctx = {"task": task, "view": view, "flag_error": error, "flag_rows": _flag_rows(request.user, view)}
    if not is_htmx(request):
        return redirect(_review_url(task, item_id))
    return render(request, f"{TEMPLATE}#flags", ctx, status=status)
