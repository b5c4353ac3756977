from django.urls import path

from apps.registry import views

app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="list"),
    path("<int:version_id>/", views.model_detail, name="detail"),
    path("<int:version_id>/deploy", views.model_deploy, name="deploy"),
    path("aliases/<slug:name>/rollback", views.alias_rollback, name="rollback"),
]
