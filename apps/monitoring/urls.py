"""The Monitoring page and its forms (mounted at /monitoring/ by training_hub/urls.py)."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.monitoring import views

register_url_converters()
app_name = "monitoring"

urlpatterns = [
    path("", views.monitoring_view, name="page"),
    path("rules/", views.rule_create_view, name="rule_create"),
    path("rules/<id:rule_id>/", views.rule_action_view, name="rule_action"),
    path("alerts/<id:alert_id>/ack/", views.alert_ack_view, name="alert_ack"),
]
