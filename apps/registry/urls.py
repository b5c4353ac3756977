"""Dashboard pages of the registry. Version ids use the bounded `id` converter; alias names are slugs."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.registry import views
from apps.registry.exports import views as export_views
from apps.registry.bundles import views as bundle_views
from apps.registry.tools import views as tool_views

register_url_converters()
app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="list"),
    path("tools/", tool_views.tool_list, name="tools"),  # the tool registry (issue 12)
    path("tools/save", tool_views.tool_save, name="tool_save"),
    path("tools/scan", tool_views.tool_scan, name="tool_scan"),
    path("tools/docs.md", tool_views.tool_docs, name="tool_docs"),
    path("tools/<str:name>/delete", tool_views.tool_delete, name="tool_delete"),
    path("<id:version_id>/", views.model_detail, name="detail"),
    path("<id:version_id>/deploy", views.model_deploy, name="deploy"),
    path("aliases/<slug:name>/", views.alias_detail, name="alias"),
    path("aliases/<slug:name>/rollback", views.alias_rollback, name="rollback"),
    # exports of a version (issue 12): apps/registry/exports/views.py
    path("<id:version_id>/exports", export_views.export_start, name="export_start"),
    path("<id:version_id>/exports/list", export_views.version_exports, name="export_list"),
    path("exports/<id:export_id>/", export_views.export_detail, name="export"),
    path("exports/<id:export_id>/download", export_views.export_download, name="export_download"),
    path("exports/<id:export_id>/delete", export_views.export_delete, name="export_delete"),
    path("exports/<id:export_id>/bundles", bundle_views.export_bundles, name="export_bundles"),  # issue 12
]
