"""The home page (the newest datasets, runs, models and aliases, read through each app's selectors) and
/healthz and /favicon.ico."""
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render


@login_required
def home(request):
    from apps.datasets import selectors as datasets
    from apps.registry import selectors as registry
    from apps.training import selectors as training

    from apps.core.home import home_status
    from apps.core.htmx import render_page

    return render_page(request, "core/home.html", {
        "datasets": datasets.dataset_list(user=request.user)[:5],
        "runs": training.run_list(user=request.user).order_by("-created_at")[:5],
        "versions": registry.model_version_list().order_by("-created_at")[:5],
        "aliases": registry.alias_list(),
        "status": home_status(request.user),  # live: active jobs, recent runs, aliases, last hour's traffic
    }, partial="live" if request.GET.get("partial") == "live" else None)


def healthz(request):
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def favicon(request):
    """Pages that link no icon (the API docs, Django's admin) make the browser ask for /favicon.ico."""
    from django.http import HttpResponseRedirect
    from django.templatetags.static import static

    return HttpResponseRedirect(static("img/favicon.svg"))
