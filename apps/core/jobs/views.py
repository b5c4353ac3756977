"""The Jobs page (/jobs/): every background job with its kind, owner, phase, progress, holder, age and
elapsed time; filters by kind and status; cancel and retry (owner or admin). While any listed job is
active, the table re-renders itself through htmx every few seconds (the `jobs` partial)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError
from apps.core.htmx import render_page
from apps.core.jobs import selectors, services
from apps.core.jobs.registry import kinds
from apps.core.models import Job

PAGE_SIZE = 200
STATUS_FILTERS = ["active", *[s for s, _ in Job.Status.choices]]


@login_required
def jobs_view(request):
    kind = request.GET.get("kind") or None
    status = request.GET.get("status") or None
    registered = kinds()
    if kind and kind not in registered:
        kind = None
    if status and status not in STATUS_FILTERS:
        status = None
    jobs = list(selectors.job_list(user=request.user, kind=kind, status=status)[:PAGE_SIZE])
    rows = [selectors.job_as_dict(j, user=request.user) for j in jobs]
    ctx = {
        "rows": rows, "kind": kind, "status": status, "statuses": STATUS_FILTERS,
        "kinds": sorted(((k, spec.label or k) for k, spec in registered.items()), key=lambda kv: kv[0]),
        "any_active": any(r["status"] in Job.ACTIVE for r in rows),
    }
    return render_page(request, "core/jobs.html", ctx, partial="jobs")


def _back(request):
    target = request.POST.get("next") or ""
    # a local path only: redirect() would take any other string for a view name (and fail on it)
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return HttpResponseRedirect(target)
    return redirect("jobs:list")


@login_required
@require_POST
def job_cancel_view(request, job_id: int):
    try:
        services.job_request_cancel(user=request.user, job_id=job_id)
        messages.success(request, f"Cancel requested for job {job_id}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return _back(request)


@login_required
@require_POST
def job_retry_view(request, job_id: int):
    try:
        services.job_retry(user=request.user, job_id=job_id)
        messages.success(request, f"Job {job_id} queued again.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return _back(request)
