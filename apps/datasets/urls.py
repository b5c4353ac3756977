"""Dashboard pages of datasets. Ids use the bounded `id` converter and example positions `index`, so a
malformed or out-of-range id is a 404 before any view runs."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.datasets import views

register_url_converters()
app_name = "datasets"

urlpatterns = [
    path("", views.dataset_list_view, name="list"),
    path("upload/", views.upload_view, name="upload"),
    path("<id:dataset_id>/", views.detail_view, name="detail"),
    path("<id:dataset_id>/diff/", views.diff_view, name="diff"),
    path("<id:dataset_id>/pin/", views.pin_view, name="pin"),
    path("<id:dataset_id>/export/", views.export_view, name="export"),
    path("versions/<id:version_id>/progress/", views.progress_view, name="progress"),
    path("versions/<id:version_id>/fix/", views.fix_view, name="fix"),
    path("versions/<id:version_id>/examples/<index:index>/edit/", views.edit_view, name="edit"),
]
