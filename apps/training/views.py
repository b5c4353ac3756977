"""Dashboard pages for runs: list (status filters), new-run form (estimates), run page (live chart),
comparison. Views parse input, call selectors/services and render; no ORM here. Ids in query strings and
forms go through `apps.core.inputs`; an ApplicationError not shown inline becomes its status page."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError, ValidationFailed
from apps.core.htmx import render_page
from apps.core.inputs import is_id, parse_id, parse_id_list
from apps.training import charts, selectors, services
from apps.training.forms import MAX_EXTRA_STAGES, RunForm
from apps.training.models import TrainingRun

STATUSES = [s for s, _ in TrainingRun.Status.choices]


@login_required
def run_list_view(request):
    status = request.GET.get("status") or None
    if status and status not in STATUSES and status != "active":
        status = None
    runs = selectors.run_list(user=request.user, status="queued,running" if status == "active" else status)[:200]
    rows = [{"run": r, "position": selectors.run_queue_position(r), "timing": selectors.run_timing(r)} for r in runs]
    any_active = any(row["run"].is_active for row in rows)  # the table refreshes itself while runs move
    return render_page(request, "training/list.html",
                       {"rows": rows, "status": status, "statuses": STATUSES, "any_active": any_active},
                       partial="runs")


def _form_choices(user):
    from apps.datasets import selectors as dataset_selectors
    from apps.registry import selectors as registry_selectors
    from workers.engine.tiny import NAMED_SIZES

    return dict(versions=dataset_selectors.ready_version_list(user=user, limit=300),
                base_models=list(registry_selectors.base_model_list()),
                model_versions=registry_selectors.local_model_version_list(limit=200),
                sizes=list(NAMED_SIZES))


def _size_table():
    from workers.engine.tiny import NAMED_SIZES, count_parameters

    return [{"name": n, **dims, "parameters": count_parameters(n, 2000)} for n, dims in NAMED_SIZES.items()]


def _starts(user) -> dict:
    """The form's "Start from" menu: presets and the user's saved settings, with the values they fill in."""
    from apps.training.run_form_tools import PRESETS
    from apps.training.services.saved_configs import saved_config_list

    presets = [{"key": f"preset:{k}", "label": label, "description": desc, "values": {"hyperparameters": hp}}
               for k, label, desc, hp in PRESETS]
    saved = [{"key": f"saved:{c.pk}", "label": c.name, "description": f"saved {c.updated_at:%Y-%m-%d %H:%M}",
              "values": c.values} for c in saved_config_list(user=user)]
    return {"presets": presets, "saved": saved, "all": presets + saved}


def _form_values(kwargs: dict) -> dict:
    return {"method": kwargs["method"], "backend": kwargs["backend"], "base_model": kwargs["base_model"],
            "hyperparameters": kwargs["hyperparameters"]}


@login_required
def run_new_view(request):
    choices = _form_choices(request.user)
    estimate = None
    extra: dict = {}  # the preview, a saved-settings note or error
    if request.method == "POST":
        form = RunForm(request.POST, **choices)
        action = request.POST.get("action", "create")
        if action == "preview":  # the live preview of the equivalent API call and command (htmx, on change)
            from apps.training.run_form_tools import run_preview

            preview = run_preview(form.service_kwargs()) if form.is_valid() else None
            return render_page(request, "training/new.html", {"form": form, "preview": preview},
                               partial="preview")
        if form.is_valid():
            try:
                if action == "save_config":
                    from apps.training.services.saved_configs import saved_config_save

                    config = saved_config_save(user=request.user, name=request.POST.get("config_name", ""),
                                               values=_form_values(form.service_kwargs()))
                    extra["config_saved"] = config.name
                elif action == "estimate":
                    estimate = services.run_create(user=request.user, dry_run=True, **form.service_kwargs())
                else:
                    run = services.run_create(user=request.user, **form.service_kwargs())
                    messages.success(request, f"Run {run.pk} queued.")
                    return redirect("training:detail", run_id=run.pk)
            except ValidationFailed as exc:
                if action == "save_config":
                    extra["config_error"] = exc.message
                else:
                    form.add_service_errors(exc.errors, exc.message)
            except ApplicationError as exc:
                form.add_service_errors(exc.errors, exc.message)
        status = 422 if form.errors or extra.get("config_error") else 200
        if action == "save_config" and request.headers.get("HX-Request"):
            status = 200  # htmx swaps only 2xx: the note says what went wrong
        return render_page(request, "training/new.html",
                           {"form": form, "estimate": estimate, "sizes": _size_table(), "starts": _starts(request.user),
                            "extra_stages": range(1, MAX_EXTRA_STAGES + 1), **extra},
                           partial="form" if action in ("estimate", "save_config") else None, status=status)
    initial = {}
    for key in ("dataset_version", "parent_version"):  # preselects only: the form validates what is posted
        if is_id(request.GET.get(key)):
            initial[key] = int(request.GET[key])
    if request.GET.get("method") in TrainingRun.Method.values:  # e.g. ?method=dpo&dataset_version=N
        initial["method"] = request.GET["method"]
    default = next((b for b in choices["base_models"] if b.is_default), None)
    if default:
        initial["base_model"] = default.pk
    prefill = {"base_model", "backend", "name", *RunForm.HP_FIELDS}  # e.g. the command bar's form_url,
    for key, value in request.GET.items():  # ?learning_rate=1e-5&epochs=3 (shown only: what is posted is validated)
        if key in prefill and value and len(value) <= 200 and "\x00" not in value:
            initial[key] = value
    form = RunForm(initial=initial, **choices)
    return render_page(request, "training/new.html", {"form": form, "estimate": None, "sizes": _size_table(),
                                                       "starts": _starts(request.user),
                                                       "extra_stages": range(1, MAX_EXTRA_STAGES + 1)})


@login_required
def run_detail_view(request, run_id: int):
    run = selectors.run_get(user=request.user, run_id=run_id)  # NotFound -> the 404 page
    checkpoints = list(selectors.run_checkpoints(run=run))
    best = selectors.best_checkpoint(run)
    summary = run.summary or {}
    curves = charts.run_curves(run)
    preference = charts.preference_curves(run)  # DPO runs: rewards, margins, accuracy
    rewards = charts.reward_curves(run)  # GRPO runs: the mean reward and each component
    reward_rows = charts.reward_components(run, summary) if rewards else []
    ctx = {
        "run": run,
        "summary": summary,
        "estimate": summary.get("estimate") or {},
        "evaluation": summary.get("evaluation") or {},
        "curves": curves,
        "loss_chart_svg": charts.loss_chart_svg(curves),
        "points": (points := charts.run_points(run)),  # every chart's data (step, time, loss, lr, ...)
        "metric_panels": charts.metric_panel_svgs(points),
        "preference": preference,
        "preference_svgs": charts.preference_chart_svgs(preference) if preference else None,
        "pref": charts.preference_stats(summary),
        "rewards": rewards,
        "reward_svg": charts.reward_chart_svg(rewards) if rewards else None,
        "reward_rows": reward_rows,
        "reward_eval": any(r["eval_mean"] is not None for r in reward_rows),  # a validation column
        "config": charts.run_config(run),
        "checkpoints": checkpoints,
        "best": best,
        "can_change": selectors.can_change(request.user, run),
        "queue_position": selectors.run_queue_position(run),
        "timing": selectors.run_timing(run),  # phase, elapsed / duration, error code
        "model_version_id": selectors.run_model_version_id(run),
        "stages": run.hyperparameters.get("stages") or [],
    }
    return render_page(request, "training/detail.html", ctx, partial="results")


@login_required
@require_POST
def run_cancel_view(request, run_id: int):
    try:
        services.run_request_cancel(user=request.user, run_id=run_id)
        messages.success(request, "Cancel requested: the run stops within a few steps and keeps its last checkpoint.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("training:detail", run_id=run_id)


@login_required
@require_POST
def run_relaunch_view(request, run_id: int):
    try:
        ckpt_id = parse_id(request.POST.get("checkpoint_id"), what="checkpoint")
        if ckpt_id is None:
            raise ValidationFailed("Choose a checkpoint to relaunch from.", field="checkpoint_id")
        run = services.run_relaunch(user=request.user, run_id=run_id, checkpoint_id=ckpt_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("training:detail", run_id=run_id)
    messages.success(request, f"Run {run.pk} relaunched from the checkpoint.")
    return redirect("training:detail", run_id=run.pk)


@login_required
@require_POST
def run_promote_view(request, run_id: int):
    try:
        version = services.checkpoint_promote(
            user=request.user, checkpoint_id=parse_id(request.POST.get("checkpoint_id"), what="checkpoint"),
            run_id=run_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("training:detail", run_id=run_id)
    messages.success(request, f"Checkpoint promoted to model version {version.pk}.")
    return redirect("registry:detail", version_id=version.pk)


@login_required
def run_compare_view(request):
    ids = parse_id_list(request.GET.getlist("ids"))[:10]
    data = charts.compare_runs(user=request.user, run_ids=ids)
    return render_page(request, "training/compare.html", {"data": data, "ids": ids})
