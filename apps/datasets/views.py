"""Dashboard pages for datasets. Parse input, call a selector or a service, render; no ORM here.

Ids in query strings and forms go through `apps.core.inputs` (a bad `?version=` is a 404, a NUL byte in a
filter a 422); a selector's or a service's ApplicationError that is not shown inline becomes its status page
(apps.core.error_pages)."""
from __future__ import annotations

import json
import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError, ValidationFailed
from apps.core.htmx import render_page
from apps.core.inputs import is_id, parse_id, query_text
from apps.datasets import selectors, services
from apps.datasets.forms import UploadForm
from apps.datasets.models import DatasetVersion
from apps.datasets.render import render_messages


@login_required
def dataset_list_view(request):
    return render_page(request, "datasets/list.html", {"datasets": selectors.dataset_list_rows(user=request.user)})


@login_required
def upload_view(request):
    dataset = None
    from apps.datasets.api import upload_too_large

    # Checked from the Content-Length header before the body is read.
    too_large = request.method == "POST" and upload_too_large(request)
    ds_id = request.GET.get("dataset") or (request.POST.get("dataset_id") if request.method == "POST" and not too_large else None)
    if is_id(ds_id):  # only preselects the dataset; the form validates what is posted
        try:
            dataset = selectors.dataset_get(user=request.user, dataset_id=int(ds_id))
        except ApplicationError:
            dataset = None
    if request.method == "POST" and not too_large:
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            d = form.cleaned_data
            try:
                version = services.dataset_import(
                    user=request.user, name=d.get("name") or "", file=d["file"], filename=d["file"].name,
                    format=d.get("format") or None, dataset=d.get("dataset_id") or None, target=d["target"],
                    base_model=d.get("base_model") or None, split_ratio=d.get("split_ratio"),
                    columns=d.get("columns"), background=None)
            except ApplicationError as exc:
                field = exc.field if exc.field in form.fields else None
                form.add_error(field, exc.message)
            else:
                if version.status == DatasetVersion.Status.FAILED:
                    messages.error(request, f"Import failed: {version.error}")
                elif version.status == DatasetVersion.Status.READY:
                    n_err = (version.validation or {}).get("error_total", 0)
                    messages.success(request, f"Imported {version.example_count} examples"
                                     + (f" with {n_err} validation errors." if n_err else "."))
                return redirect(f"{reverse('datasets:detail', args=[version.dataset_id])}?version={version.pk}")
    else:
        form = UploadForm(initial={"dataset_id": dataset.pk if dataset else None, "target": "local"})
    status = 413 if too_large else (422 if request.method == "POST" else 200)
    file_error = f"The file is larger than the {settings.HUB_MAX_UPLOAD_MB} MB limit." if too_large else ""
    return render_page(request, "datasets/upload.html", {"form": form, "dataset": dataset, "file_error": file_error,
                                                         "max_mb": settings.HUB_MAX_UPLOAD_MB}, status=status)


CONTEXT_ON_CHART = 1.5  # the context limit is drawn only within 1.5x the longest example (else it is a note)


def _buckets(hist: dict) -> list[tuple[int, int]]:
    """The inclusive integer range of each histogram bin ([lo, hi) and the last one [lo, hi]): what a click
    on a bar lists, for data that are whole numbers (tokens, turns)."""
    import math
    from itertools import pairwise

    edges = hist.get("edges") or []
    out = []
    for i, (lo, hi) in enumerate(pairwise(edges)):
        last = i == len(edges) - 2
        out.append((math.ceil(lo), math.floor(hi) if last else math.ceil(hi) - 1))
    return out


def _bars(hist: dict, link) -> dict:
    """A histogram as bars: x (the bin's value when it holds one whole number, else its middle), y, the
    hover label and the link to the examples behind each bar (`link(lo, hi)`)."""
    from apps.core.svgchart import histogram_mids

    buckets = _buckets(hist)
    whole = bool(buckets) and all(lo == hi for lo, hi in buckets)
    xs = [lo for lo, _ in buckets] if whole else histogram_mids(hist)
    labels = [f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}" for lo, hi in buckets]
    return {"x": xs, "y": list(hist.get("counts") or []), "labels": labels,
            "hrefs": [link(lo, hi) if lo <= hi else "" for lo, hi in buckets], "whole": whole}


