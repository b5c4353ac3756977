"""The arena list, the new-arena form, an arena's page (live generation and voting progress over
/ws/arenas/<id>/, contestants with their answers and failures, exports) and its owner's actions: close the
voting, cancel, run the judge, export the votes as a preference dataset, start a DPO run. An action answers
with a redirect to the arena's page and a message (a refused one: its field errors, nothing changed)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.arena import permissions as perms
from apps.arena import selectors, services
from apps.arena.forms import ArenaForm, DpoForm
from apps.arena.services.judge import DEFAULT_RUBRIC
from apps.core.exceptions import ApplicationError, PermissionDenied


def errors_of(exc: ApplicationError) -> str:
    msgs = [e.get("message") for e in (exc.errors or []) if e.get("message")]
    return " ".join(msgs) if msgs else exc.message


@login_required
def arena_list_view(request):
    rows = []
    for arena in selectors.arena_list(user=request.user)[:200]:
        rows.append({"arena": arena, "progress": selectors.arena_progress(arena=arena),
                     "contestants": [c.label for c in selectors.contestants_of(arena)],
                     "can_vote": perms.can_vote(request.user, arena) and arena.status == "ready",
                     "can_results": perms.can_see_results(request.user, arena)})
    return render(request, "arena/list.html", {"rows": rows, "can_create": perms.can_create(request.user)})


def _form_choices(user) -> dict:
    from apps.accounts import selectors as accounts
    from apps.datasets import selectors as datasets
    from apps.proxy import selectors as proxy
    from apps.registry import selectors as registry

    return {"versions": list(registry.model_version_list()[:200]), "aliases": sorted(proxy.alias_names()),
            "dataset_versions": datasets.ready_version_list(user=user),
            "users": [u for u in accounts.user_list() if u.is_active]}


@login_required
def arena_new_view(request):
    if not perms.can_create(request.user):
        raise PermissionDenied("Only members and admins can create arenas.")
    choices = _form_choices(request.user)
    status = 200
    if request.method == "POST":
        form = ArenaForm(request.POST, **choices)
        if form.is_valid():
            kwargs = form.service_kwargs()
            if form.is_valid():  # service_kwargs may add an error (no dataset version chosen)
                try:
                    arena = services.arena_create(user=request.user, **kwargs)
                except ApplicationError as exc:
                    form.add_service_errors(exc)
                else:
                    messages.success(request, f"Arena “{arena.name}” created: its answers are being generated.")
                    return redirect("arena:detail", arena.pk)
        status = 422
    else:
        form = ArenaForm(**choices)
    from apps.proxy import selectors as proxy

    providers = [p.name for p in proxy.provider_list()]
    has_targets = bool(choices["versions"] or choices["aliases"] or providers)
    return render(request, "arena/new.html", {"form": form, "providers": providers, "has_targets": has_targets},
                  status=status)


@login_required
def arena_detail_view(request, arena_id: int):
    from apps.registry import selectors as registry

    arena = selectors.arena_get(user=request.user, arena_id=arena_id)
    can_manage = perms.can_manage(request.user, arena)
    ctx = {"arena": arena, "progress": selectors.arena_progress(arena=arena), "job": selectors.job_state(arena.job),
           "judge_job": selectors.job_state(arena.judge_job), "can_manage": can_manage,
           "can_vote": perms.can_vote(request.user, arena),
           "can_results": perms.can_see_results(request.user, arena),
           "my_votes": selectors.my_votes(arena=arena, user=request.user),
           "stats": selectors.contestant_stats(arena=arena) if can_manage else None,
           "contestants": selectors.contestants_of(arena),
           "exports": selectors.exports_of(arena=arena) if can_manage else [],
           "dpo_form": DpoForm(base_models=registry.base_model_list()) if can_manage else None,
           "default_rubric": DEFAULT_RUBRIC}
    return render(request, "arena/detail.html", ctx)


def _back(arena_id: int):
    return redirect(reverse("arena:detail", args=[arena_id]))


def _act(request, arena_id: int, action, done: str):
    try:
        result = action()
    except ApplicationError as exc:
        messages.error(request, errors_of(exc))
        return _back(arena_id), None
    if done:
        messages.success(request, done)
    return _back(arena_id), result


@login_required
@require_POST
def close_view(request, arena_id: int):
    return _act(request, arena_id, lambda: services.arena_close(user=request.user, arena_id=arena_id),
                "Voting closed: the results are final and open to every participant.")[0]


@login_required
@require_POST
def cancel_view(request, arena_id: int):
    return _act(request, arena_id, lambda: services.arena_cancel(user=request.user, arena_id=arena_id),
                "Asked to stop.")[0]


@login_required
@require_POST
def judge_view(request, arena_id: int):
    return _act(request, arena_id, lambda: services.judge_start(
        user=request.user, arena_id=arena_id, model=request.POST.get("model", ""),
        rubric=request.POST.get("rubric", "")), "The judge is queued: its verdicts appear as they come in.")[0]


@login_required
@require_POST
def export_view(request, arena_id: int):
    resp, export = _act(request, arena_id, lambda: services.arena_export(user=request.user, arena_id=arena_id), "")
    if export is not None:
        messages.success(request, f"Exported {export.pairs} preference pair{'s' if export.pairs != 1 else ''} to "
                                  f"{export.version.dataset.name} v{export.version.number}.")
    return resp


@login_required
@require_POST
def dpo_view(request, arena_id: int):
    resp, run = _act(request, arena_id, lambda: services.arena_dpo_start(
        user=request.user, arena_id=arena_id, base_model=request.POST.get("base_model") or None,
        from_winner=request.POST.get("from_winner") == "on"), "")
    if run is not None:
        return redirect(reverse("training:detail", args=[run.pk]))
    return resp
