"""The command bar's dashboard endpoint (mounted at /commands/)."""
from django.urls import path

from apps.commands import views

app_name = "commands"
urlpatterns = [
    path("preview", views.preview, name="preview"),
]
