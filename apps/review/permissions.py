"""Who may do what on a review task — the one place services, selectors, pages and the consumer ask.

- view (read the task, its progress, agreement, comment, flag): a hub admin, the task's owner, its lead, an
  assignee;
- review (take items from the queue, decide, edit, undo): an assignee only (admins too, once assigned);
- manage (change the task, bulk actions, snapshot, finish, export): a hub admin or the task's owner;
- adjudicate (final decision on disputed items): a hub admin or the task's named lead;
- create a task: a member on a dataset they own, or an admin on any (reviewers never).
Services raise `PermissionDenied` (403) when the answer is no."""
from __future__ import annotations

from apps.core.exceptions import PermissionDenied


def is_admin(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_hub_admin", False))


def is_assignee(user, task) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    cache = task.__dict__.setdefault("_assignee_cache", {})
    if user.pk not in cache:
        cache[user.pk] = task.assignments.filter(user_id=user.pk).exists()
    return cache[user.pk]


def can_view(user, task) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return is_admin(user) or task.owner_id == user.pk or task.lead_id == user.pk or is_assignee(user, task)


def can_review(user, task) -> bool:
    return is_assignee(user, task)


def can_manage(user, task) -> bool:
    return is_admin(user) or (user is not None and getattr(user, "is_authenticated", False) and task.owner_id == user.pk)


def can_adjudicate(user, task) -> bool:
    return is_admin(user) or (user is not None and getattr(user, "is_authenticated", False) and task.lead_id == user.pk)


def can_create_on(user, dataset) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if is_admin(user):
        return True
    return getattr(user, "role", "") == "member" and dataset.owner_id == user.pk


def require(allowed: bool, message: str) -> None:
    if not allowed:
        raise PermissionDenied(message)
