"""Shared by the review services: loading a task for an action (404 / 403 / 409), users by name."""
from __future__ import annotations

from django.contrib.auth import get_user_model

from apps.core.exceptions import Conflict, NotFound, ValidationFailed
from apps.review import permissions as perms
from apps.review.models import ReviewTask


def task_for(user, task_id: int, *, need: str = "view", open_only: bool = False, lock: bool = False) -> ReviewTask:
    """The task, after checking that `user` may `need` (view | review | manage | adjudicate) it."""
    qs = ReviewTask.objects.select_related("version", "version__dataset")
    if lock:
        qs = qs.select_for_update(of=("self",))
    task = qs.filter(pk=task_id).first()
    if task is None or user is None or not getattr(user, "is_authenticated", False):
        raise NotFound("No such review task.")
    check = {"view": perms.can_view, "review": perms.can_review, "manage": perms.can_manage,
             "adjudicate": perms.can_adjudicate}[need]
    if not check(user, task):
        raise perms.PermissionDenied({
            "view": "You are not part of this review task.",
            "review": "You are not assigned to this review task.",
            "manage": "Only the task's owner or an admin can do this.",
            "adjudicate": "Only an admin or the task's lead can adjudicate.",
        }[need])
    if open_only and task.status != ReviewTask.Status.OPEN:
        raise Conflict(f"The review task is {task.status}: nothing can change in it any more.", code="task_closed")
    return task


def users_by_name(usernames, *, field: str) -> list:
    """Active users for a list of usernames, in order (each once); 422 naming the unknown ones."""
    if usernames is None:
        return []
    if isinstance(usernames, str) or not isinstance(usernames, (list, tuple)):
        raise ValidationFailed("Give a list of usernames.", field=field)
    names = list(dict.fromkeys(str(u).strip() for u in usernames if str(u).strip()))
    users = {u.username: u for u in get_user_model().objects.filter(username__in=names, is_active=True)}
    missing = [n for n in names if n not in users]
    if missing:
        raise ValidationFailed(f"Unknown user{'s' if len(missing) > 1 else ''}: {', '.join(missing[:10])}.", field=field)
    return [users[n] for n in names]
