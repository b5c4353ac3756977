"""/v1: OpenAI- and Anthropic-compatible endpoints (mounted by training_hub/urls.py), and the playground."""
from django.urls import path, re_path

from apps.proxy import anthropic, views
from apps.proxy import responses as responses_api
from apps.traffic import views as traffic_views

app_name = "proxy"

urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat_completions"),
    path("completions", views.completions, name="completions"),
    path("models", views.models, name="models"),
    path("models/<path:model_id>", views.model_detail, name="model_detail"),
    path("messages", anthropic.messages, name="messages"),
    path("messages/count_tokens", anthropic.count_tokens, name="count_tokens"),
    path("responses", responses_api.responses, name="responses"),
    path("health", traffic_views.health_json, name="health"),  # apps/traffic: per-target health
    path("playground/", views.playground, name="playground"),
    re_path(r"^(?P<rest>.*)$", views.not_found),
]
