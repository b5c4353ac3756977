"""The home page's live status, read through each app's selectors (issue 14: "a home page with live status"):
active jobs (running, then queued), recent runs with their phase and time, deployed aliases and the proxy's
traffic in the last hour. Reads only.

Contract: `home_status(user)` returns {jobs, runs, aliases, traffic, any_active}; the page refreshes it while
something is active."""
from __future__ import annotations

import datetime as dt
import statistics

from django.utils import timezone

_JOBS = 8
_RUNS = 6


def active_jobs(user) -> list[dict]:
    from apps.core.jobs.selectors import job_as_dict, job_list

    running = list(job_list(user=user, status="running").order_by("-started_at")[:_JOBS])
    queued = list(job_list(user=user, status="queued").order_by("created_at")[:max(0, _JOBS - len(running))])
    return [job_as_dict(j, user=user) for j in running + queued]


def recent_runs(user) -> list[dict]:
    from apps.training import selectors as training

    runs = training.run_list(user=user).select_related("job").order_by("-created_at")[:_RUNS]
    return [{"run": r, "timing": training.run_timing(r)} for r in runs]


def traffic_last_hour(user, *, now: dt.datetime | None = None) -> dict:
    """Requests through the proxy in the last hour (the user's own; an admin's: everyone's): count, errors
    (status ≥ 400), median latency, tokens, and the busiest models."""
    from apps.traffic.selectors import is_admin, visible_entries

    since = (now or timezone.now()) - dt.timedelta(hours=1)
    rows = list(visible_entries(user=user).filter(created_at__gte=since)
                .values_list("status_code", "latency_ms", "prompt_tokens", "completion_tokens", "model")[:20000])
    latencies = [r[1] for r in rows if r[1] is not None]
    models: dict[str, int] = {}
    for r in rows:
        models[r[4] or "—"] = models.get(r[4] or "—", 0) + 1
    return {"requests": len(rows), "errors": sum(1 for r in rows if r[0] >= 400),
            "p50_ms": round(statistics.median(latencies)) if latencies else None,
            "tokens": sum((r[2] or 0) + (r[3] or 0) for r in rows),
            "models": sorted(models.items(), key=lambda kv: (-kv[1], kv[0]))[:4],
            "scope": "all users" if is_admin(user) else "your requests"}


def home_status(user) -> dict:
    from apps.registry import selectors as registry

    jobs = active_jobs(user)
    runs = recent_runs(user)
    return {"jobs": jobs, "runs": runs, "aliases": list(registry.alias_list()),
            "traffic": traffic_last_hour(user),
            "any_active": bool(jobs) or any(r["run"].is_active for r in runs)}
