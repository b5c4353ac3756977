"""Dashboard pages of the registry: model versions and aliases, a version's lineage, deploy/rollback."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError, NotFound
from apps.core.htmx import render_page
from apps.registry import selectors, services
from apps.registry.forms import BaseModelForm, DeployForm


def _form_errors(form, exc: ApplicationError):
    for err in exc.errors or [{"field": None, "message": exc.message}]:
        form.add_error(err.get("field") if err.get("field") in form.fields else None, err["message"])


def _aliases():
    return [{"alias": a, "can_rollback": selectors.alias_can_rollback(a.name)} for a in selectors.alias_list()]


@login_required
def model_list(request):
    form = BaseModelForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                bm = services.base_model_register(actor=request.user, model_id=form.cleaned_data["id"],
                                                  path=form.cleaned_data["path"], name=form.cleaned_data["name"])
                messages.success(request, f"Base model {bm.id} registered.")
                return redirect("registry:list")
            except ApplicationError as exc:
                _form_errors(form, exc)
                status = exc.status_code
        else:
            status = 422
    return render_page(request, "registry/list.html", {
        "versions": selectors.model_version_list()[:500], "aliases": _aliases(),
        "base_models": selectors.base_model_list(), "base_form": form,
    }, status=status)


def _detail(request, version_id: int, form: DeployForm, status: int = 200):
    try:
        version = selectors.model_version_get(version_id)
    except NotFound as exc:
        return render_page(request, "registry/missing.html", {"message": exc.message}, status=404)
    return render_page(request, "registry/detail.html", {
        "version": version, "lineage": selectors.model_version_lineage(version), "form": form,
        "aliases": [a for a in _aliases() if a["alias"].model_version_id == version.pk],
        "history": selectors.deployment_history(version_id=version.pk),
    }, partial="deploy" if status != 200 else None, status=status)


@login_required
def model_detail(request, version_id: int):
    return _detail(request, version_id, DeployForm())


@login_required
@require_POST
def model_deploy(request, version_id: int):
    form = DeployForm(request.POST)
    if not form.is_valid():
        return _detail(request, version_id, form, status=422)
    try:
        alias = services.alias_deploy(actor=request.user, version_id=version_id, alias=form.cleaned_data["alias"])
    except ApplicationError as exc:
        _form_errors(form, exc)
        return _detail(request, version_id, form, status=exc.status_code)
    messages.success(request, f"Alias {alias.name} now serves version {version_id}.")
    if getattr(request, "htmx", False):
        from django.http import HttpResponse

        resp = HttpResponse(status=204)
        resp["HX-Redirect"] = request.path.rsplit("deploy", 1)[0]
        return resp
    return redirect("registry:detail", version_id=version_id)


@login_required
@require_POST
def alias_rollback(request, name: str):
    try:
        alias = services.alias_rollback(actor=request.user, alias=name)
        messages.success(request, f"Alias {alias.name} rolled back to {alias.model_version.name} "
                                  f"(mv-{alias.model_version_id}).")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    nxt = request.POST.get("next", "")
    if nxt.startswith("/") and not nxt.startswith("//"):
        return redirect(nxt)
    return redirect("registry:list")
