"""The root URLconf. Ids in paths use the `id` converter (ASCII digits, 1..2**63-1) and example
positions the `index` converter, so a malformed or out-of-range id is a 404 before any view runs."""
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
