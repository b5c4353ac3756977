"""Dashboard pages of the registry: model versions and aliases, a version's lineage, deploy (plain or canary; the
alias chosen, every deploy confirmed first with the version it replaces and the one it deploys), an alias's
history and rollback to any version it served before (each rollback button names its target)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.services import require_admin
from apps.core.exceptions import ApplicationError, NotFound
from apps.core.htmx import render_page
from apps.core.inputs import form_initial_from_query, is_id
from apps.registry import selectors, services
from apps.registry.forms import BaseModelForm, DeployForm, RollbackForm
from apps.registry.vllm import RESOLVED_MARK, reason_split


def _form_errors(form, exc: ApplicationError):
    for err in exc.errors or [{"field": None, "message": exc.message}]:
        field = (err.get("field") or "").removeprefix("thresholds.")  # canary thresholds are fields of the form
        form.add_error(field if field in form.fields else None, err["message"])


def _aliases():
    from apps.experiments.selectors import experiment_list

    running = {e.alias: e for e in experiment_list(status="running")}
    rows = []
    for a in selectors.alias_list():
        targets = selectors.alias_rollback_targets(a.name, current_version_id=a.model_version_id, limit=50)
        rows.append({"alias": a, "can_rollback": bool(targets), "experiment": running.get(a.name),
                     "rollback_to": targets[0].model_version if targets else None})  # what "Roll back" restores
    return rows


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
    versions = list(selectors.model_version_list()[:500])
    origins = selectors.checkpoint_origins([v.pk for v in versions if v.run_id is None])
    for v in versions:  # a version promoted from a checkpoint shows its run and the loss at that step
        v.origin = origins.get(v.pk)
        v.shown_loss = v.final_loss if v.final_loss is not None else (v.origin or {}).get("train_loss")
    return render_page(request, "registry/list.html", {
        "versions": versions, "aliases": _aliases(),
        "base_models": selectors.base_model_list(), "base_form": form,
    }, status=status)


def _detail(request, version_id: int, form: DeployForm, status: int = 200, confirm: dict | None = None,
            export_form=None):
    try:
        version = selectors.model_version_get(version_id)
    except NotFound as exc:
        return render_page(request, "registry/missing.html", {"message": exc.message}, status=404)
    from apps.registry.exports.serving import serving_engine
    from apps.registry.exports.views import section as export_section

    aliases = _aliases()
    return render_page(request, "registry/detail.html", {
        **export_section(request, version, export_form),  # the Exports section (issue 12)
        "alias_options": [row["alias"] for row in aliases],
        "serving": serving_engine(version),
        "version": version, "lineage": selectors.model_version_lineage(version), "form": form,
        "aliases": [a for a in aliases if a["alias"].model_version_id == version.pk],
        "history": selectors.deployment_history(version_id=version.pk), "confirm": confirm,
        "canary_open": bool(form.data.get("canary") if form.is_bound else form.initial.get("canary")),
    }, partial="deploy" if ((status != 200 and export_form is None) or confirm) else None, status=status)


_PREFILL = ("alias", "reason", "canary", *DeployForm.CANARY_FIELDS)


@login_required
def model_detail(request, version_id: int):
    form = DeployForm()
    # a link may name the deploy's values (the command bar's form_url); nothing moves on GET
    form.initial.update(form_initial_from_query(request.GET, form, keys=_PREFILL))
    return _detail(request, version_id, form)


def _confirmation(form: DeployForm, version_id: int) -> dict:
    """What the admin is asked before a deploy: the alias, what it serves now and what it will serve."""
    from apps.registry.models import Alias

    alias = form.cleaned_data["alias"]
    current = Alias.objects.select_related("model_version").filter(name=alias).first()
    return {"alias": alias, "current": current.model_version if current else None, "version_id": version_id,
            "canary": form.cleaned_data.get("canary"), "percent": form.cleaned_data.get("canary_percent")}


@login_required
@require_POST
def model_deploy(request, version_id: int):
    form = DeployForm(request.POST)
    if not form.is_valid():
        return _detail(request, version_id, form, status=422)
    alias_name, reason = form.cleaned_data["alias"], form.cleaned_data["reason"]
    try:
        if form.needs_confirmation():
            require_admin(request.user)  # no question for someone who may not deploy at all
            return _detail(request, version_id, form, confirm=_confirmation(form, version_id))
        if form.cleaned_data["canary"]:
            from apps.experiments.canary import canary_start

            exp = canary_start(actor=request.user, version_id=version_id, alias=alias_name, reason=reason,
                               **form.canary_options())
            messages.success(request, f"Canary of version {version_id} on {alias_name} started at "
                                      f"{form.cleaned_data['canary_percent']} %: it is checked every minute.")
            target = reverse("experiments:detail", args=[exp.pk])
        else:
            alias = services.alias_deploy(actor=request.user, version_id=version_id, alias=alias_name, reason=reason)
            messages.success(request, f"Alias {alias.name} now serves version {version_id}.")
            target = reverse("registry:detail", args=[version_id])
    except ApplicationError as exc:
        _form_errors(form, exc)
        return _detail(request, version_id, form, status=exc.status_code)
    if getattr(request, "htmx", False):
        from django.http import HttpResponse

        resp = HttpResponse(status=204)
        resp["HX-Redirect"] = target
        return resp
    return redirect(target)


@login_required
def alias_detail(request, name: str):
    """An alias's history (who, when, why) and the rollback to any version it served before."""
    try:
        alias = selectors.alias_get(name)
    except NotFound as exc:
        return render_page(request, "registry/missing.html", {"message": exc.message}, status=404)
    targets = selectors.alias_rollback_targets(name, current_version_id=alias.model_version_id)
    target_for = {t.model_version_id: t.pk for t in targets}  # each version's latest deployment
    history = list(selectors.deployment_history(alias=name, limit=200))
    for d in history:  # every earlier deployment of another version offers "roll back to this"
        d.rollback_to = target_for.get(d.model_version_id) if d.action in selectors.SERVED_ACTIONS else None
        d.why, d.warning = reason_split(d.reason)  # the warning: a vLLM server did not load its adapter
        d.resolved = bool(d.warning) and RESOLVED_MARK in d.warning
    chosen = request.GET.get("to", "")  # preselects a target; anything that is not an id preselects nothing
    chosen = int(chosen) if is_id(chosen) else None
    selected = next((t for t in targets if t.pk == chosen), targets[0] if targets else None)
    return render_page(request, "registry/alias.html", {
        "alias": alias, "history": history, "targets": targets, "selected": selected,
        "chosen": selected.pk if selected else None,
        "experiment": selectors.alias_experiment(name),
        "serving_warning": history[0] if history and history[0].warning and not history[0].resolved else None,
    })


@login_required
@require_POST
def alias_rollback(request, name: str):
    form = RollbackForm(request.POST)
    nxt = request.POST.get("next", "")
    if not form.is_valid():
        messages.error(request, "Pick an earlier deployment to roll back to.")
    else:
        try:
            alias = services.alias_rollback(actor=request.user, alias=name, to_deployment_id=form.cleaned_data["to"],
                                            reason=form.cleaned_data["reason"])
            messages.success(request, f"Alias {alias.name} rolled back to {alias.model_version.name} "
                                      f"(mv-{alias.model_version_id}).")
        except ApplicationError as exc:
            messages.error(request, exc.message)
    if nxt.startswith("/") and not nxt.startswith("//"):
        return redirect(nxt)
    return redirect("registry:alias", name=name)
