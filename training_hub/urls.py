from django.contrib import admin
from django.urls import include, path

from training_hub.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("v1/", include("apps.proxy.urls")),
    path("accounts/", include("apps.accounts.urls")),
    path("datasets/", include("apps.datasets.urls")),
    path("runs/", include("apps.training.urls")),
    path("models/", include("apps.registry.urls")),
    path("", include("apps.core.urls")),
]
