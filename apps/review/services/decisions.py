"""Decisions on items: decide (accept / reject / skip, with edits, labels, rating, comment, per-turn
decisions), edit or decide one turn, undo the last decision, comments, flags, adjudication.

Every write locks the item's row first (the same order as the queue), checks that the caller holds the item
(403 `not_holder` otherwise: an item never leased to them, or whose expired lease was given to someone
else — a lapsed lease whose slot is still free is simply taken again), validates everything before writing
(422 with field errors, nothing saved), then updates the counters and settles the item's state:
pending (fewer than `overlap` decisions) -> agreed (all the same) | disputed (adjudication queue);
adjudication or a bulk action makes it resolved. Progress is broadcast after commit."""
from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.review import permissions as perms
from apps.review.models import (
    DECISIONS, FLAGS, ReviewAssignment, ReviewComment, ReviewFlag, ReviewItem, ReviewResponse, ReviewTask, TurnEdit,
)
from apps.review.realtime import progress_on_commit
from apps.review.services.common import task_for
from apps.review.services.edits import (
    apply_turn_changes, changes_from_messages, current_messages, turn_diff,
)
from apps.review.services.queue import item_is_open, item_skip, take_item

Status = ReviewResponse.Status
State = ReviewItem.State
MAX_COMMENT = 5000


# -- checks ---------------------------------------------------------------------------------------------
def _check_decision(decision) -> str:
    if decision not in DECISIONS:
        raise ValidationFailed("The decision is accept, reject or skip.", field="decision")
    return decision


def _check_answer(task: ReviewTask, *, comment, labels, rating) -> tuple[str, list, int | None]:
    errors = []
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT or "\x00" in comment:
        errors.append({"field": "comment", "message": f"The comment is text of at most {MAX_COMMENT} characters."})
    labels = list(labels or [])
    bad = [lab for lab in labels if not isinstance(lab, str) or lab not in task.labels]
    if bad:
        choices = ", ".join(task.labels) if task.labels else "none: this task asks for no labels"
        errors.append({"field": "labels", "message": f"Unknown label {str(bad[0])[:60]!r} (choices: {choices})."})
    if rating is not None:
        if not task.rating:
            errors.append({"field": "rating", "message": "This task asks for no rating."})
        elif isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            errors.append({"field": "rating", "message": "The rating is a whole number from 1 to 5."})
    if errors:
        raise ValidationFailed(errors[0]["message"], errors=errors)
    return comment, list(dict.fromkeys(labels)), rating


def _check_turn_decisions(turn_decisions, n_turns: int) -> dict[str, str]:
    if turn_decisions in (None, {}):
        return {}
    if not isinstance(turn_decisions, dict):
        raise ValidationFailed("turn_decisions maps a turn index to accept or reject.", field="turn_decisions")
    out = {}
    for k, v in turn_decisions.items():
        try:
            i = int(k)
        except (TypeError, ValueError):
            i = -1
        if not 0 <= i < n_turns:
            raise ValidationFailed(f"Turn {k!r} does not exist (the example has {n_turns} turns).",
                                   field="turn_decisions")
        if v not in DECISIONS:
            raise ValidationFailed("A turn's decision is accept or reject.", field=f"turn_decisions.{i}")
        out[str(i)] = v
    return out


def lock_task(task: ReviewTask) -> None:
    """Lock the task's row (FOR NO KEY UPDATE: the queue's inserts that reference it are not blocked) before
    any item: the one lock order of decisions, bulk actions and finish. 409 when it closed meanwhile."""
    status = (ReviewTask.objects.select_for_update(no_key=True).filter(pk=task.pk)
              .values_list("status", flat=True).first())
    if status != ReviewTask.Status.OPEN:
        raise Conflict(f"The review task is {status}: nothing can change in it any more.", code="task_closed")


def _locked_item(task: ReviewTask, item_id: int) -> ReviewItem:
    item = (ReviewItem.objects.select_for_update(of=("self",)).select_related("example")
            .filter(pk=item_id, task_id=task.pk).first())
    if item is None:
        raise NotFound("No such item in this task.")
    return item