def _chart_data(stats: dict, version_pk: int | None = None) -> dict:
    """What the dataset page's four charts draw, sized to the data: bars with a link each to the examples
    behind them, the context limit only where it is within CONTEXT_ON_CHART of the longest example (else a
    note), and a one-line note instead of a category chart with a single category."""
    from django.utils.http import urlencode

    tok = stats.get("tokens") or {}
    base = f"?version={version_pk}&" if version_pk else "?"

    def link(**params):
        return base + urlencode(params) + "#examples"

    tokens = tok.get("hist") or {}
    out = {
        "tokens": tokens, "role_hist": tok.get("role_hist") or {}, "per_role": tok.get("per_role") or {},
        "turns": (stats.get("turns") or {}).get("hist") or {}, "categories": stats.get("categories") or {},
        "tools": (stats.get("tools") or {}).get("calls") or {}, "context": tok.get("context_length"),
        "context_on_chart": None, "context_note": "", "category_note": "",
    }
    if tokens.get("counts"):
        out["token_bars"] = _bars(tokens, lambda lo, hi: link(tokens=f"{lo}-{hi}"))
        longest = tok.get("max") or (tokens.get("edges") or [0])[-1]
        ctx = out["context"]
        if ctx and longest and ctx <= longest * CONTEXT_ON_CHART:
            out["context_on_chart"] = ctx
        elif ctx:
            out["context_note"] = (f"The context limit, {ctx:,} tokens, is far beyond the longest example "
                                   f"({int(longest):,} tokens): not drawn.")
    out["role_bars"] = {role: _bars(h, lambda lo, hi, role=role: link(role_tokens=f"{role}:{lo}-{hi}"))
                        for role, h in out["role_hist"].items() if h.get("counts")}
    if out["turns"].get("counts"):
        out["turn_bars"] = _bars(out["turns"], lambda lo, hi: link(turns=f"{lo}-{hi}"))
    cats = out["categories"]
    if len(cats) == 1:
        (name, n), = cats.items()
        out["category_note"] = (f"No example has a category ({n:,} examples)." if name == selectors.NO_CATEGORY
                                else f"All {n:,} examples are in one category: {name}.")
    elif cats:
        out["category_bars"] = {"x": list(cats), "y": list(cats.values()), "labels": list(cats),
                                "hrefs": [link(category=c) for c in cats]}
    return out


def _chart_svgs(d: dict) -> dict:
    """The dataset charts as server-rendered SVG (first paint; dataset_charts.js swaps in plotly). Their titles
    are the cards' headings (HTML wraps; a title inside a narrow chart was clipped); count axes have whole
    ticks; each bar links to its examples."""
    from apps.core.svgchart import bars

    size = {"width": 300, "height": 300, "integer_y": True}  # the page shows them four abreast
    out = {}
    if d.get("token_bars"):
        b = d["token_bars"]
        out["tokens"] = bars([{"x": b["x"], "y": b["y"], "hrefs": b["hrefs"], "color": "#2f5fd0"}],
                             x_title="tokens", y_title="examples", vline=d["context_on_chart"], **size)
    if d.get("role_bars"):
        out["roles"] = bars([{"name": role, "x": b["x"], "y": b["y"], "hrefs": b["hrefs"]}
                             for role, b in d["role_bars"].items()],
                            x_title="tokens", y_title="examples", **size)
    if d.get("category_bars"):
        b = d["category_bars"]
        out["categories"] = bars([{"x": b["x"], "y": b["y"], "hrefs": b["hrefs"], "color": "#32d583"}],
                                 x_title="category", y_title="examples", **size)
    if d.get("turn_bars"):
        b = d["turn_bars"]
        out["turns"] = bars([{"x": b["x"], "y": b["y"], "hrefs": b["hrefs"], "color": "#fdb022"}],
                            x_title="turns", y_title="examples", **size)
    return out


