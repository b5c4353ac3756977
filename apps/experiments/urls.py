"""Dashboard pages of experiments and rollouts. Ids use the bounded `id` converter."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.experiments import views

register_url_converters()
app_name = "experiments"

urlpatterns = [
    path("", views.experiment_list, name="list"),
    path("<id:experiment_id>/", views.experiment_detail, name="detail"),
    path("<id:experiment_id>/action", views.experiment_action, name="action"),
]
