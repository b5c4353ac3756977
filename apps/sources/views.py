"""Dashboard pages of code sources (mounted at /sources/): the list (with the first-run demo), a new source
(with "Discover"), a source (repositories, rules, the analysis with its plots, generations), the generation
options with the estimate before launch, a generation (live progress; summary, version, diff, bundle, send to
review), and an example's provenance (its source lines at its commit). Parse input, call a selector or a
service, render; no ORM writes here."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError, NotFound
from apps.core.htmx import render_page
from apps.core.inputs import form_initial_from_query, parse_id, query_text
from apps.sources import selectors, services
from apps.sources.forms import OptionsForm, RulesForm, SourceForm
from apps.sources.models import JobStatus

GENERATOR_LABELS = {
    "docstring": "Docstring / comment → implementation",
    "fim": "Masked function (fill in the middle)",
    "commit": "Commit → change",
    "tests_to_impl": "Tests → implementation",
    "impl_to_tests": "Implementation → tests",
    "mutation": "Bug → fix (AST mutation)",
    "docs_qa": "Questions and answers from docs",
    "tasks": "Development tasks",
    "config": "Config files",
}


def _generators():
    return [(g, GENERATOR_LABELS.get(g, g)) for g in services.generator_names()]


def _providers():
    from apps.proxy.models import Provider

    return list(Provider.objects.filter(enabled=True, kind=Provider.Kind.OPENAI).order_by("name"))


def review_url(version_id: int) -> str | None:
    """The review app's task-create page with the version preselected (None while that app is not mounted)."""
    try:
        return f"{reverse('review:new')}?dataset_version={version_id}"
    except NoReverseMatch:
        return None


@login_required
def source_list_view(request):
    sources = list(selectors.source_list(user=request.user).prefetch_related("repos"))
    latest = {}
    for g in selectors.generation_list(user=request.user).filter(source__in=sources):
        latest.setdefault(g.source_id, g)
    rows = [{"s": s, "generation": latest.get(s.pk)} for s in sources]
    return render_page(request, "sources/list.html", {
        "rows": rows, "can_create": services.can_create(request.user),
        "has_demo": any(s.demo for s in sources)})


@login_required
@require_POST
def demo_view(request):
    try:
        source = services.demo_source(user=request.user)
        if not source.analyses.exists():
            services.analysis_start(user=request.user, source_id=source.pk)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("sources:list")
    messages.success(request, "The hub's own code is a source now: its analysis is running.")
    return redirect("sources:detail", source_id=source.pk)


@login_required
def source_new_view(request):
    if not services.can_create(request.user):
        raise NotFound("Only admins and members can add code sources.")
    status = 200
    if request.method == "POST":
        form = SourceForm(request.POST, request.FILES)
        if form.is_valid():
            d = form.cleaned_data
            try:
                chosen = request.POST.getlist("repo")
                repos = [{"path": p, "role": "core" if p == request.POST.get("core") else "plugin"} for p in chosen]
                source = services.source_create(
                    user=request.user, kind=d["kind"], location=d.get("location"), name=d.get("name") or "",
                    archive=d.get("archive"), archive_name=getattr(d.get("archive"), "name", None),
                    repos=repos or None, plugins=(d.get("plugins") or "").splitlines(), rules=d.get("rules") or None)
                services.analysis_start(user=request.user, source_id=source.pk)
            except ApplicationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, f"Source “{source.name}” added; its analysis is running.")
                return redirect("sources:detail", source_id=source.pk)
        status = 422
    else:
        form = SourceForm(initial={"kind": query_text(request.GET, "kind") or "path"})
    return render_page(request, "sources/new.html", {"form": form}, status=status)


@login_required
@require_POST
def discover_view(request):
    """htmx: the repositories in the folder typed in the form, as checkboxes (core + plugins)."""
    found, error = [], ""
    try:
        found = services.source_discover(user=request.user, path=request.POST.get("location", ""))
    except ApplicationError as exc:
        error = exc.message
    return render_page(request, "sources/new.html", {"found": found, "discover_error": error}, partial="discovered")


