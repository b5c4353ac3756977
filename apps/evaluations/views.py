"""Evaluation pages: the list, the new-evaluation form, an evaluation's page (live progress while its job runs —
htmx polls the `live` partial —, then per-component and per-category means as plotly bars with the two versions
side by side, the difference with its bootstrap 95 % interval, and the per-task table) and one task's drill-down
(the prompt, each version's answer, every component's score, error and detail). Cancel: owner or admin."""
from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError, PermissionDenied
from apps.core.htmx import render_page
from apps.core.inputs import parse_id
from apps.datasets.render import tool_rows
from apps.evaluations import selectors, services
from apps.evaluations.forms import EvaluationForm
from workers.engine import rewards


@login_required
def evaluation_list_view(request):
    rows = []
    for ev in selectors.evaluation_list(user=request.user)[:200]:
        sides = (ev.summary or {}).get("sides") or {}
        rows.append({"ev": ev, "a": (sides.get("a") or {}).get("total"), "b": (sides.get("b") or {}).get("total"),
                     "cmp": ((ev.summary or {}).get("comparison") or {}).get("total"),
                     "progress": selectors.progress(ev)})
    return render(request, "evaluations/list.html", {"rows": rows, "can_create": services.can_create(request.user)})


def _choices(user) -> dict:
    from apps.datasets import selectors as datasets
    from apps.registry import selectors as registry

    return {"versions": registry.local_model_version_list(), "dataset_versions": datasets.ready_version_list(user=user)}


@login_required
def evaluation_new_view(request):
    if not services.can_create(request.user):
        raise PermissionDenied("Only members and admins can start evaluations.")
    choices = _choices(request.user)
    status = 200
    if request.method == "POST":
        form = EvaluationForm(request.POST, request.FILES, **choices)
        if form.is_valid():
            kwargs = form.service_kwargs()
            if form.is_valid():
                try:
                    ev = services.evaluation_create(user=request.user, **kwargs)
                except ApplicationError as exc:
                    form.add_service_errors(exc)
                else:
                    messages.success(request, f"Evaluation “{ev.name}” started: the answers are being generated.")
                    return redirect("evaluations:detail", ev.pk)
        status = 422
    else:
        initial = {}
        version_id = parse_id(request.GET.get("version"), what="model version")
        version = next((v for v in choices["versions"] if v.pk == version_id), None)
        if version is not None:
            initial["model_version"] = version.pk
            if version.parent_id:
                initial["compare_to"] = version.parent_id
        form = EvaluationForm(initial=initial, **choices)
    return render(request, "evaluations/new.html",
                  {"form": form, "presets": rewards.PRESETS, "preset_notes": rewards.PRESET_NOTES,
                   "components": rewards.describe(), "has_versions": bool(choices["versions"])}, status=status)


def _chart_data(ev) -> dict:
    s = ev.summary or {}
    sides = s.get("sides") or {}
    names = {"a": ev.model_version.name, "b": ev.compare_to.name if ev.compare_to_id else ""}
    out = {"series": [], "components": [], "categories": []}
    comp_keys = list((sides.get("a") or {}).get("components", {}))
    cat_keys = list((sides.get("a") or {}).get("categories", {}))
    for side in ("a", "b"):
        if side not in sides:
            continue
        sd = sides[side]
        out["series"].append({"name": f"{names[side]} ({'evaluated' if side == 'a' else 'compared with'})",
                              "components": [sd["components"].get(k, {}).get("mean") for k in comp_keys],
                              "categories": [(sd["categories"].get(k) or {}).get("mean") for k in cat_keys]})
    out["components"] = [sides["a"]["components"][k]["label"] for k in comp_keys] if comp_keys else []
    out["categories"] = [sides["a"]["categories"][k]["label"] for k in cat_keys] if cat_keys else []
    return out


