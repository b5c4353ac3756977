"""Traffic pages: Requests (filters, full-text search, keyset pages, "Add to dataset"), one request's viewer,
capture rules, Proxy health; and `GET /v1/health` (mounted by apps/proxy/urls.py).

Views parse input, call selectors / services and render; every ApplicationError not shown as a field error
becomes its status page (apps.core.error_pages). Content is rendered by templates with autoescaping; JSON
is pretty-printed text inside <pre>, never marked safe."""
from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.core.exceptions import ApplicationError
from apps.core.htmx import render_page
from apps.core.templatetags.hub_format import target_text
from apps.datasets.render import render_messages, tool_rows
from apps.traffic import convert, health, selectors, services
from apps.traffic.forms import CaptureRuleForm, ExportForm, RequestFilterForm, since_value
from apps.traffic.models import TrafficExport
from apps.traffic.services.captures import log_field

FILTER_PARAMS = ("q", "model", "key", "status", "served_by", "fallback", "latency_min", "latency_max", "since",
                 "until")


def _filter_form(request, data: QueryDict) -> RequestFilterForm:
    data = data.copy()
    last = data.get("last")
    if last and not data.get("since"):
        when = since_value(last)
        if when is not None:
            data["since"] = when.strftime("%Y-%m-%dT%H:%M:%S")
    return RequestFilterForm(data, keys=selectors.api_keys_for(user=request.user))


def _filter_query(data: QueryDict) -> str:
    q = QueryDict(mutable=True)
    for k in (*FILTER_PARAMS, "last"):
        v = data.get(k)
        if v:
            q[k] = v
    return q.urlencode()


def _requests_context(request, data: QueryDict, *, export_form: ExportForm | None = None) -> tuple[dict, int]:
    form = _filter_form(request, data)
    status = 200
    pg = None
    rows = []
    if form.is_valid():
        qs = selectors.filtered(user=request.user, filters=form.filters())
        pg = selectors.page(qs, before=data.get("before"), after=data.get("after"))
        labels = selectors.key_labels(e.api_key_id for e in pg.rows)
        rows = [{"e": e, "key": labels.get(e.api_key_id)} for e in pg.rows]
    else:
        status = 422
    if export_form is not None and export_form.errors:
        status = 422
    query = _filter_query(data)
    keep = QueryDict(_filter_query(data), mutable=True)
    for k in ("since", "until", "last"):
        keep.pop(k, None)
    last_links = []
    for value, label in (("", "any time"), ("1h", "last hour"), ("24h", "24 h"), ("7d", "7 days"), ("30d", "30 days")):
        q = keep.copy()
        if value:
            q["last"] = value
        last_links.append((value, label, "?" + q.urlencode()))
    selected_ids = set()
    if export_form is not None:
        selected_ids = {int(i) for i in data.getlist("ids") if str(i).isascii() and str(i).isdigit() and len(i) < 19}
    ctx = {
        "form": form, "page": pg, "rows": rows, "query": query, "last": data.get("last") or "",
        "last_links": last_links, "selected_ids": selected_ids,
        "models_seen": selectors.recent_values(user=request.user, field="model"),
        "targets_seen": selectors.recent_values(user=request.user, field="served_by"),
        "datasets": selectors.writable_datasets(user=request.user),
        "export_form": export_form or ExportForm(), "exports": selectors.export_list(user=request.user, limit=5),
        "is_admin": selectors.is_admin(request.user), "filter_items": [(k, data.get(k)) for k in FILTER_PARAMS
                                                                       if data.get(k)],
    }
    return ctx, status


@login_required
@require_GET
def requests_view(request):
    ctx, status = _requests_context(request, request.GET)
    return render_page(request, "traffic/requests.html", ctx, partial="results", status=status)


@login_required
@require_POST
def export_view(request):
    form = ExportForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["scope"] == "selected":
                export = services.traffic_export(user=request.user, dataset_id=data["dataset"] or None,
                                                 new_dataset=data["new_dataset"], ids=data["ids"])
            else:
                filter_form = _filter_form(request, request.POST)
                if not filter_form.is_valid():
                    form.add_error(None, "The filter is not valid: fix it first.")
                    raise _Shown()
                export = services.traffic_export(user=request.user, dataset_id=data["dataset"] or None,
                                                 new_dataset=data["new_dataset"], filters=filter_form.filters())
        except _Shown:
            pass
        except ApplicationError as exc:
            form.add_service_errors(exc)
        else:
            return _after_export(request, export)
    ctx, status = _requests_context(request, request.POST, export_form=form)
    ctx["export_open"] = True
    return render_page(request, "traffic/requests.html", ctx, status=422)


class _Shown(Exception):
    pass


