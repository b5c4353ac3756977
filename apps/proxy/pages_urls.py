"""Dashboard pages of providers and alias chains (mounted at /proxy/ by training_hub/urls.py)."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.proxy import pages

register_url_converters()
app_name = "proxy_pages"

urlpatterns = [
    path("providers/", pages.provider_list, name="providers"),
    path("providers/<id:provider_id>/", pages.provider_detail, name="provider"),
    path("providers/<id:provider_id>/models", pages.provider_fetch_models, name="provider_models"),
    path("providers/<id:provider_id>/delete", pages.provider_delete, name="provider_delete"),
    path("chains/new", pages.chain_new, name="chain_new"),
    path("aliases/<slug:name>/chain", pages.chain_edit, name="chain"),
    path("aliases/<slug:name>/chain/delete", pages.chain_remove, name="chain_delete"),
]
