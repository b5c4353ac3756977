"""Requests that came through /v1, written by a worker (never on the request path)."""
from django.conf import settings
from django.db import models


class RequestLog(models.Model):
    request_id = models.CharField(max_length=64, unique=True)
    idempotency_key = models.CharField(max_length=200, blank=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    endpoint = models.CharField(max_length=64)  # chat.completions | completions | messages
    model_requested = models.CharField(max_length=200)
    model_served = models.CharField(max_length=200, blank=True)
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="request_logs")
    stream = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField(null=True)
    ttft_ms = models.FloatField(null=True)
    prompt_tokens = models.PositiveIntegerField(null=True)
    completion_tokens = models.PositiveIntegerField(null=True)
    request = models.JSONField(default=dict)
    response = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