def _after_export(request, export: TrafficExport):
    v = export.version
    counts = export.counts or {}
    if v.status == v.Status.READY:
        messages.success(request, f"{export.dataset.name} v{v.number}: {v.note.removeprefix('From proxy traffic: ')}.")
    elif v.status == v.Status.FAILED:
        messages.error(request, f"No version was made: {v.error}")
        back = request.POST.get("back") or ""
        return redirect(reverse("traffic:requests") + (f"?{back}" if back and "\n" not in back else ""))
    else:
        messages.success(request, f"Adding {counts.get('selected', 0)} requests to {export.dataset.name} "
                                  f"v{v.number} on a worker: follow it below or on the Jobs page.")
    return redirect(f"{reverse('datasets:detail', args=[export.dataset_id])}?version={v.pk}")


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@login_required
@require_GET
def request_detail_view(request, log_id: int):
    entry = selectors.entry_get(user=request.user, log_id=log_id)
    row = entry.log
    conv = convert.conversation(row.endpoint, row.request, row.response)
    attempts = log_field(row, None, "attempts") or []
    ctx = {
        "entry": entry, "row": row, "turns": render_messages(conv.messages, conv.tools), "conv": conv,
        "tools": tool_rows(conv.tools),
        "attempts": [a for a in attempts if isinstance(a, dict)] if isinstance(attempts, list) else [],
        "upstream_ms": log_field(row, None, "upstream_ms"),
        "overhead_ms": log_field(row, None, "overhead_ms"),
        "key_label": selectors.key_labels([entry.api_key_id]).get(entry.api_key_id),
        "raw_request": _pretty(row.request), "raw_response": _pretty(row.response),
        "datasets": selectors.writable_datasets(user=request.user), "export_form": ExportForm(),
        "back": request.GET.get("back") or "",
    }
    return render_page(request, "traffic/detail.html", ctx)


# -- capture rules -----------------------------------------------------------------------------------
@login_required
def rules_view(request):
    datasets = selectors.writable_datasets(user=request.user)
    form = CaptureRuleForm(request.POST or None, datasets=datasets)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            d = form.cleaned_data
            try:
                rule = services.rule_create(user=request.user, pattern=d["pattern"], percentage=d["percentage"],
                                            dataset_id=d["dataset"], only_successful=d["only_successful"])
            except ApplicationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, f"Capturing {rule.percentage:g}% of {rule.pattern} into "
                                          f"{rule.dataset.name}.")
                return redirect("traffic:rules")
        status = 422
    from apps.traffic.services.captures import capture_batch, capture_max_wait_s

    rules = list(selectors.rule_list(user=request.user))
    waiting = _waiting_counts(rules)
    return render_page(request, "traffic/rules.html", {
        "form": form, "rules": [{"r": r, "waiting": waiting.get(r.pk, 0)} for r in rules],
        "models_seen": selectors.recent_values(user=request.user, field="model"),
        "batch": capture_batch(), "max_wait_min": round(capture_max_wait_s() / 60, 1),
        "exports": [e for e in selectors.export_list(user=request.user, limit=10) if e.source == "capture"],
        "is_admin": selectors.is_admin(request.user),
    }, status=status)


def _waiting_counts(rules) -> dict[int, int]:
    from django.db.models import Count

    from apps.traffic.models import CaptureItem

    rows = (CaptureItem.objects.filter(rule__in=[r.pk for r in rules], export__isnull=True).values("rule_id")
            .annotate(n=Count("pk")))
    return {r["rule_id"]: r["n"] for r in rows}


@login_required
@require_POST
def rule_action_view(request, rule_id: int):
    action = request.POST.get("action")
    try:
        if action == "delete":
            services.rule_delete(user=request.user, rule_id=rule_id)
            messages.success(request, "Capture rule deleted.")
        elif action in ("enable", "disable"):
            services.rule_update(user=request.user, rule_id=rule_id, enabled=action == "enable")
            messages.success(request, f"Capture rule {action}d.")
        elif action == "flush":
            made = services.capture_flush(rule_id=rule_id, force=True) if _may_flush(request.user, rule_id) else None
            if made is None:
                messages.error(request, "Only the rule's owner or an admin can cut its batch.")
            elif made:
                v = made[0].version
                messages.success(request, f"Cut into {made[0].dataset.name} v{v.number} ({v.status}).")
            else:
                messages.info(request, "Nothing is waiting.")
        else:
            messages.error(request, "Unknown action.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("traffic:rules")


def _may_flush(user, rule_id: int) -> bool:
    return selectors.rule_list(user=user).filter(pk=rule_id).exists()


# -- health ------------------------------------------------------------------------------------------
@login_required
@require_GET
def health_view(request):
    window = request.GET.get("window") if request.GET.get("window") in health.WINDOWS else "1h"
    body = health.health()
    series = health.series(window)
    series["labels"] = {label: target_text(label) for label in series["targets"]}  # the legends' names
    return render_page(request, "traffic/health.html", {
        "health": body, "series": series, "window": window, "windows": list(health.WINDOWS),
    })


@csrf_exempt
async def health_json(request):
    """GET /v1/health. Without credentials: the overall status only (load balancers, uptime checks); with an
    API key or a dashboard session: every target. A wrong key is a 401 in OpenAI's error shape."""
    from apps.proxy.errors import ProxyError, json_response, openai_error_response
    from apps.proxy.gateway import Call, authenticate

    call = Call(endpoint="health")
    if request.method != "GET":
        return openai_error_response(ProxyError(405, f"Method {request.method} is not allowed here.",
                                                code="method_not_allowed"), call.request_id)
    credentials = bool(request.headers.get("authorization") or request.headers.get("x-api-key"))
    try:
        await authenticate(request, call)
        authed = True
    except ProxyError as exc:
        if credentials:
            return openai_error_response(exc, call.request_id)
        authed = False
    body = await sync_to_async(health.health)()
    if not authed:
        body = {"status": body["status"], "time": body["time"]}
    return json_response(body, headers={"x-request-id": call.request_id, "cache-control": "no-store"})
