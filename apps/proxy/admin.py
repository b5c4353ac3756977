from django.contrib import admin

from apps.proxy.models import RequestLog


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    list_display = ("created_at", "endpoint", "model_requested", "model_served", "status_code", "stream",
                    "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "user")
    list_filter = ("endpoint", "status_code", "stream")
    search_fields = ("request_id", "idempotency_key", "model_requested")
