from django.urls import path

from apps.training import views

app_name = "training"

urlpatterns = [
    path("", views.run_list_view, name="list"),
    path("new/", views.run_new_view, name="new"),
    path("compare/", views.run_compare_view, name="compare"),
    path("<int:run_id>/", views.run_detail_view, name="detail"),
    path("<int:run_id>/cancel/", views.run_cancel_view, name="cancel"),
    path("<int:run_id>/relaunch/", views.run_relaunch_view, name="relaunch"),
    path("<int:run_id>/promote/", views.run_promote_view, name="promote"),
]
