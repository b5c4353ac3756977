"""The tool registry page (/models/tools/): every tool with its origin, call format, parameters and what scans
saw; for admins a form to define or edit a tool (schema in a textarea, errors per field), delete, and a form to
scan a ready dataset version; the markdown docs as a download and shown (escaped) on the page."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError, NotFound
from apps.core.htmx import render_page
from apps.registry.tools import selectors, services
from apps.registry.tools.forms import ScanForm, ToolForm
from apps.registry.tools.validate import name_problem, parameter_order


def _versions(user):
    from apps.datasets.selectors import ready_version_list

    return ready_version_list(user=user, limit=300)


def _row(tool) -> dict:
    schema = tool.parameters or {}
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required") or ())
    params = []
    for name in parameter_order(schema):
        t = props[name].get("type") if isinstance(props[name], dict) else None
        params.append({"name": name, "type": " | ".join(t) if isinstance(t, list) else t or "any",
                       "required": name in required})
    obs = tool.observed or {}
    return {"tool": tool, "params": params, "calls": obs.get("calls") or 0,
            "versions": len(obs.get("datasets") or {}), "example_call": selectors.tool_example_display(tool)}


def _page(request, *, form: ToolForm | None = None, scan_form: ScanForm | None = None, status: int = 200,
          editing: str | None = None):
    import json

    if form is None:
        form, editing = ToolForm(), None
        name = request.GET.get("edit", "")
        if name:
            try:
                t = selectors.tool_get(name)
                editing = t.name
                form = ToolForm(initial={"name": t.name, "call_format": t.call_format, "description": t.description,
                                         "parameters": json.dumps(t.parameters or {}, indent=2), "editing": t.name},
                                editing=t.name)
            except NotFound:
                messages.error(request, "No such tool to edit.")
    versions = _versions(request.user)
    return render_page(request, "registry/tools.html", {
        "rows": [_row(t) for t in selectors.tool_list()], "form": form,
        "editing": editing or (form.data.get("editing") if form.is_bound else None),
        "scan_form": scan_form or ScanForm(versions=versions), "has_versions": bool(versions),
        "docs": selectors.tool_docs_markdown(),
    }, status=status)


@login_required
def tool_list(request):
    return _page(request)


def _put_errors(form, exc: ApplicationError) -> None:
    for err in exc.errors or [{"field": None, "message": exc.message}]:
        field, _, rest = (err.get("field") or "").partition(".")
        if field in form.fields:
            form.add_error(field, f"{rest}: {err['message']}" if rest else err["message"])
        else:
            form.add_error(None, err["message"])


@login_required
@require_POST
def tool_save(request):
    form = ToolForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form, status=422)
    d = form.cleaned_data
    try:
        if d["editing"]:
            tool = services.tool_update(actor=request.user, name=d["editing"], description=d["description"],
                                        parameters=d["parameters"], call_format=d["call_format"])
            messages.success(request, f"Tool {tool.name} saved.")
        else:
            tool = services.tool_create(actor=request.user, name=d["name"], description=d["description"],
                                        parameters=d["parameters"], call_format=d["call_format"])
            messages.success(request, f"Tool {tool.name} added.")
    except ApplicationError as exc:
        _put_errors(form, exc)
        return _page(request, form=form, status=exc.status_code)
    return redirect("registry:tools")


@login_required
@require_POST
def tool_delete(request, name: str):
    if name_problem(name):
        raise Http404("No such tool.")  # a malformed name names nothing
    try:
        services.tool_delete(actor=request.user, name=name)
        messages.success(request, f"Tool {name} deleted.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("registry:tools")


@login_required
@require_POST
def tool_scan(request):
    versions = _versions(request.user)
    form = ScanForm(request.POST, versions=versions)
    if not form.is_valid():
        return _page(request, scan_form=form, status=422)
    try:
        result = services.tool_scan(actor=request.user, dataset_version_id=form.cleaned_data["dataset_version_id"])
    except ApplicationError as exc:
        _put_errors(form, exc)
        return _page(request, scan_form=form, status=exc.status_code)
    new = f", new: {', '.join(result['created'])}" if result["created"] else ""
    skipped = f"; {result['skipped']['calls']} call(s) with unusable names skipped" if result["skipped"]["calls"] else ""
    messages.success(request, f"Scanned {result['dataset']} v{result['version']}: {result['examples']} examples, "
                              f"{result['calls']} tool call(s) of {len(result['tools'])} tool(s){new}{skipped}.")
    return redirect("registry:tools")


@login_required
def tool_docs(request):
    resp = HttpResponse(selectors.tool_docs_markdown(), content_type="text/markdown; charset=utf-8")
    resp["Content-Disposition"] = 'attachment; filename="tools.md"'
    return resp