def _analysis_context(source, analysis):
    from apps.core.svgchart import bar_chart, bars

    ctx = {"analysis": analysis, "totals": None, "charts": None, "chart_svg": {}}
    if analysis is None or analysis.status != JobStatus.SUCCEEDED:
        return ctx
    totals = (analysis.results or {}).get("totals") or {}
    data = selectors.chart_data(totals)
    size = {"width": 520, "height": 320}
    svg = {}
    if data["languages"]["names"]:
        svg["languages"] = bar_chart(data["languages"]["names"], data["languages"]["loc"], color="#2f5fd0",
                                     title="Language mix (lines of code)", x_title="language", y_title="lines",
                                     **size)
    if data["complexity"]["buckets"]:
        svg["complexity"] = bar_chart(data["complexity"]["buckets"], data["complexity"]["counts"], color="#fdb022",
                                      title="Cyclomatic complexity per function", x_title="complexity",
                                      y_title="functions", **size)
    if data["components"]["names"]:
        svg["components"] = bar_chart(data["components"]["names"], data["components"]["counts"], color="#32d583",
                                      title="Components", x_title="component", y_title="count", **size)
    if data["churn"]["months"]:
        svg["churn"] = bars([{"name": "added", "x": data["churn"]["months"], "y": data["churn"]["added"],
                              "color": "#2ca02c"},
                             {"name": "removed", "x": data["churn"]["months"], "y": data["churn"]["removed"],
                              "color": "#d62728"}], title="Churn (lines per month)", x_title="month",
                            y_title="lines", **size)
    ctx.update(totals=totals, charts=data, chart_svg=svg)
    return ctx


@login_required
def source_detail_view(request, source_id: int):
    source = selectors.source_get(user=request.user, source_id=source_id)
    analysis = selectors.analysis_for(source=source, analysis_id=parse_id(request.GET.get("analysis"),
                                                                          what="analysis"))
    rules_form = RulesForm(initial={"rules": services.rules_text(source)})
    ctx = {"source": source, "repos": list(source.repos.all()), "rules_form": rules_form,
           "generations": list(selectors.generation_list(user=request.user, source=source)[:50]),
           "analyses": list(source.analyses.all()[:10]), "active": selectors.active_jobs(source),
           **_analysis_context(source, analysis)}
    return render_page(request, "sources/detail.html", ctx, partial=request.GET.get("partial") if
                       request.GET.get("partial") in ("analysis",) else None)


