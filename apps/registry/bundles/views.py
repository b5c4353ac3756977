"""Dashboard view of an export's deploy bundles, at /models/exports/<id>/bundles (apps/registry/urls.py).

GET: a full page, or (htmx) the `bundles` fragment the export page loads with hx-get: the bundles (status, size,
settings, download, error) and the form that builds a new one; `?part=list` (htmx) only the list, which polls
itself while a bundle is queued or running. POST: build a bundle (CSRF-protected); htmx gets the fragment back —
200 with the new bundle listed, or 403/422 with the form's field errors (static/js/registry_bundles.js swaps those
in place); without htmx, a redirect (or the page with its errors)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse

from apps.core.exceptions import ApplicationError, NotFound
from apps.core.htmx import render_page
from apps.registry.bundles import selectors, services
from apps.registry.bundles.config import SENSIBLE
from apps.registry.bundles.forms import BundleForm
from apps.registry.models import Bundle

ACTIVE = (Bundle.Status.QUEUED, Bundle.Status.RUNNING)


def _export_page(export_id: int) -> str | None:
    """The export's own page (apps/registry/exports), when that route exists."""
    for name in ("registry:export_detail", "registry:export"):
        try:
            return reverse(name, args=[export_id])
        except NoReverseMatch:
            continue
    return None


def _rows(export_id: int) -> list[dict]:
    bundles = selectors.bundle_list(export_id=export_id)
    jobs = selectors.bundle_jobs([b.pk for b in bundles])
    rows = []
    for b in bundles:
        job = jobs.get(b.pk)
        rows.append({"bundle": b, "job": job, "progress": (job.progress or {}) if job else {},
                     "download": selectors.bundle_zip_path(b) is not None,
                     "download_url": reverse("api:bundle_download", args=[b.pk])})
    return rows


def _form_errors(form: BundleForm, exc: ApplicationError) -> None:
    for err in exc.errors or [{"field": None, "message": exc.message}]:
        field = (err.get("field") or "").removeprefix("config.")
        form.add_error(field if field in form.fields else None, err["message"])


@login_required
def export_bundles(request, export_id: int):
    try:
        export = selectors.export_get(export_id)
    except NotFound as exc:
        return render_page(request, "registry/missing.html", {"message": exc.message}, status=404)
    if request.method == "GET" and request.GET.get("part") == "list" and getattr(request, "htmx", False):
        rows = _rows(export.pk)  # the list polling itself: no form, no defaults to work out
        return render_page(request, "registry/bundles.html", {
            "export": export, "rows": rows, "active": any(r["bundle"].status in ACTIVE for r in rows)},
            partial="bundle_list")
    defaults = {**SENSIBLE, **selectors.bundle_defaults(export)}
    ctx_len = selectors.context_length(export)
    defaults["max_tokens"] = min(defaults["max_tokens"], ctx_len)
    form, status, created = BundleForm(defaults=defaults, context_length=ctx_len), 200, None
    if request.method == "POST":
        form = BundleForm(request.POST, defaults=defaults, context_length=ctx_len)
        if form.is_valid():
            try:
                created = services.bundle_create(actor=request.user, export_id=export.pk, config=form.config(),
                                                 base_url=request.build_absolute_uri("/v1"))
                if not getattr(request, "htmx", False):
                    messages.success(request, f"Bundle {created.pk} is queued; it is built in the background.")
                    return redirect("registry:export_bundles", export_id=export.pk)
                form = BundleForm(defaults=defaults, context_length=ctx_len)
            except ApplicationError as exc:
                _form_errors(form, exc)
                status = exc.status_code
        else:
            status = 422
    rows = _rows(export.pk)
    return render_page(request, "registry/bundles.html", {
        "export": export, "version": export.model_version, "rows": rows, "form": form, "created": created,
        "active": any(r["bundle"].status in ACTIVE for r in rows), "can_build": services.can_build(request.user),
        "problem": services.export_problem(export), "export_page": _export_page(export.pk),
        "context_length": ctx_len,
    }, partial="bundles", status=status)
