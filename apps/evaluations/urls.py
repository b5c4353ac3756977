"""Evaluation pages (mounted at /evaluations/). Ids use the bounded `id` converter."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.evaluations import views

register_url_converters()
app_name = "evaluations"

urlpatterns = [
    path("", views.evaluation_list_view, name="list"),
    path("new/", views.evaluation_new_view, name="new"),
    path("<id:evaluation_id>/", views.evaluation_detail_view, name="detail"),
    path("<id:evaluation_id>/tasks/<id:task_id>/", views.task_view, name="task"),
    path("<id:evaluation_id>/cancel/", views.cancel_view, name="cancel"),
]