@login_required
@require_POST
def analyse_view(request, source_id: int):
    selectors.source_get(user=request.user, source_id=source_id)  # 404 unless the user manages it
    try:
        a = services.analysis_start(user=request.user, source_id=source_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("sources:detail", source_id=source_id)
    messages.success(request, "Re-scanning and analysing on the worker.")
    return redirect(f"{reverse('sources:detail', args=[source_id])}?analysis={a.pk}")


@login_required
@require_POST
def rules_view(request, source_id: int):
    selectors.source_get(user=request.user, source_id=source_id)  # 404 unless the user manages it
    form = RulesForm(request.POST)
    if form.is_valid():
        try:
            services.source_update(user=request.user, source_id=source_id, rules=form.cleaned_data["rules"] or [])
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Component rules saved; they count at the next analysis.")
    return redirect("sources:detail", source_id=source_id)


@login_required
@require_POST
def delete_view(request, source_id: int):
    selectors.source_get(user=request.user, source_id=source_id)  # 404 unless the user manages it
    try:
        services.source_delete(user=request.user, source_id=source_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("sources:detail", source_id=source_id)
    messages.success(request, "Source deleted (its dataset is kept).")
    return redirect("sources:list")


def _initial_options(source) -> dict:
    last = source.generations.order_by("-created_at", "-id").first()
    if last is None:
        return {"generators": services.default_generators(), "max_examples": 1000, "seed": 0, "include_tests": True,
                "test_timeout": 60, "max_test_runs": 50, "temperature": 0.2, "requests_per_minute": 30}
    o = last.options or {}
    t = o.get("teacher") or {}
    return {**{k: o.get(k) for k in ("generators", "max_examples", "seed", "include_tests", "include_config",
                                     "exclude_complex", "run_tests", "test_command", "test_timeout",
                                     "max_test_runs")},
            "teacher": t.get("endpoint", ""), "teacher_model": t.get("model", ""),
            "teacher_provider": t.get("provider_id"), "temperature": t.get("temperature", 0.2),
            "requests_per_minute": t.get("requests_per_minute", 30), "price_in": t.get("price_in_per_mtok", 0),
            "price_out": t.get("price_out_per_mtok", 0)}


@login_required
def generate_view(request, source_id: int):
    """The options with the estimate (htmx `estimate` partial on every change); POST launches."""
    source = selectors.source_get(user=request.user, source_id=source_id)
    analysis = services.latest_analysis(source)
    est, status, partial = None, 200, None
    if request.method == "POST":
        form = OptionsForm(request.POST, generators=_generators(), providers=_providers())
        want_estimate = request.POST.get("action") == "estimate"
        if form.is_valid():
            try:
                if want_estimate:
                    est = services.generation_estimate(user=request.user, source_id=source.pk,
                                                       options=form.options())["estimate"]
                else:
                    gen = services.generation_start(user=request.user, source_id=source.pk, options=form.options())
                    messages.success(request, "Generation started on the worker.")
                    return redirect("sources:generation", generation_id=gen.pk)
            except ApplicationError as exc:
                form.add_service_errors(exc)
                status = 422
        else:
            status = 422
        partial = "options" if getattr(request, "htmx", False) else None
    else:
        form = OptionsForm(initial=_initial_options(source), generators=_generators(), providers=_providers())
        form.initial.update(form_initial_from_query(request.GET, form))  # e.g. from the command bar
        try:
            est = services.generation_estimate(user=request.user, source_id=source.pk,
                                               options=_options_from_initial(form.initial))["estimate"]
        except ApplicationError:
            est = None
    return render_page(request, "sources/generate.html", {
        "source": source, "form": form, "estimate": est, "analysis": analysis,
        "active": selectors.active_jobs(source), "base": services.base_generation(source)},
        partial=partial, status=status)


def _options_from_initial(initial: dict) -> dict:
    out = {k: initial.get(k) for k in ("generators", "max_examples", "seed", "include_tests", "include_config",
                                       "exclude_complex", "test_timeout", "max_test_runs")}
    return out


@login_required
def generation_view(request, generation_id: int):
    gen = selectors.generation_get(user=request.user, generation_id=generation_id)
    v = gen.dataset_version
    ctx = {"gen": gen, "source": gen.source, "version": v, "summary": gen.summary or {}, "report": gen.report or {},
           "review_url": review_url(v.pk) if v else None,
           "diff_url": (f"{reverse('datasets:diff', args=[v.dataset_id])}?a={v.parent_id}&b={v.pk}"
                        if v and v.parent_id else None),
           "tasks": _tasks(gen), "labels": GENERATOR_LABELS}
    return render_page(request, "sources/generation.html", ctx,
                       partial="status" if request.GET.get("partial") == "status" else None)


def _tasks(gen, limit: int = 20) -> list[dict]:
    import json

    path = services.work_dir(gen.pk) / "bundle" / "tasks.json"
    if gen.status != JobStatus.SUCCEEDED or not path.is_file():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))[:limit]
    except (OSError, ValueError):
        return []


@login_required
@require_POST
def generation_cancel_view(request, generation_id: int):
    from apps.core.jobs import services as job_services

    gen = selectors.generation_get(user=request.user, generation_id=generation_id)
    try:
        if gen.job_id:
            job_services.job_request_cancel(user=request.user, job_id=gen.job_id)
            messages.success(request, "Cancel requested; nothing of this generation is kept.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("sources:generation", generation_id=generation_id)


@login_required
def bundle_view(request, generation_id: int):
    gen = selectors.generation_get(user=request.user, generation_id=generation_id)
    path = services.bundle_zip_path(gen)
    if path is None:
        raise NotFound("This generation has no bundle (it has not succeeded).")
    return FileResponse(open(path, "rb"), as_attachment=True,  # noqa: SIM115 - FileResponse closes it
                        filename=f"scenarios-source{gen.source_id}-gen{gen.pk}.zip", content_type="application/zip")


@login_required
def provenance_view(request, example_id: int):
    data = selectors.example_provenance(user=request.user, example_id=example_id)
    e = data["example"]
    return render_page(request, "sources/provenance.html", {**data, "dataset": e.version.dataset,
                                                            "version": e.version})
