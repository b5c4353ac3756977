from django.urls import path

from apps.datasets import views

app_name = "datasets"

urlpatterns = [
    path("", views.dataset_list_view, name="list"),
    path("upload/", views.upload_view, name="upload"),
    path("<int:dataset_id>/", views.detail_view, name="detail"),
    path("<int:dataset_id>/diff/", views.diff_view, name="diff"),
    path("<int:dataset_id>/export/", views.export_view, name="export"),
    path("versions/<int:version_id>/progress/", views.progress_view, name="progress"),
    path("versions/<int:version_id>/fix/", views.fix_view, name="fix"),
    path("versions/<int:version_id>/examples/<int:index>/edit/", views.edit_view, name="edit"),
]
