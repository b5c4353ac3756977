"""Dashboard pages of exports: the "Exports" section of a model version's page (its form, its list with live job
progress: the list polls itself while an export is queued or running), an export's own page (every check, the
timings, the answers compared, an empty `#bundles` slot that the deploy-bundle page fills), download and delete.

Contract: `section(request, version, form=None) -> dict` is the context the version page includes
(templates/registry/_exports.html); the other functions are views (urls in apps/registry/urls.py)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError, NotFound
from apps.core.htmx import render_page
from apps.core.jobs.selectors import job_as_dict
from apps.registry import selectors as registry_selectors
from apps.registry.exports import checks as checks_mod
from apps.registry.exports import selectors, services
from apps.registry.exports.forms import ExportForm
from apps.registry.exports.formats import FORMATS


TIMING_LABELS = {  # timings JSON key -> words and unit on the export's page
    "copy_s": ("Copy the adapter", "s"), "merge_s": ("Load, merge and save the weights", "s"),
    "convert_s": ("Convert to GGUF (llama.cpp)", "s"), "quantize_s": ("Quantize (llama-quantize)", "s"),
    "check_s": ("Round-trip checks", "s"), "reference_s": ("… of which measuring the source version", "s"),
    "total_s": ("Total", "s"), "peak_rss_mb": ("Peak memory (worker or converter)", "MB"),
    "merged_from_export": ("Started from merged export", "#"),
}


def _row(request, export, job) -> dict:
    j = job_as_dict(job, user=request.user) if job is not None else None
    return {"export": export, "job": j, "summary": checks_mod.summary(export.checks or {}),
            "format_label": FORMATS.get(export.format, {}).get("label", export.format),
            "reasons": (export.checks or {}).get("reasons") or [], "error_line": (job.error if job is not None and job.error else (export.error or "").split("\n")[0]),
            "downloadable": selectors.export_file(export) is not None, "active": export.status in services.ACTIVE,
            "can_delete": services.can_manage(request.user, export) and export.status not in services.ACTIVE}


def _rows(request, exports) -> list[dict]:
    jobs = selectors.export_jobs(exports)
    return [_row(request, e, jobs.get(e.pk)) for e in exports]


def section(request, version, form: ExportForm | None = None) -> dict:
    exports = list(selectors.export_list(version_id=version.pk)[:50])
    rows = _rows(request, exports)
    return {"export_form": form or ExportForm(version=version), "export_rows": rows,
            "exports_active": any(r["active"] for r in rows), "export_formats": FORMATS,
            "can_export": version.kind != "remote"}


@login_required
def version_exports(request, version_id: int):
    """The list of a version's exports alone (the section polls it while one is active)."""
    try:
        version = registry_selectors.model_version_get(version_id)
    except NotFound:
        return HttpResponse(status=404)
    return render(request, "registry/_exports.html#export-list", {"version": version, **section(request, version)})


@login_required
@require_POST
def export_start(request, version_id: int):
    try:
        version = registry_selectors.model_version_get(version_id)
    except NotFound as exc:
        return render_page(request, "registry/missing.html", {"message": exc.message}, status=404)
    form = ExportForm(request.POST, version=version)
    status = 422
    if form.is_valid():
        try:
            export = services.export_create(actor=request.user, model_version_id=version.pk,
                                            format=form.cleaned_data["format"],
                                            quantization=form.cleaned_data["quantization"])
            messages.success(request, f"Export #{export.pk} ({export}) is queued: its progress shows below.")
            return redirect(reverse("registry:detail", args=[version.pk]) + "#exports")
        except ApplicationError as exc:
            for err in exc.errors or [{"field": None, "message": exc.message}]:
                field = err.get("field")
                form.add_error(field if field in form.fields else None, err["message"])
            status = exc.status_code
    from apps.registry.forms import DeployForm
    from apps.registry.views import _detail

    return _detail(request, version.pk, DeployForm(), status=status, export_form=form)


def _detail_context(request, export) -> dict:
    job = services.export_job(export)
    row = _row(request, export, job)
    checks = export.checks or {}
    timings = []
    for key, value in (export.timings or {}).items():
        label, unit = TIMING_LABELS.get(key, (key, ""))
        timings.append({"key": key, "label": label,
                        "value": f"#{value}" if unit == "#" else f"{value:g} {unit}".strip()
                        if isinstance(value, (int, float)) else str(value)})
    order = list(TIMING_LABELS)
    timings.sort(key=lambda t: order.index(t["key"]) if t["key"] in order else len(order))
    return {"export": export, "row": row, "checks": checks, "timings": timings,
            "path": services.export_abspath(export), "format_label": FORMATS.get(export.format, {}).get("label", "")}


@login_required
def export_detail(request, export_id: int):
    try:
        export = selectors.export_get(export_id)
    except NotFound as exc:
        return render_page(request, "registry/missing.html", {"message": exc.message}, status=404)
    return render_page(request, "registry/export.html", _detail_context(request, export),
                       partial="export-live" if request.GET.get("live") else None)


@login_required
def export_download(request, export_id: int):
    try:
        export = selectors.export_get(export_id)
        body, filename, content_type = selectors.export_download(export)
    except ApplicationError as exc:
        return render_page(request, "registry/missing.html", {"message": exc.message}, status=exc.status_code)
    if hasattr(body, "read"):
        return FileResponse(body, as_attachment=True, filename=filename, content_type=content_type)
    resp = StreamingHttpResponse(body, content_type=content_type)
    resp["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


@login_required
@require_POST
def export_delete(request, export_id: int):
    export = selectors.export_list().filter(pk=export_id).first()
    version_id = export.model_version_id if export is not None else None
    try:
        services.export_delete(actor=request.user, export_id=export_id)
        messages.success(request, f"Export #{export_id} and its files were deleted.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
        if export is not None and exc.status_code != 404:
            return redirect("registry:export", export_id=export_id)
    if version_id is None:
        return redirect("registry:list")
    return redirect(reverse("registry:detail", args=[version_id]) + "#exports")
