"""What every review page shares: htmx detection, error messages, the permission flags and live progress
the templates show."""
from __future__ import annotations

from apps.core.exceptions import ApplicationError
from apps.review import permissions as perms
from apps.review import selectors


# -- shared bits ---------------------------------------------------------------------------------------
def is_htmx(request) -> bool:
    return bool(getattr(request, "htmx", False))


def errors_of(exc: ApplicationError) -> list[str]:
    msgs = [e.get("message") for e in (exc.errors or []) if e.get("message")]
    return msgs or [exc.message]


def task_context(request, task) -> dict:
    user = request.user
    return {"task": task, "can_manage": perms.can_manage(user, task), "can_review": perms.can_review(user, task),
            "can_adjudicate": perms.can_adjudicate(user, task)}


def page_context(request, task) -> dict:
    """task_context plus what the tabs show (how many examples wait for adjudication)."""
    ctx = task_context(request, task)
    ctx["task_disputed"] = selectors.task_progress(task=task)["disputed"] if ctx["can_adjudicate"] else 0
    return ctx


def task_progress(task) -> dict:
    p = selectors.task_progress(task=task)
    p = dict(p)
    p.setdefault("per_reviewer", {})
    p.setdefault("active", [])
    return p


def reviewer_rows(task, progress: dict) -> list[dict]:
    """One row per assignee (and anyone else with decisions), for the live progress grid."""
    names = [a.user.username for a in task.assignments.select_related("user").order_by("user__username")]
    per = progress.get("per_reviewer") or {}
    for n in per:
        if n not in names:
            names.append(n)
    active = {a.get("username") for a in progress.get("active") or []}
    return [{"username": n, "done": per.get(n, 0), "active": n in active} for n in names]


def live_context(task) -> dict:
    progress = task_progress(task)
    return {"progress": progress, "reviewer_rows": reviewer_rows(task, progress)}


def int_or_none(raw):
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return raw  # the service refuses it with a field error
