"""Dashboard pages of code sources (mounted at /sources/). Ids use the bounded `id` converter, so a malformed
or out-of-range id is a 404 before any view runs."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.sources import views

register_url_converters()
app_name = "sources"

urlpatterns = [
    path("", views.source_list_view, name="list"),
    path("new/", views.source_new_view, name="new"),
    path("new/discover/", views.discover_view, name="discover"),
    path("demo/", views.demo_view, name="demo"),
    path("<id:source_id>/", views.source_detail_view, name="detail"),
    path("<id:source_id>/analyse/", views.analyse_view, name="analyse"),
    path("<id:source_id>/rules/", views.rules_view, name="rules"),
    path("<id:source_id>/delete/", views.delete_view, name="delete"),
    path("<id:source_id>/generate/", views.generate_view, name="generate"),
    path("generations/<id:generation_id>/", views.generation_view, name="generation"),
    path("generations/<id:generation_id>/cancel/", views.generation_cancel_view, name="generation_cancel"),
    path("generations/<id:generation_id>/bundle/", views.bundle_view, name="bundle"),
    path("provenance/<id:example_id>/", views.provenance_view, name="provenance"),
]