_RANGE = re.compile(r"(\d{1,9})-(\d{1,9})")
_ROLE_RANGE = re.compile(r"(user|assistant|system|tool):(\d{1,9})-(\d{1,9})")


def _range_filters(get) -> dict:
    """The chart filters of the examples list (`tokens=lo-hi`, `turns=lo-hi`, `role_tokens=role:lo-hi`):
    inclusive ranges; anything else is a 422."""
    out = {}
    for key in ("tokens", "turns"):
        text = query_text(get, key)
        if text:
            m = _RANGE.fullmatch(text)
            if m is None:
                raise ValidationFailed(f"`{key}` must be a range like 10-20.", field=key)
            out[key] = (int(m[1]), int(m[2]))
    text = query_text(get, "role_tokens")
    if text:
        m = _ROLE_RANGE.fullmatch(text)
        if m is None:
            raise ValidationFailed("`role_tokens` must look like assistant:10-20.", field="role_tokens")
        out["role_tokens"] = (m[1], int(m[2]), int(m[3]))
    return out


def _bucket_label(key: str, value) -> str:
    if key == "role_tokens":
        role, lo, hi = value
        return f"{role} content tokens {lo:,}–{hi:,}" if lo != hi else f"{role} content tokens {lo:,}"
    lo, hi = value
    return f"{key} {lo:,}–{hi:,}" if lo != hi else f"{key} {lo:,}"


VERSIONS_PER_PAGE = 10


@login_required
def detail_view(request, dataset_id: int):
    ds = selectors.dataset_get(user=request.user, dataset_id=dataset_id)
    version = selectors.version_for_dataset(
        dataset=ds, version_id=parse_id(request.GET.get("version"), what="dataset version"))
    severity = query_text(request.GET, "severity")
    code = query_text(request.GET, "code")
    issues = selectors.version_issues(version=version, severity=severity or None, code=code or None)
    ex_filters = {k: query_text(request.GET, k) for k in ("split", "category", "excode", "q")}
    ranges = _range_filters(request.GET)
    examples_qs = selectors.example_list(version=version, split=ex_filters["split"] or None,
                                         category=ex_filters["category"] or None, code=ex_filters["excode"] or None,
                                         q=ex_filters["q"] or None, **ranges)
    page = Paginator(examples_qs, 10).get_page(request.GET.get("page"))
    range_params = {k: request.GET[k] for k in ranges}
    ex_query = urlencode({"version": version.pk, "partial": "examples", **{k: v for k, v in ex_filters.items() if v},
                          **range_params})
    versions_page = Paginator(selectors.dataset_versions(dataset=ds), VERSIONS_PER_PAGE).get_page(
        request.GET.get("vpage"))
    current = selectors.current_version(ds)
    rendered = [(e, render_messages(e.messages, e.tools)) for e in page.object_list]
    epochs = request.GET.get("epochs")
    stats = version.stats or {}
    est = stats.get("estimates")
    if is_id(epochs) and int(epochs) <= 100 and stats.get("tokens"):
        from apps.datasets.validation import estimates

        est = estimates(tokens=(est or {}).get("trained_tokens_per_epoch", 0), context_length=None,
                        epochs=int(epochs), base_model_id=stats["tokens"].get("base_model"))
    chart_data = _chart_data(stats, version.pk)
    ctx = {
        "dataset": ds, "version": version, "versions": versions_page, "current": current,
        "pinned": current is not None and current.pk == ds.pinned_version_id,
        "ex_query": ex_query, "range_params": range_params,
        "bucket_filters": [_bucket_label(k, v) for k, v in ranges.items()],
        "issues": issues[:500], "issue_total": len(issues), "issue_codes": selectors.version_issue_codes(version),
        "severity": severity, "code": code, "page": page, "rendered": rendered, "ex_filters": ex_filters,
        "categories": sorted((stats.get("categories") or {}).keys()), "stats": stats, "estimates": est,
        "chart_data": chart_data, "chart_svg": _chart_svgs(chart_data), "fixes": services.FIXES, "has_errors": selectors.version_has_errors(version),
        "can_write": services.can_write(request.user, ds), "stalled_s": _stalled_seconds(version),
        "query_base": {k: v for k, v in request.GET.items() if k != "page"},
        "no_category": selectors.NO_CATEGORY,
    }
    partial = request.GET.get("partial")
    if partial not in ("issues", "examples"):
        partial = None
    return render_page(request, "datasets/detail.html", ctx, partial=partial)


