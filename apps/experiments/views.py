"""Dashboard pages of experiments and rollouts: the list (running and ended, a form to start an experiment,
recent rollout events) and one experiment (verdict, per-arm metrics, comparisons, SRM, plots, events and the
admin actions: stop, promote the winner, roll a canary back). Canaries start from a model version's page."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError, NotFound
from apps.core.htmx import render_page
from apps.experiments import canary, charts, selectors, services
from apps.experiments.forms import ActionForm, ExperimentForm
from apps.experiments.verdict import METRICS, difference_text, experiment_report


def _form(data=None) -> ExperimentForm:
    from apps.proxy.selectors import alias_names
    from apps.registry.selectors import model_version_list

    return ExperimentForm(data, aliases=sorted(alias_names()), versions=model_version_list()[:300])


@login_required
def experiment_list(request):
    form = _form(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                exp = services.experiment_create(actor=request.user, alias=form.cleaned_data["alias"],
                                                 arms=form.arms(), sticky_by=form.cleaned_data["sticky_by"],
                                                 metric=form.cleaned_data["metric"], name=form.cleaned_data["name"])
                messages.success(request, f"Experiment {exp.pk} on {exp.alias} started.")
                return redirect("experiments:detail", experiment_id=exp.pk)
            except ApplicationError as exc:
                for err in exc.errors or [{"field": None, "message": exc.message}]:
                    form.add_service_error(err.get("field"), err["message"])
                status = exc.status_code
        else:
            status = 422
    experiments = list(selectors.experiment_list()[:200])
    return render_page(request, "experiments/list.html", {
        "running": [e for e in experiments if e.running], "ended": [e for e in experiments if not e.running],
        "form": form, "events": selectors.rollout_events_recent(limit=20),
    }, status=status)


def _pct(v, nd=1):
    return "—" if v is None else f"{v * 100:.{nd}f} %"


def _num(v, unit="", nd=0):
    return "—" if v is None else f"{v:,.{nd}f}{unit}"


def _count(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e4 else f"{n:,}"


def _arm_rows(report: dict) -> list[dict]:
    rows = []
    for a in report["arms"]:
        m = a["metrics"]
        rows.append({**a, "requests": m["requests"], "error_rate": _pct(m["error_rate"]),
                     "errors": m["errors"], "p50": _num(m["p50_ms"]), "p95": _num(m["p95_ms"], " ms"),
                     "ttft50": _num(m["ttft_p50_ms"]), "ttft95": _num(m["ttft_p95_ms"], " ms"),
                     "tokens": f"{_count(m['prompt_tokens'])} / {_count(m['completion_tokens'])}",
                     "tools": f"{_pct(m['tool_call_validity'])} of {m['tool_calls']}" if m["tool_calls"] else "—",
                     "feedback": f"{m['feedback_mean']:.2f} (n = {m['feedback_n']})" if m["feedback_n"] else "—"})
    return rows


def _comparison_rows(report: dict, exp) -> list[dict]:
    out = []
    for metric, (label, direction) in METRICS.items():
        def fmt(v, metric=metric):
            return difference_text(metric, v)

        rows = []
        for arm, r in report["comparisons"][metric].items():
            significant = r["ran"] and r["p"] <= report["alpha"]
            rows.append({"arm": arm, "diff": fmt(r["diff"]), "ci": f"{fmt(r['ci_low'])} … {fmt(r['ci_high'])}"
                         if r["ci_low"] is not None else "—", "p": f"{r['p']:.3g}" if r["ran"] else "—",
                         "ran": r["ran"], "significant": significant,
                         "reading": ("not tested yet" if not r["ran"] else
                                     ("better" if r["better"] else "worse") if significant else "no difference yet")})
        out.append({"metric": metric, "label": label, "primary": metric == exp.metric,
                    "better": "higher" if direction > 0 else "lower", "rows": rows})
    out.sort(key=lambda c: not c["primary"])
    return out


def _when(iso: str | None):
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(iso) if iso else None
    except (TypeError, ValueError):
        return None


def _canary_view(exp, report: dict) -> dict | None:
    if exp.kind != "canary":
        return None
    st = exp.stats or {}
    last = (st.get("last") or {}).get("canary") or {}
    rows = []
    for key, limit in (exp.thresholds or {}).items():
        direction, field, count_key, _lo, _hi, label = canary.THRESHOLDS[key]
        value, n = last.get(field), last.get(count_key) or 0
        pct = key in ("error_rate", "tool_call_validity")
        rows.append({"label": label, "limit": _pct(limit, 0) if pct else _num(limit, nd=2 if limit < 10 else 0),
                     "value": (_pct(value) if pct else _num(value, nd=2 if value < 10 else 0)) if value is not None
                     else "—",
                     "direction": "≤" if direction == "max" else "≥", "n": n,
                     "judged": value is not None and n >= exp.min_requests,
                     "ok": value is None or (value <= limit if direction == "max" else value >= limit)})
    from django.utils import timezone

    held = min(exp.hold_minutes, ((exp.ended_at or timezone.now()) - exp.started_at).total_seconds() / 60)
    window = st.get("window") or {}
    return {"rows": rows, "evaluations": st.get("evaluations", 0), "last_evaluated_at": _when(st.get("last_evaluated_at")),
            "window_start": _when(window.get("start")), "window_end": _when(window.get("end")),
            "ready_at": _when(st.get("ready_at")), "held_minutes": held,
            "held_pct": round(100 * held / exp.hold_minutes) if exp.hold_minutes else 100}


@login_required
def experiment_detail(request, experiment_id: int):
    try:
        exp = selectors.experiment_get(experiment_id)
    except NotFound as exc:
        return render_page(request, "experiments/missing.html", {"message": exc.message}, status=404)
    report = experiment_report(exp)
    names = [a["name"] for a in report["arms"]]
    series = charts.experiment_series(exp, names)
    return render_page(request, "experiments/detail.html", {
        "exp": exp, "report": report, "arms": _arm_rows(report), "comparisons": _comparison_rows(report, exp),
        "series": series,
        "svg": charts.charts_svg(series), "events": selectors.events_for(exp)[:100],
        "canary": _canary_view(exp, report), "units_total": sum(a["units"] for a in report["arms"]),
        "srm_rows": [{"name": a["name"], "weight": a["weight"], "units": a["units"], "expected": f"{e:,.1f}"}
                     for a, e in zip(report["arms"], report["srm"]["expected"])]
        if len(report["srm"]["expected"]) == len(report["arms"]) else [],
    })


@login_required
@require_POST
def experiment_action(request, experiment_id: int):
    form = ActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown action.")
        return redirect("experiments:detail", experiment_id=experiment_id)
    action, reason = form.cleaned_data["action"], form.cleaned_data["reason"]
    try:
        if action == "stop":
            services.experiment_stop(actor=request.user, experiment_id=experiment_id, reason=reason)
            messages.success(request, f"Experiment {experiment_id} stopped; the alias serves what it served before.")
        elif action == "promote":
            exp = services.experiment_promote(actor=request.user, experiment_id=experiment_id,
                                              arm=form.cleaned_data["arm"] or None, reason=reason)
            messages.success(request, f"Arm {exp.winner} promoted: {exp.alias} serves it now.")
        else:
            canary.canary_rollback(actor=request.user, experiment_id=experiment_id, reason=reason)
            messages.success(request, f"Canary {experiment_id} rolled back.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("experiments:detail", experiment_id=experiment_id)
