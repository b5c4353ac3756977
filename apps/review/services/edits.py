"""Turn edits: validation of an edited example, the optimistic-concurrency check, the diff shown to the UI.

- `validate_messages(example, messages, field=...)` re-checks the whole edited example with the datasets'
  structural rules (apps.datasets.formats.rows.RowChecker) plus the review rule that an assistant turn may
  not be empty (no text and no tool call). Errors are field errors (`messages.<turn>` or the given field).
- `apply_turn_changes(...)`: a reviewer's changes are compared with what they were shown (the item at their
  base revision); a turn they changed that someone else changed since is a 409 `edit_conflict` carrying the
  other's version (nothing is written); otherwise each changed turn becomes a TurnEdit row and the item's
  messages and revision move on. Turns the reviewer did not touch keep everyone else's edits.
- `turn_diff(before, after)`: unified diff lines of a turn's text (difflib), for the inline diff."""
from __future__ import annotations

import difflib
import json
import re

from apps.core.exceptions import Conflict, ValidationFailed
from apps.review.models import ReviewItem, TurnEdit

_MSG_INDEX = re.compile(r"messages\[(\d+)\]")


def current_messages(item: ReviewItem) -> list:
    return item.messages if item.messages is not None else item.example.messages


def _example_dict(example, messages) -> dict:
    return {"messages": messages, "tools": example.tools, "source_file": example.source_file,
            "source_line": example.source_line, "category": example.category, "tags": list(example.tags or []),
            "meta": dict(example.meta or {"kind": "chat"})}


def validate_messages(example, messages, *, field_for_turn=lambda i: f"messages.{i}", field: str = "messages",
                      target: str = "local") -> list:
    """The normalized messages, or ValidationFailed with field errors (nothing is saved by the caller)."""
    from apps.datasets.formats import Report
    from apps.datasets.formats.rows import RowChecker

    if not isinstance(messages, list) or not messages:
        raise ValidationFailed("Give a non-empty list of messages.", field=field)
    errors = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            errors.append({"field": field_for_turn(i), "message": f"Turn {i + 1} is not an object."})
            continue
        content = m.get("content")
        if m.get("role") == "assistant" and not m.get("tool_calls") and not m.get("function_call") and (
                content is None or (isinstance(content, str) and not content.strip())):
            errors.append({"field": field_for_turn(i),
                           "message": f"Turn {i + 1}: an assistant turn cannot be empty (write an answer or a "
                                      f"tool call, or reject the turn)."})
    if errors:
        raise ValidationFailed(errors[0]["message"], errors=errors)
    report = Report()
    checker = RowChecker(report, target=target, file=example.source_file)
    checked = checker.check_example(_example_dict(example, messages))
    if report.errors or checked is None:
        errs = []
        for e in report.errors:
            m = _MSG_INDEX.search(e["message"])
            errs.append({"field": field_for_turn(int(m.group(1))) if m else field, "message": e["message"]})
        errs = errs or [{"field": field, "message": "The edited example is not valid."}]
        raise ValidationFailed(errs[0]["message"] if len(errs) == 1 else "The edit breaks the example.", errors=errs)
    return checked["messages"]


def turn_text(message: dict) -> str:
    text = message.get("content") or ""
    if message.get("tool_calls"):
        text += ("\n" if text else "") + json.dumps(message["tool_calls"], indent=1, ensure_ascii=False)
    return text


def turn_diff(before: dict | None, after: dict | None) -> list[str]:
    a = turn_text(before or {}).splitlines()
    b = turn_text(after or {}).splitlines()
    return [line.rstrip("\n") for line in difflib.unified_diff(a, b, "original", "edited", lineterm="", n=2)]


def messages_at(item: ReviewItem, revision: int) -> list:
    """The item's messages as they were at `revision` (later edits undone, newest first)."""
    msgs = [dict(m) for m in current_messages(item)]
    for edit in item.edits.filter(revision__gt=revision).order_by("-revision"):
        if edit.turn_index < len(msgs):
            msgs[edit.turn_index] = edit.before
    return msgs


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def conflict_body(item: ReviewItem, edit: TurnEdit, yours: dict) -> Conflict:
    return Conflict(
        f"{edit.author.username if edit.author else 'Someone'} edited turn {edit.turn_index + 1} after you opened "
        f"this item. Their version is shown; send yours again to replace it.",
        code="edit_conflict",
        extra={"turn_index": edit.turn_index, "revision": item.revision,
               "theirs": {"author": edit.author.username if edit.author else None, "message": edit.after,
                          "revision": edit.revision, "created_at": edit.created_at.isoformat()},
               "yours": yours})


def apply_turn_changes(*, item: ReviewItem, user, base_revision: int, changes: dict[int, dict], response=None,
                       target: str = "local", field_for_turn=lambda i: f"messages.{i}") -> list[int]:
    """Write `changes` ({turn: message}) on the locked `item`. Returns the turns changed (those equal to the
    current version are dropped). 409 on a turn someone else changed after `base_revision`; 422 when the
    result is not a valid example. Nothing is written on either error."""
    current = current_messages(item)
    changes = {i: m for i, m in changes.items() if not _same(m, current[i])}
    if not changes:
        return []
    later = (TurnEdit.objects.filter(item=item, revision__gt=base_revision, turn_index__in=list(changes))
             .exclude(author_id=user.pk).select_related("author").order_by("-revision"))
    clash = later.first()
    if clash is not None:
        raise conflict_body(item, clash, changes[clash.turn_index])
    merged = [dict(m) for m in current]
    for i, m in changes.items():
        merged[i] = m
    normalized = validate_messages(item.example, merged, field_for_turn=field_for_turn, target=target)
    rev = item.revision
    rows = []
    for i in sorted(changes):
        rev += 1
        rows.append(TurnEdit(item=item, turn_index=i, revision=rev, author=user, before=current[i],
                             after=normalized[i], response=response))
    TurnEdit.objects.bulk_create(rows)
    item.messages, item.revision = normalized, rev
    ReviewItem.objects.filter(pk=item.pk).update(messages=normalized, revision=rev)
    return sorted(changes)


def changes_from_messages(item: ReviewItem, messages, base_revision: int) -> dict[int, dict]:
    """The turns a reviewer changed in a full message list, compared with what they were shown."""
    current = current_messages(item)
    if not isinstance(messages, list) or len(messages) != len(current):
        raise ValidationFailed(f"Send all {len(current)} turns, edited in place (to drop a turn, reject it).",
                               field="messages")
    if any(not isinstance(m, dict) for m in messages):
        raise ValidationFailed("Each turn is an object with `role` and `content`.", field="messages")
    shown = messages_at(item, base_revision) if base_revision < item.revision else current
    return {i: m for i, m in enumerate(messages) if not _same(m, shown[i])}
