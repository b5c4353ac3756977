"""Dashboard pages of training runs. Run ids use the bounded `id` converter (a bad id is a 404)."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.training import views

register_url_converters()
app_name = "training"

urlpatterns = [
    path("", views.run_list_view, name="list"),
    path("new/", views.run_new_view, name="new"),
    path("compare/", views.run_compare_view, name="compare"),
    path("<id:run_id>/", views.run_detail_view, name="detail"),
    path("<id:run_id>/cancel/", views.run_cancel_view, name="cancel"),
    path("<id:run_id>/relaunch/", views.run_relaunch_view, name="relaunch"),
    path("<id:run_id>/promote/", views.run_promote_view, name="promote"),
]
