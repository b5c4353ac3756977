"""The review pages around the screen: task list, new task, task page (live progress, result versions,
Finish / Snapshot, export, edits as preference pairs and a DPO run on them), agreement, adjudication queue and
item, bulk actions."""
from __future__ import annotations

import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError, PermissionDenied, ValidationFailed
from apps.core.inputs import parse_id
from apps.review import permissions as perms
from apps.review import selectors, services
from apps.review.forms import BulkForm, TaskForm, filter_names
from apps.review.views.common import errors_of, int_or_none, is_htmx, live_context, page_context, task_context
from apps.review.views.render import KAPPA_BUCKETS, content_text, conversation, diff_rows, kappa_matrix, message_from_post


# -- task list, new task, task page ---------------------------------------------------------------------
@login_required
def task_list_view(request):
    rows = []
    for task in selectors.task_list(user=request.user).select_related("version", "version__dataset", "owner"):
        rows.append({"task": task, "can_review": perms.can_review(request.user, task)})
    can_create = request.user.is_hub_admin or request.user.role == "member"
    return render(request, "review/list.html", {"rows": rows, "can_create": can_create})


def _creatable_versions(user) -> list:
    from apps.datasets import selectors as datasets

    versions = datasets.ready_version_list(user=user)
    if user.is_hub_admin:
        return versions
    return [v for v in versions if v.dataset.owner_id == user.pk]


def _reviewers():
    from apps.accounts import selectors as accounts

    return [u for u in accounts.user_list() if u.is_active and u.role in ("reviewer", "member", "admin")]


@login_required
def task_new_view(request):
    if not (request.user.is_hub_admin or request.user.role == "member"):
        raise PermissionDenied("Only admins, and members on their own datasets, can create review tasks.")
    versions = _creatable_versions(request.user)
    users = _reviewers()
    status = 200
    if request.method == "POST":
        form = TaskForm(request.POST, versions=versions, users=users)
        if form.is_valid():
            d = form.cleaned_data
            try:
                task = services.task_create(
                    user=request.user, version_id=d["dataset_version"], name=d["name"],
                    overlap=d["overlap"], assignees=d["assignees"], instructions=d.get("instructions") or "",
                    labels=d.get("labels") or [], rating=bool(d.get("rating")), lead=d.get("lead") or None,
                    filter=form.filter_dict())
            except ApplicationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, f"Review task “{task.name}” created with {task.total_items} examples.")
                return redirect("review:detail", task_id=task.pk)
        status = 422
    else:
        initial = {"overlap": 1}
        vid = parse_id(request.GET.get("dataset_version"), what="dataset version")
        if vid and any(v.pk == vid for v in versions):
            initial["dataset_version"] = vid
        form = TaskForm(initial=initial, versions=versions, users=users)
    filter_fields = [form[n] for n in ("q", "category", "code", "split", "source_file", "min_turns", "max_turns",
                                       "min_tokens", "max_tokens")]
    return render(request, "review/new.html", {"form": form, "filter_fields": filter_fields,
                                               "has_versions": bool(versions)}, status=status)


