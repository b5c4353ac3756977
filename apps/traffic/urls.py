"""Dashboard pages of proxy traffic (mounted at /traffic/ by training_hub/urls.py). `GET /v1/health` is
routed by apps/proxy/urls.py to views.health_json."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.traffic import views

register_url_converters()
app_name = "traffic"

urlpatterns = [
    path("", views.requests_view, name="requests"),
    path("requests/<id:log_id>/", views.request_detail_view, name="detail"),
    path("export/", views.export_view, name="export"),
    path("capture/", views.rules_view, name="rules"),
    path("capture/<id:rule_id>/", views.rule_action_view, name="rule_action"),
    path("health/", views.health_view, name="health"),
]
