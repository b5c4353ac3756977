from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render


@login_required
def home(request):
    from apps.datasets.models import Dataset
    from apps.registry.models import Alias, ModelVersion
    from apps.training.models import TrainingRun

    return render(request, "core/home.html", {
        "datasets": Dataset.objects.order_by("-created_at")[:5],
        "runs": TrainingRun.objects.select_related("dataset_version__dataset").order_by("-created_at")[:5],
        "versions": ModelVersion.objects.order_by("-created_at")[:5],
        "aliases": Alias.objects.select_related("model_version"),
    })


def healthz(request):
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
