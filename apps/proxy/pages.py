"""Dashboard pages of providers and alias chains (admins only): the providers list with the add form, a
provider's edit page (with "fetch models"), and an alias's chain editor. Forms post with htmx and fall back to
plain posts; the services (apps.proxy.providers) validate, and their field errors land on the form."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.exceptions import ApplicationError, NotFound
from apps.core.htmx import render_page
from apps.proxy import breaker, providers, selectors
from apps.proxy.forms import ChainForm, ProviderForm
from apps.registry.models import ModelVersion


def _admin(request):
    if not getattr(request.user, "is_hub_admin", False):
        raise PermissionDenied("Only admins can manage providers and chains.")


def _go(request, url: str, status_ok_message: str):
    messages.success(request, status_ok_message)
    if getattr(request, "htmx", False):
        resp = HttpResponse(status=204)
        resp["HX-Redirect"] = url
        return resp
    return redirect(url)


def _provider_errors(form, exc: ApplicationError) -> None:
    for e in exc.errors or [{"field": None, "message": exc.message}]:
        field = (e.get("field") or "").split(".")[-1]
        form.add_error(field if field in form.fields else None, e["message"])


def _providers_context(form):
    rows = []
    for p in selectors.provider_list().prefetch_related("targets__chain"):
        rows.append({"p": p, "used_by": sorted({t.chain.name for t in p.targets.all()})})
    return {"rows": rows, "form": form, "chains": selectors.chain_list()}


@login_required
@require_http_methods(["GET", "POST"])
def provider_list(request):
    _admin(request)
    form = ProviderForm(request.POST or None, initial={"enabled": True})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                p = providers.provider_create(actor=request.user, **form.service_kwargs(editing=False))
                return _go(request, reverse("proxy_pages:provider", args=[p.pk]), f"Provider {p.name} added.")
            except ApplicationError as exc:
                _provider_errors(form, exc)
                status = exc.status_code
        else:
            status = 422
    return render_page(request, "proxy/providers.html", _providers_context(form),
                       partial="provider_form" if status != 200 else None, status=status)


def _detail(request, provider_id: int, form, status: int = 200, partial: str | None = None):
    try:
        p = selectors.provider_get(provider_id)
    except NotFound as exc:
        return render_page(request, "proxy/missing.html", {"message": exc.message}, status=404)
    labels = sorted({f"provider:{p.name}/{t.model}" for t in p.targets.all()})
    states = {s["target"]: s for s in breaker.snapshot()}
    return render_page(request, "proxy/provider.html", {
        "p": p, "form": form, "used_by": sorted({t.chain.name for t in p.targets.select_related("chain")}),
        "targets": [states.get(label) or {"target": label, "state": "closed", "failures": 0} for label in labels],
        "fetch_error": getattr(request, "_fetch_error", ""),
    }, partial=partial or ("provider_form" if status != 200 else None), status=status)


@login_required
@require_http_methods(["GET", "POST"])
def provider_detail(request, provider_id: int):
    _admin(request)
    if request.method == "GET":
        try:
            form = ProviderForm.for_provider(selectors.provider_get(provider_id))
        except NotFound:
            form = ProviderForm()
        return _detail(request, provider_id, form)
    form = ProviderForm(request.POST)
    if not form.is_valid():
        return _detail(request, provider_id, form, status=422)
    try:
        p = providers.provider_update(actor=request.user, provider_id=provider_id,
                                      **form.service_kwargs(editing=True))
    except ApplicationError as exc:
        _provider_errors(form, exc)
        return _detail(request, provider_id, form, status=exc.status_code)
    return _go(request, reverse("proxy_pages:provider", args=[p.pk]), f"Provider {p.name} saved.")


@login_required
@require_POST
def provider_fetch_models(request, provider_id: int):
    _admin(request)
    try:
        providers.provider_models_fetch(actor=request.user, provider_id=provider_id)
    except ApplicationError as exc:
        request._fetch_error = exc.message
    return _detail(request, provider_id, ProviderForm(), partial="models")


@login_required
@require_POST
def provider_delete(request, provider_id: int):
    _admin(request)
    try:
        providers.provider_delete(actor=request.user, provider_id=provider_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("proxy_pages:provider", provider_id=provider_id)
    messages.success(request, "Provider removed.")
    return redirect("proxy_pages:providers")


def _choices():
    out = [{"value": f"version:{v.pk}", "label": f"{v.name} (mv-{v.pk})"}
           for v in ModelVersion.objects.order_by("-created_at")[:200]]
    for p in selectors.provider_list():
        for m in (p.model_ids or [])[:500]:
            out.append({"value": f"provider:{p.name}/{m}", "label": p.name})
    return out


def _chain_page(request, name: str, form: ChainForm, status: int = 200):
    try:
        chain = selectors.chain_get(name)
    except NotFound:
        chain = None
    return render_page(request, "proxy/chain.html", {
        "name": name, "chain": chain, "form": form, "choices": _choices(),
        "providers": selectors.provider_list(),
    }, partial="chain_form" if status != 200 else None, status=status)


def _alias_name_ok(name: str) -> bool:
    import re

    from apps.core.inputs import SLUG_PATTERN

    return bool(re.fullmatch(SLUG_PATTERN, name)) and len(name) <= 100


@login_required
@require_http_methods(["GET", "POST"])
def chain_edit(request, name: str):
    """An alias's chain editor. An alias that does not exist yet is a 404 unless `?new=1` (the "new alias
    chain" form sends it there): saving the chain creates it."""
    _admin(request)
    if not _alias_name_ok(name):
        return render_page(request, "proxy/missing.html", {"message": f"{name!r} is not an alias name."}, status=404)
    if request.method == "GET":
        try:
            chain = selectors.chain_get(name)
        except NotFound as exc:
            if request.GET.get("new") != "1":
                return render_page(request, "proxy/missing.html", {"message": exc.message}, status=404)
            chain = None
        return _chain_page(request, name, ChainForm.for_chain(chain))
    form = ChainForm(request.POST)
    if not form.is_valid():
        return _chain_page(request, name, form, status=422)
    try:
        providers.chain_set(actor=request.user, name=name, **form.service_kwargs())
    except ApplicationError as exc:
        form.add_service_errors(exc.errors or [{"field": None, "message": exc.message}])
        return _chain_page(request, name, form, status=exc.status_code)
    return _go(request, reverse("proxy_pages:chain", args=[name]), f"Chain of {name} saved.")


@login_required
@require_POST
def chain_new(request):
    _admin(request)
    name = (request.POST.get("name") or "").strip()
    if not _alias_name_ok(name):
        messages.error(request, "An alias name is lower-case letters, digits, - and _ (e.g. coder).")
        return redirect("proxy_pages:providers")
    return redirect(reverse("proxy_pages:chain", args=[name]) + "?new=1")


@login_required
@require_POST
def chain_remove(request, name: str):
    _admin(request)
    try:
        providers.chain_delete(actor=request.user, name=name)
        messages.success(request, f"The chain of {name} is removed; the alias serves its deployed version.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("proxy_pages:providers")