def _held_response(task: ReviewTask, user, item: ReviewItem, *, allow_done: bool = True) -> ReviewResponse:
    """The caller's response on the locked item: held, or done (changing one's answer); a lapsed slot is
    taken again when it is still free. 403 otherwise."""
    resp = ReviewResponse.objects.filter(item=item, reviewer_id=user.pk).first()
    if resp is not None and (resp.status == Status.LEASED or (allow_done and resp.status == Status.DONE)):
        return resp
    again = take_item(task, user, item)
    if again is None:
        raise PermissionDenied("You do not hold this item: take the next one from the queue.", code="not_holder")
    return again


def settle(task: ReviewTask, item: ReviewItem) -> None:
    """Recount the item's decisions and set its state; keep the task's done_items in step."""
    was_complete = item.state != State.PENDING
    decisions = list(item.responses.filter(status=Status.DONE).values_list("decision", flat=True))
    item.done = len(decisions)
    if item.state != State.RESOLVED:
        if item.done >= task.overlap:
            if len(set(decisions)) == 1:
                item.state, item.final_decision = State.AGREED, decisions[0]
            else:
                item.state, item.final_decision = State.DISPUTED, ""
        else:
            item.state, item.final_decision = State.PENDING, ""
    item.open = item_is_open(item, task.overlap)
    ReviewItem.objects.filter(pk=item.pk).update(done=item.done, state=item.state, final_decision=item.final_decision,
                                                 open=item.open)
    now_complete = item.state != State.PENDING
    if now_complete != was_complete:
        ReviewTask.objects.filter(pk=task.pk).update(done_items=F("done_items") + (1 if now_complete else -1))


def _count_decision(task: ReviewTask, user, delta: int) -> None:
    ReviewAssignment.objects.filter(task_id=task.pk, user_id=user.pk).update(done=F("done") + delta)
    ReviewTask.objects.filter(pk=task.pk).update(decisions=F("decisions") + delta)


# -- deciding -------------------------------------------------------------------------------------------
def item_decide(*, user, task_id: int, item_id: int, decision: str, messages=None, comment: str | None = "",
                labels=None, rating: int | None = None, turn_decisions=None,
                base_revision: int | None = None) -> ReviewResponse | None:
    """Accept or reject the item the caller holds (or change their answer on one they decided), with
    optional edited messages (the full list, same turns), labels, a 1-5 rating, a comment and per-turn
    decisions. `skip` gives the item back (returns None). 403 not assigned / not holding; 409 task closed
    or `edit_conflict`; 422 field errors, nothing saved."""
    if decision == "skip":
        item_skip(user=user, task_id=task_id, item_id=item_id)
        return None
    _check_decision(decision)
    task = task_for(user, task_id, need="review", open_only=True)
    comment, labels, rating = _check_answer(task, comment=comment, labels=labels, rating=rating)
    with transaction.atomic():
        lock_task(task)
        item = _locked_item(task, item_id)
        resp = _held_response(task, user, item)
        base = resp.base_revision if base_revision is None else base_revision
        edited: list[int] = []
        if messages is not None:
            changes = changes_from_messages(item, messages, base)
            edited = apply_turn_changes(item=item, user=user, base_revision=base, changes=changes, response=resp,
                                        target=task.version.target)
        turns = _check_turn_decisions(turn_decisions, len(current_messages(item)))
        now = timezone.now()
        first_time = resp.status != Status.DONE
        resp.status, resp.decision, resp.comment, resp.labels, resp.rating = Status.DONE, decision, comment, labels, rating
        if turn_decisions is not None:
            resp.turn_decisions = turns
        resp.edited_turns = sorted(set(resp.edited_turns or []) | set(edited))
        resp.decided_at, resp.lease_expires_at = now, None
        if first_time and resp.leased_at:
            resp.duration_ms = max(0, int((now - resp.leased_at).total_seconds() * 1000))
        resp.save()
        if first_time:
            _count_decision(task, user, +1)
        settle(task, item)
        progress_on_commit(task.pk)
    return resp