@login_required
def task_detail_view(request, task_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    live = live_context(task)
    from apps.core.jobs.selectors import job_as_dict

    snapshots = list(selectors.snapshots(task=task).order_by("-created_at"))
    for s in snapshots:  # a version being built shows its job (progress, cancel)
        s.job = job_as_dict(s.version.job, user=request.user) if s.version.status == "importing" and \
            s.version.job_id else None
    ctx = {**task_context(request, task), **live, "task_disputed": live["progress"]["disputed"],
           "snapshots": snapshots, **_preference_context(request, task),
           "jobs_url": reverse("jobs:list"), "here": request.get_full_path(),
           "assignees": [a.user.username for a in task.assignments.select_related("user")]}
    return render(request, "review/detail.html", ctx)


# -- agreement ------------------------------------------------------------------------------------------
@login_required
def agreement_view(request, task_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    agreement = selectors.agreement(task=task)
    stats = list(agreement.get("reviewers") or selectors.reviewer_stats(task=task))
    chart = {"reviewers": [s.get("username") for s in stats],
             "done": [s.get("done") or 0 for s in stats],
             "accept_rate": [s.get("accept_rate") for s in stats],
             "median_seconds": [s.get("median_seconds") for s in stats],
             "agreement": [s.get("agreement_with_consensus") for s in stats],
             "pairs": [{"label": f"{p['a']} · {p['b']}", "kappa": p.get("cohen_kappa"), "n": p.get("n", 0)}
                       for p in agreement.get("pairs") or []]}
    ctx = {**page_context(request, task), "agreement": agreement, "stats": stats,
           "stats_any": any((s.get("done") or 0) > 0 for s in stats),
           "matrix": kappa_matrix(agreement.get("pairs") or []), "chart": chart,
           "legend": [(f"k-{i}", f"{-1 + 2 * i / (KAPPA_BUCKETS - 1):+.1f}") for i in range(KAPPA_BUCKETS)]}
    return render(request, "review/agreement.html", ctx)


# -- adjudication ---------------------------------------------------------------------------------------
@login_required
def adjudication_list_view(request, task_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    if not perms.can_adjudicate(request.user, task):
        raise PermissionDenied("Only an admin or the task's lead can adjudicate.")
    from django.core.paginator import Paginator

    page = Paginator(selectors.adjudication_list(user=request.user, task_id=task.pk).select_related("example"), 50) \
        .get_page(request.GET.get("page"))
    rows = []
    for item in page.object_list:
        first = ""
        for m in item.example.messages or []:
            if isinstance(m, dict) and m.get("role") == "user":
                first = content_text(m.get("content"))
                break
        rows.append({"item": item, "preview": first[:160]})
    return render(request, "review/adjudication.html", {**page_context(request, task), "page": page, "rows": rows})


def _messages_from_adjudication(msgs: list, post) -> list | None:
    """The full message list with each turn's edit box applied; None when nothing changed."""
    out, changed = [], False
    for i, m in enumerate(msgs):
        sub = {"content": post.get(f"turn-{i}-content", content_text(m.get("content")))}
        if f"turn-{i}-tool_calls" in post:
            sub["tool_calls"] = post.get(f"turn-{i}-tool_calls")
        try:
            new = message_from_post(m, sub)
        except ValidationFailed as exc:
            raise ValidationFailed(exc.message, field=f"messages.{i}") from None
        changed = changed or new != m
        out.append(new)
    return out if changed else None


@login_required
def adjudicate_view(request, task_id: int, item_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    if not perms.can_adjudicate(request.user, task):
        raise PermissionDenied("Only an admin or the task's lead can adjudicate.")
    view = selectors.item_view(user=request.user, task_id=task.pk, item_id=item_id)
    responses = selectors.item_responses(user=request.user, task_id=task.pk, item_id=item_id)
    msgs = (view.get("example") or {}).get("messages") or []
    errors, turn_errors, status = [], {}, 200
    if request.method == "POST":
        try:
            new = _messages_from_adjudication(msgs, request.POST)
            marks = {i: request.POST.get(f"turn-{i}-decision") for i in range(len(msgs))
                     if request.POST.get(f"turn-{i}-decision")}
            services.item_adjudicate(user=request.user, task_id=task.pk, item_id=item_id,
                                     decision=request.POST.get("decision", ""), messages=new,
                                     turn_decisions=marks or None,
                                     comment=request.POST.get("comment", ""),
                                     base_revision=int_or_none(request.POST.get("base_revision")))
        except ApplicationError as exc:
            status = exc.status_code
            for e in exc.errors or [{"field": exc.field, "message": exc.message}]:
                m = re.match(r"messages\.(\d+)$", e.get("field") or "")
                if m:
                    turn_errors.setdefault(int(m.group(1)), []).append(e["message"])
                else:
                    errors.append(e["message"])
            if not errors and not turn_errors:
                errors = [exc.message]
        else:
            messages.success(request, f"Item #{view['example_index'] + 1}: final decision "
                                      f"“{request.POST.get('decision')}” saved.")
            nxt = selectors.adjudication_list(user=request.user, task_id=task.pk).exclude(pk=item_id).first()
            if nxt is not None:
                return redirect("review:adjudicate", task_id=task.pk, item_id=nxt.pk)
            return redirect("review:adjudication", task_id=task.pk)
    answers, turn_marks = [], {}
    for r in responses:
        r = dict(r)
        r["turn_marks"] = sorted(((int(k) + 1, v) for k, v in (r.get("turn_decisions") or {}).items()))
        r["edits"] = [{**e, "rows": diff_rows(e.get("diff"))} for e in r.get("edits") or []]
        for k, v in (r.get("turn_decisions") or {}).items():
            turn_marks.setdefault(int(k), []).append((r.get("reviewer"), v))
        answers.append(r)
    turns = conversation(msgs, turn_info=view.get("turns"))
    for t in turns:
        i = t["index"]
        t["errors"] = turn_errors.get(i, [])
        t["reviewer_marks"] = turn_marks.get(i, [])
        t["final_mark"] = request.POST.get(f"turn-{i}-decision", "") if request.method == "POST" else ""
        if request.method == "POST":
            t["edit_content"] = request.POST.get(f"turn-{i}-content", t["edit_content"])
            if f"turn-{i}-tool_calls" in request.POST:
                t["edit_tool_calls"] = request.POST.get(f"turn-{i}-tool_calls")
            t["edit_open"] = t["edit_content"] != conversation([msgs[i]])[0]["edit_content"]
    ctx = {**page_context(request, task), "view": view, "turns": turns, "answers": answers, "errors": errors,
           "posted": request.POST if request.method == "POST" else {}}
    return render(request, "review/adjudicate.html", ctx, status=status)


# -- bulk actions ---------------------------------------------------------------------------------------
def _bulk_count(request, task, form: BulkForm) -> tuple[int | None, str]:
    """How many items the filter matches now (None and a message when the filter is not valid)."""
    try:
        return selectors.item_count(user=request.user, task_id=task.pk, filter=form.filter_dict()), ""
    except ApplicationError as exc:
        return None, " ".join(errors_of(exc))


@login_required
def bulk_view(request, task_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    if not perms.can_manage(request.user, task):
        raise PermissionDenied("Only the task's owner or an admin can do this.")
    assignees = [a.user.username for a in task.assignments.select_related("user").order_by("user__username")]
    status = 200
    if request.method == "POST":
        form = BulkForm(request.POST, assignees=assignees)
        if form.is_valid():
            d = form.cleaned_data
            try:
                audit = services.bulk_apply(user=request.user, task_id=task.pk, filter=form.filter_dict(),
                                            action=d["action"], tag=d.get("new_tag") or None,
                                            assignees=d.get("assign_to") or None)
            except ApplicationError as exc:
                form.add_service_errors(exc)
                status = exc.status_code
            else:
                messages.success(request, f"{audit.action.capitalize()}: {audit.count} item"
                                          f"{'' if audit.count == 1 else 's'} (audit #{audit.pk}).")
                return redirect("review:bulk", task_id=task.pk)
        else:
            status = 422
    elif request.GET:
        data = request.GET.copy()
        data.setdefault("action", "accept")
        form = BulkForm(data, assignees=assignees)
    else:
        form = BulkForm(assignees=assignees)
    count, count_error = task.total_items, ""
    if form.is_bound:
        form.is_valid()
        bad = [form.fields[n].label for n in filter_names(items=True) if n in form.errors]
        if bad:
            count, count_error = None, f"Fix the filter ({', '.join(str(b) for b in bad)})."
        else:
            count, count_error = _bulk_count(request, task, form)
    ctx = {**page_context(request, task), "form": form, "count": count, "count_error": count_error,
           "filter_fields": [form[n] for n in filter_names(items=True)],
           "audits": list(selectors.bulk_actions(task=task)[:20])}
    if is_htmx(request) and request.GET.get("partial") == "count":
        return render(request, "review/bulk.html#count", ctx)
    return render(request, "review/bulk.html", ctx, status=status)


# -- result: snapshot, finish, export -------------------------------------------------------------------
def _make_version(request, task_id: int, *, final: bool):
    task = selectors.task_get(user=request.user, task_id=task_id)
    try:
        snap = (services.task_finish if final else services.task_snapshot)(user=request.user, task_id=task.pk)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("review:detail", task_id=task.pk)
    v = snap.version
    what = "Finished" if final else "Snapshot"
    if v.status == "importing":
        messages.info(request, f"{'Finishing' if final else 'Snapshot'}: dataset version v{v.number} with "
                               f"{snap.accepted} accepted examples is being built by a worker; its progress is "
                               f"below.")
    else:
        messages.success(request, f"{what}: dataset version v{v.number} with {snap.accepted} accepted examples "
                                  f"({snap.edited} edited, {snap.rejected} rejected left out).")
    return redirect(f"{reverse('review:detail', args=[task.pk])}?made={v.pk}")


@login_required
@require_POST
def snapshot_view(request, task_id: int):
    return _make_version(request, task_id, final=False)


@login_required
@require_POST
def finish_view(request, task_id: int):
    return _make_version(request, task_id, final=True)


@login_required
def export_view(request, task_id: int):
    task = services.export_check(user=request.user, task_id=task_id)  # 403 before the response starts
    resp = StreamingHttpResponse(services.decisions_export_lines(user=request.user, task_id=task.pk),
                                 content_type="application/jsonl")
    resp["Content-Disposition"] = f'attachment; filename="review-{task.pk}-decisions.jsonl"'
    return resp


# -- edits as preference pairs, a DPO run on them -------------------------------------------------------
def _preference_context(request, task) -> dict:
    """What the task page's "Preference pairs" part shows (its owner and admins only)."""
    if not perms.can_manage(request.user, task):
        return {}
    from apps.registry import selectors as registry

    return {"preference_export": services.last_preference_export(task), "base_models": registry.base_model_list()}


@login_required
@require_POST
def preference_export_view(request, task_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    try:
        e = services.review_preference_export(user=request.user, task_id=task.pk)
    except ApplicationError as exc:
        messages.error(request, " ".join(errors_of(exc)))
        return redirect("review:detail", task_id=task.pk)
    v = e.version
    left = sum(n for k, n in e.counts.items() if k != "pairs")
    note = f" ({left} edited turn{'s' if left != 1 else ''} left out)" if left else ""
    messages.success(request, f"Exported {e.pairs} preference pair{'s' if e.pairs != 1 else ''} to "
                              f"{v.dataset.name} v{v.number}{note}.")
    return redirect(f"{reverse('review:detail', args=[task.pk])}#preference-pairs")


@login_required
@require_POST
def dpo_view(request, task_id: int):
    task = selectors.task_get(user=request.user, task_id=task_id)
    try:
        run = services.review_dpo_start(user=request.user, task_id=task.pk,
                                        base_model=request.POST.get("base_model") or None)
    except ApplicationError as exc:
        messages.error(request, " ".join(errors_of(exc)))
        return redirect(f"{reverse('review:detail', args=[task.pk])}#preference-pairs")
    return redirect(reverse("training:detail", args=[run.pk]))
