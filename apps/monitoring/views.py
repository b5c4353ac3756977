"""The Monitoring page (/monitoring/): traffic plots per alias and version, worker health, alerts and their rules,
recent rollout events. Views parse input, call selectors and services and render; every plot is drawn on the
server as SVG first (apps.monitoring.charts) and replaced by plotly (static/js/monitoring.js). A rule's field
errors re-render the page with the form (422); other service errors come back as messages."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.core.exceptions import ApplicationError
from apps.core.htmx import render_page
from apps.monitoring import charts, selectors, services
from apps.monitoring.forms import FilterForm, RuleForm
from apps.monitoring.models import METRICS, Alert, RollupState


def _context(request, *, rule_form: RuleForm | None = None) -> dict:
    known = selectors.known_cells()
    alias = request.GET.get("alias") or None
    if alias and alias in known["aliases"]:
        known["targets"] = selectors.known_cells(alias=alias)["targets"]
    query = None
    if request.GET:
        query = request.GET.copy()
        query.setdefault("range", "1h")
    form = FilterForm(query, aliases=known["aliases"], targets=known["targets"])
    if form.is_bound:
        form.is_valid()
    sel = form.selection()
    minutes = selectors.RANGES[sel["range"]]
    data = selectors.series(alias=sel["alias"], target=sel["version"], minutes=minutes)
    overview = selectors.workers_overview(minutes=minutes)
    traffic = charts.traffic_charts(data)
    health = charts.health_charts(overview, minutes)
    alerts = list(selectors.alerts_list(limit=50))
    firing = [a for a in alerts if a.state == Alert.State.FIRING]
    rules = list(selectors.alert_rules())
    counts = {}
    for a in firing:
        counts[a.rule_id] = counts.get(a.rule_id, 0) + 1
    is_admin = request.user.is_hub_admin
    rollup = RollupState.objects.filter(name="requests").first()
    return {
        "form": form, "sel": sel, "ranges": list(selectors.RANGES), "series": data, "bucket_min": data["bucket_s"] // 60,
        "traffic_charts": [c for c in traffic if "traces" in c], "health_charts": [c for c in health if "traces" in c],
        "traffic_notes": [c for c in traffic if "note" in c], "health_notes": [c for c in health if "note" in c],
        "charts_json": [{k: v for k, v in c.items() if k != "svg"} for c in traffic + health if "traces" in c],
        "overview": overview, "firing": firing, "recent": [a for a in alerts if a.state != Alert.State.FIRING][:20],
        "rules": [{"r": r, "spec": METRICS.get(r.metric), "firing": counts.get(r.pk, 0)} for r in rules],
        "is_admin": is_admin, "rule_form": rule_form or (RuleForm() if is_admin else None),
        "aliases_seen": known["aliases"], "rollup": rollup,
        "rollup_age_s": int((timezone.now() - rollup.last_run_at).total_seconds()) if rollup and rollup.last_run_at else None,
        "rollout_events": selectors.rollout_events(limit=20, alias=sel["alias"]),
    }


@login_required
@require_GET
def monitoring_view(request):
    return render_page(request, "monitoring/page.html", _context(request))


@login_required
@require_POST
def rule_create_view(request):
    if not request.user.is_hub_admin:  # the service says so too; a member never sees the form
        messages.error(request, "Only admins can do this.")
        return redirect("monitoring:page")
    form = RuleForm(request.POST)
    if form.is_valid():
        try:
            rule = services.alert_rule_create(actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            if exc.status_code != 422:
                messages.error(request, exc.message)
                return redirect("monitoring:page")
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Alert rule “{rule.name}” added.")
            return redirect("monitoring:page")
    return render_page(request, "monitoring/page.html", _context(request, rule_form=form), status=422)


@login_required
@require_POST
def rule_action_view(request, rule_id: int):
    action = request.POST.get("action")
    try:
        if action == "delete":
            services.alert_rule_delete(actor=request.user, rule_id=rule_id)
            messages.success(request, "Alert rule deleted.")
        elif action in ("enable", "disable"):
            services.alert_rule_update(actor=request.user, rule_id=rule_id, enabled=action == "enable")
            messages.success(request, f"Alert rule {action}d.")
        else:
            messages.error(request, "Unknown action.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("monitoring:page")


@login_required
@require_POST
def alert_ack_view(request, alert_id: int):
    try:
        services.alert_acknowledge(actor=request.user, alert_id=alert_id)
        messages.success(request, "Alert acknowledged.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("monitoring:page")