def turn_edit(*, user, task_id: int, item_id: int, turn_index: int, message: dict,
              base_revision: int | None = None) -> dict:
    """Save one edited turn now (the inline edit). The caller holds the item (or adjudicates the task).
    Returns {item_id, turn_index, revision, message, diff}. 409 `edit_conflict` when someone else edited that
    turn after the caller opened the item (resend with base_revision = the returned revision to replace
    it); 422 when the edit breaks the example (field `message`), nothing saved."""
    task = task_for(user, task_id, need="view", open_only=True)
    if not isinstance(message, dict):
        raise ValidationFailed("The turn is an object with `role` and `content`.", field="message")
    with transaction.atomic():
        lock_task(task)
        item = _locked_item(task, item_id)
        resp = None
        if perms.can_review(user, task):
            resp = _held_response(task, user, item)
        elif not perms.can_adjudicate(user, task):
            raise PermissionDenied("You are not assigned to this review task.")
        current = current_messages(item)
        if isinstance(turn_index, bool) or not isinstance(turn_index, int) or not 0 <= turn_index < len(current):
            raise NotFound(f"The example has no turn {turn_index}.", field="turn_index")
        base = base_revision if base_revision is not None else (resp.base_revision if resp else item.revision)
        original = current[turn_index]
        edited = apply_turn_changes(item=item, user=user, base_revision=base, changes={turn_index: message},
                                    response=resp, target=task.version.target,
                                    field_for_turn=lambda i: "message" if i == turn_index else f"messages.{i}")
        if resp is not None and edited:
            resp.edited_turns = sorted(set(resp.edited_turns or []) | set(edited))
            # the caller has now seen everything up to this revision
            resp.base_revision = item.revision
            resp.save(update_fields=["edited_turns", "base_revision"])
        after = current_messages(item)[turn_index]
        first = item.edits.filter(turn_index=turn_index).order_by("revision").first()
        progress_on_commit(task.pk)
    return {"item_id": item.pk, "turn_index": turn_index, "revision": item.revision, "message": after,
            "diff": turn_diff(first.before if first else original, after), "changed": bool(edited)}


def turn_decide(*, user, task_id: int, item_id: int, turn_index: int, decision: str) -> ReviewResponse | ReviewItem:
    """Accept or reject one turn ("" clears it). A rejected assistant turn is kept as context but not
    trained on (weight 0) in the reviewed version. Reviewers record it on their answer; an adjudicator on
    the item (final)."""
    if decision not in (*DECISIONS, ""):
        raise ValidationFailed("A turn's decision is accept, reject or empty.", field="decision")
    task = task_for(user, task_id, need="view", open_only=True)
    with transaction.atomic():
        lock_task(task)
        item = _locked_item(task, item_id)
        n = len(current_messages(item))
        if isinstance(turn_index, bool) or not isinstance(turn_index, int) or not 0 <= turn_index < n:
            raise NotFound(f"The example has no turn {turn_index}.", field="turn_index")
        if perms.can_review(user, task):
            resp = _held_response(task, user, item)
            turns = dict(resp.turn_decisions or {})
            target = resp
        elif perms.can_adjudicate(user, task):
            turns = dict(item.turn_decisions or {})
            target = item
        else:
            raise PermissionDenied("You are not assigned to this review task.")
        if decision:
            turns[str(turn_index)] = decision
        else:
            turns.pop(str(turn_index), None)
        target.turn_decisions = turns
        target.save(update_fields=["turn_decisions"])
    return target


@transaction.atomic
def decision_undo(*, user, task_id: int) -> ReviewItem | None:
    """Take back the caller's last decision in the task: the item is theirs again (leased), its state is
    recomputed, and the turn edits they made with it are reverted where nobody edited the turn since.
    None when there is nothing to undo; 409 when that item was adjudicated meanwhile."""
    task = task_for(user, task_id, need="review", open_only=True)
    last = (ReviewResponse.objects.filter(task_id=task.pk, reviewer_id=user.pk, status=Status.DONE)
            .order_by("-decided_at", "-pk").values_list("item_id", flat=True).first())
    if last is None:
        return None
    lock_task(task)
    item = _locked_item(task, last)
    resp = ReviewResponse.objects.get(item=item, reviewer_id=user.pk)
    if resp.status != Status.DONE:
        return None
    if item.state == State.RESOLVED:
        raise Conflict("That item was already decided by an adjudicator or a bulk action; it cannot be undone.",
                       code="already_resolved")
    msgs = [dict(m) for m in current_messages(item)]
    rev, reverts = item.revision, []
    for edit in resp.edits.order_by("-revision"):
        if item.edits.filter(turn_index=edit.turn_index, revision__gt=edit.revision).exclude(
                response=resp).exists() or edit.turn_index >= len(msgs):
            continue
        rev += 1
        reverts.append(TurnEdit(item=item, turn_index=edit.turn_index, revision=rev, author=user,
                                before=msgs[edit.turn_index], after=edit.before))
        msgs[edit.turn_index] = edit.before
    if reverts:
        TurnEdit.objects.bulk_create(reverts)
        item.messages, item.revision = msgs, rev
        ReviewItem.objects.filter(pk=item.pk).update(messages=msgs, revision=rev)
        resp.edits.update(response=None)
    now = timezone.now()
    resp.status, resp.decision, resp.decided_at = Status.LEASED, "", None
    resp.leased_at, resp.lease_expires_at = now, now + timedelta(seconds=task.lease_seconds)
    resp.base_revision, resp.edited_turns, resp.duration_ms = item.revision, [], None
    resp.save()
    _count_decision(task, user, -1)
    settle(task, item)
    item.lease = resp
    progress_on_commit(task.pk)
    return item