STALLED_AFTER_S = 120


def _stalled_seconds(version) -> int | None:
    """Seconds since an importing version last reported progress, when that looks like a dead worker."""
    import time

    if version.status != DatasetVersion.Status.IMPORTING:
        return None
    last = max((version.progress or {}).get("updated_at") or version.created_at.timestamp(),
               version.job.heartbeat_at.timestamp() if version.job_id and version.job.heartbeat_at else 0)
    idle = int(time.time() - last)
    return idle if idle > STALLED_AFTER_S else None


@login_required
def progress_view(request, version_id: int):
    version = selectors.version_get(user=request.user, version_id=version_id)
    resp = render_page(request, "datasets/detail.html", {"version": version, "dataset": version.dataset,
                                                         "stalled_s": _stalled_seconds(version)},
                       partial="progress")
    if version.status != DatasetVersion.Status.IMPORTING and getattr(request, "htmx", False):
        resp["HX-Redirect"] = f"{reverse('datasets:detail', args=[version.dataset_id])}?version={version.pk}"
    return resp


@login_required
@require_POST
def pin_view(request, dataset_id: int):
    """Pin the posted `version` as the dataset's current version; an empty `version` unpins."""
    raw = request.POST.get("version", "")
    version_id = parse_id(raw, what="dataset version") if raw else None
    try:
        ds = services.dataset_pin(user=request.user, dataset_id=dataset_id, version_id=version_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if version_id is None:
            messages.success(request, "Unpinned: the newest ready version is current.")
        else:
            number = selectors.version_for_dataset(dataset=ds, version_id=version_id).number
            messages.success(request, f"Pinned v{number} as the current version of {ds.name}.")
    target = reverse("datasets:detail", args=[dataset_id])
    return redirect(f"{target}?version={version_id}" if version_id else target)


@login_required
@require_POST
def fix_view(request, version_id: int):
    fix = request.POST.get("fix", "")
    try:
        if fix.startswith("target:"):
            new = services.version_revalidate(user=request.user, version_id=version_id, target=fix[7:],
                                              base_model=request.POST.get("base_model") or None)
            messages.success(request, f"{new.note}: created version {new.number}.")
            return redirect(f"{reverse('datasets:detail', args=[new.dataset_id])}?version={new.pk}")
        new = services.version_fix(user=request.user, version_id=version_id, fix=fix)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        ds_id = selectors.version_dataset_id(version_id)
        return redirect(reverse("datasets:detail", args=[ds_id]) if ds_id else reverse("datasets:list"))
    messages.success(request, f"{services.FIXES[fix]}: created version {new.number} ({new.example_count} examples).")
    return redirect(f"{reverse('datasets:detail', args=[new.dataset_id])}?version={new.pk}")


@login_required
def diff_view(request, dataset_id: int):
    ds = selectors.dataset_get(user=request.user, dataset_id=dataset_id)
    versions = list(selectors.dataset_versions(dataset=ds))
    a_id = parse_id(request.GET.get("a"), what="dataset version")
    b_id = parse_id(request.GET.get("b"), what="dataset version")
    diff = va = vb = None
    if a_id and b_id:
        va = selectors.version_for_dataset(dataset=ds, version_id=a_id)
        vb = selectors.version_for_dataset(dataset=ds, version_id=b_id)
        d = selectors.version_diff(a=va, b=vb, limit=100)
        diff = {**d,
                "added_r": [(e, render_messages(e.messages, e.tools)) for e in d["added"]],
                "removed_r": [(e, render_messages(e.messages, e.tools)) for e in d["removed"]],
                "changed_r": [(x, render_messages(x.messages, x.tools), y, render_messages(y.messages, y.tools))
                              for x, y in d["changed"]]}
    return render_page(request, "datasets/diff.html", {"dataset": ds, "versions": versions, "diff": diff,
                                                       "va": va, "vb": vb})


@login_required
def export_view(request, dataset_id: int):
    ds = selectors.dataset_get(user=request.user, dataset_id=dataset_id)
    version = selectors.version_for_dataset(
        dataset=ds, version_id=parse_id(request.GET.get("version"), what="dataset version"))
    kind = query_text(request.GET, "kind", "jsonl")
    fmt = query_text(request.GET, "format", "openai")
    together_format = query_text(request.GET, "together_format", "messages")
    base = f"dataset-{ds.pk}-v{version.number}"
    try:
        if kind == "stats":
            resp = HttpResponse(json.dumps(version.stats, indent=2), content_type="application/json")
            resp["Content-Disposition"] = f'attachment; filename="{base}-stats.json"'
        elif kind == "report":
            resp = HttpResponse(services.version_report_text(version), content_type="text/markdown; charset=utf-8")
            resp["Content-Disposition"] = f'attachment; filename="{base}-report.md"'
        elif kind == "categories":
            path = services.version_export_zip_file(
                version=version, fmt=fmt, together_format=together_format)
            try:
                fh = open(path, "rb")  # noqa: SIM115 - FileResponse closes it
            finally:
                path.unlink(missing_ok=True)  # the open handle keeps the data until the response is closed
            resp = FileResponse(fh, as_attachment=True, filename=f"{base}-{fmt}-by-category.zip",
                                content_type="application/zip")
        else:
            split = query_text(request.GET, "split") or None
            lines = services.version_export_lines(version=version, fmt=fmt, split=split,
                                                  together_format=together_format)
            first = next(lines, None)

            def body():
                if first is not None:
                    yield first
                yield from lines
            resp = StreamingHttpResponse(body(), content_type="application/jsonl")
            resp["Content-Disposition"] = f'attachment; filename="{base}-{fmt}{"-" + split if split else ""}.jsonl"'
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(f"{reverse('datasets:detail', args=[ds.pk])}?version={version.pk}")
    return resp


@login_required
def edit_view(request, version_id: int, index: int):
    """Edit one example (a new version): the structured form (a role and content per message, tool calls as JSON
    only where there are some: apps.datasets.edit_form) or, as the advanced mode, the raw messages JSON."""
    from apps.datasets import edit_form

    version = selectors.version_get(user=request.user, version_id=version_id)
    example = selectors.example_get(version=version, index=index)
    if example is None:
        messages.error(request, f"Version {version.number} has no example #{index + 1}.")
        return redirect(f"{reverse('datasets:detail', args=[version.dataset_id])}?version={version.pk}")
    text = json.dumps(example.messages, indent=2, ensure_ascii=False)
    rows = edit_form.rows_for(example.messages)
    error, raw_mode = "", False
    if request.method == "POST":
        delete = request.POST.get("delete") == "1"
        # the raw JSON: asked for, or a post without the form's rows (a script posting `messages` alone)
        raw_mode = request.POST.get("mode") == "raw" or ("m-count" not in request.POST and "messages" in request.POST)
        if raw_mode:
            text = request.POST.get("messages", "")
            new_messages, rows_ok = text, True
        else:
            new_messages, rows = edit_form.parse(request.POST)
            rows_ok = not any(r["error"] for r in rows)
            text = json.dumps(new_messages, indent=2, ensure_ascii=False)
            if not rows_ok:
                error = "Fix the messages marked below."
        if rows_ok or delete:
            try:
                new = services.example_edit(user=request.user, version_id=version.pk, index=index,
                                            messages=new_messages, delete=delete)
            except ApplicationError as exc:
                error = exc.message
            else:
                messages.success(request, f"{new.note}: created version {new.number}.")
                return redirect(f"{reverse('datasets:diff', args=[new.dataset_id])}?a={version.pk}&b={new.pk}")
    return render_page(request, "datasets/edit.html", {
        "version": version, "dataset": version.dataset, "example": example, "text": text, "error": error,
        "rows": rows, "row_count": len(rows), "roles": edit_form.ROLES, "raw_mode": raw_mode,
        "turns": render_messages(example.messages, example.tools)}, status=422 if error else 200)