def _rows(ev, summary_sides) -> tuple[list, list]:
    """(component rows, category rows) for the tables: each side's mean, the difference and its interval."""
    cmp_ = (ev.summary or {}).get("comparison") or {}
    a = summary_sides.get("a") or {}
    b = summary_sides.get("b") or {}
    comps = []
    for name, c in (a.get("components") or {}).items():
        comps.append({"name": name, "label": c["label"], "weight": c["weight"], "category": c["category"],
                      "category_label": rewards.CATEGORIES.get(c["category"], c["category"]), "a": c,
                      "b": (b.get("components") or {}).get(name), "cmp": (cmp_.get("components") or {}).get(name)})
    cats = []
    for key, c in (a.get("categories") or {}).items():
        cats.append({"key": key, "label": c["label"], "a": c, "b": (b.get("categories") or {}).get(key),
                     "cmp": (cmp_.get("categories") or {}).get(key)})
    return comps, cats


@login_required
def evaluation_detail_view(request, evaluation_id: int):
    ev = selectors.evaluation_get(user=request.user, evaluation_id=evaluation_id)
    job = selectors.job_state(ev)
    sides = (ev.summary or {}).get("sides") or {}
    comps, cats = _rows(ev, sides)
    answers = selectors.answers_by_task(ev)
    task_rows = []
    for t in ev.tasks.order_by("index"):
        got = answers.get(t.pk, {})
        a, b = got.get("a"), got.get("b")
        diff = a.total - b.total if a and b and a.total is not None and b.total is not None else None
        task_rows.append({"task": t, "prompt": selectors.prompt_text(t.task)[:160], "a": a, "b": b, "diff": diff})
    page = Paginator(task_rows, 50).get_page(request.GET.get("page"))
    ctx = {"ev": ev, "job": job, "active": bool(job and job["active"]), "progress": selectors.progress(ev),
           "sides": sides, "cmp": ((ev.summary or {}).get("comparison") or {}).get("total"), "components": comps,
           "categories": cats, "page": page, "chart": _chart_data(ev),
           "can_manage": services.can_manage(request.user, ev),
           "weights": sorted(ev.weights.items(), key=lambda kv: -kv[1]),
           "preset_note": rewards.PRESET_NOTES.get(ev.preset, "")}
    response = render_page(request, "evaluations/detail.html", ctx, partial="live")
    if getattr(request, "htmx", False) and not ctx["active"]:
        response["HX-Refresh"] = "true"  # the job finished while the page polled: show the whole page anew
    return response


@login_required
def task_view(request, evaluation_id: int, task_id: int):
    ev = selectors.evaluation_get(user=request.user, evaluation_id=evaluation_id)
    task = selectors.task_get(evaluation=ev, task_id=task_id)
    got = {a.side: a for a in task.answers.all()}
    names = sorted({n for a in got.values() for n in a.components} | set(ev.weights))
    comp_rows = []
    for n in names:
        meta = rewards.COMPONENTS.get(n)
        comp_rows.append({"name": n, "label": meta.label if meta else n, "weight": ev.weights.get(n),
                          "a": (got["a"].components.get(n) if "a" in got else None),
                          "b": (got["b"].components.get(n) if "b" in got else None)})
    prompt = task.task.get("prompt")
    messages_ = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    extra = {k: v for k, v in task.task.items() if k not in ("prompt", "metadata", "tools")}
    meta = {k: v for k, v in (task.task.get("metadata") or {}).items() if k != "reference"}
    neighbours = list(ev.tasks.order_by("index").values_list("pk", flat=True))
    i = neighbours.index(task.pk)
    return render(request, "evaluations/task.html", {
        "ev": ev, "task": task, "messages_": messages_, "a": got.get("a"), "b": got.get("b"), "rows": comp_rows,
        "reference": (task.task.get("metadata") or {}).get("reference"),
        "extra": [(k, v if isinstance(v, str) else json.dumps(v, indent=2)) for k, v in extra.items()],
        "tools": tool_rows(task.task.get("tools")),
        "meta": [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()],
        "prev_id": neighbours[i - 1] if i > 0 else None,
        "next_id": neighbours[i + 1] if i + 1 < len(neighbours) else None})


@login_required
@require_POST
def cancel_view(request, evaluation_id: int):
    try:
        services.evaluation_cancel(user=request.user, evaluation_id=evaluation_id)
        messages.success(request, "Cancel asked: the answers so far are kept.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("evaluations:detail", evaluation_id)