# -- comments and flags ---------------------------------------------------------------------------------
def comment_add(*, user, task_id: int, item_id: int, body: str) -> ReviewComment:
    """A comment on the item's thread (anyone who can see the task)."""
    task = task_for(user, task_id, need="view")
    if not isinstance(body, str) or not body.strip() or len(body) > MAX_COMMENT or "\x00" in body:
        raise ValidationFailed(f"Write a comment of 1 to {MAX_COMMENT} characters.", field="body")
    item = ReviewItem.objects.filter(pk=item_id, task_id=task.pk).first()
    if item is None:
        raise NotFound("No such item in this task.")
    return ReviewComment.objects.create(item=item, author=user, body=body.strip())


def flag_set(*, user, task_id: int, item_id: int, flag: str, on: bool = True) -> list[str]:
    """Raise or lower one of the caller's flags on the item (pii, wrong, low_quality, duplicate).
    Returns the caller's flags on it."""
    task = task_for(user, task_id, need="view")
    if flag not in FLAGS:
        raise ValidationFailed(f"The flag is one of {', '.join(FLAGS)}.", field="flag")
    item = ReviewItem.objects.filter(pk=item_id, task_id=task.pk).first()
    if item is None:
        raise NotFound("No such item in this task.")
    if on:
        ReviewFlag.objects.get_or_create(item=item, user=user, flag=flag)
    else:
        ReviewFlag.objects.filter(item=item, user=user, flag=flag).delete()
    return sorted(ReviewFlag.objects.filter(item=item, user=user).values_list("flag", flat=True))


# -- adjudication ---------------------------------------------------------------------------------------
def item_adjudicate(*, user, task_id: int, item_id: int, decision: str, messages=None, comment: str = "",
                    turn_decisions=None, base_revision: int | None = None) -> ReviewItem:
    """The final decision on an item (admins or the task's lead), usually a disputed one, with optional
    edited messages and per-turn decisions. The item leaves the queue as `resolved`."""
    _check_decision(decision)
    task = task_for(user, task_id, need="adjudicate", open_only=True)
    if comment and (not isinstance(comment, str) or len(comment) > MAX_COMMENT or "\x00" in comment):
        raise ValidationFailed(f"The comment is text of at most {MAX_COMMENT} characters.", field="comment")
    with transaction.atomic():
        lock_task(task)
        item = _locked_item(task, item_id)
        base = item.revision if base_revision is None else base_revision
        if messages is not None:
            changes = changes_from_messages(item, messages, base)
            apply_turn_changes(item=item, user=user, base_revision=base, changes=changes,
                               target=task.version.target)
        turns = _check_turn_decisions(turn_decisions, len(current_messages(item)))
        was_complete = item.state != State.PENDING
        item.state, item.final_decision, item.decided_by = State.RESOLVED, decision, user
        if turn_decisions is not None:
            item.turn_decisions = turns
        item.open = False
        item.save(update_fields=["state", "final_decision", "decided_by", "turn_decisions", "open"])
        if not was_complete:
            ReviewTask.objects.filter(pk=task.pk).update(done_items=F("done_items") + 1)
        if comment and comment.strip():
            ReviewComment.objects.create(item=item, author=user, body=f"[adjudication: {decision}] {comment.strip()}")
        progress_on_commit(task.pk)
    return item
