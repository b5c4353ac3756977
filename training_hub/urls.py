"""The root URLconf. Ids in paths use the `id` converter (ASCII digits, 1..2**63-1) and example
positions the `index` converter, so a malformed or out-of-range id is a 404 before any view runs."""
from django.contrib import admin
from django.urls import include, path

from apps.proxy import views as proxy_views
from training_hub.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("v1/", include("apps.proxy.urls")),
    path("v1", proxy_views.not_found),  # /v1 itself: a JSON 404 in the client's dialect, not a redirect to /v1/
    path("accounts/", include("apps.accounts.urls")),
    path("datasets/", include("apps.datasets.urls")),
    path("runs/", include("apps.training.urls")),
    path("reviews/", include("apps.review.urls")),  # team review pages (issue 9)
    path("models/", include("apps.registry.urls")),
    path("proxy/", include("apps.proxy.pages_urls")),  # providers and alias chains (issue 8)
    path("traffic/", include("apps.traffic.urls")),
    path("sources/", include("apps.sources.urls")),  # code sources → training scenarios (issue 10)
    path("arenas/", include("apps.arena.urls")),  # blind arenas: votes, results, preference export (issue 11)
    path("monitoring/", include("apps.monitoring.urls")),  # traffic plots, worker health, alerts (issue 11)
    path("experiments/", include("apps.experiments.urls")),  # online experiments, canary rollouts (issue 11)
    path("evaluations/", include("apps.evaluations.urls")),  # reward-based evaluations of model versions (issue 13)
    path("commands/", include("apps.commands.urls")),  # the command bar's preview (issue 14)
    path("", include("apps.core.urls")),
]
