"""Dashboard pages of the registry. Version ids use the bounded `id` converter; alias names are slugs."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.registry import views

register_url_converters()
app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="list"),
    path("<id:version_id>/", views.model_detail, name="detail"),
    path("<id:version_id>/deploy", views.model_deploy, name="deploy"),
    path("aliases/<slug:name>/", views.alias_detail, name="alias"),
    path("aliases/<slug:name>/rollback", views.alias_rollback, name="rollback"),
]
