"""Proxy traffic as data: the searchable index of request logs, capture rules and traffic exports.

- `RequestEntry`: one per `proxy.RequestLog`, written next to it by the worker (services.capture, called from
  apps.proxy.services.request_log_record). It holds what the Requests page and the health page filter and
  aggregate on (copied from the log, so every index here is this app's own) and the extracted conversation
  text with its PostgreSQL full-text vector (GIN index, created by migration 0001 on PostgreSQL only).
- `CaptureRule`: "keep P% of alias/model X in dataset Y". Sampled requests wait as `CaptureItem`s until a
  batch is cut into a new dataset version (services.capture_flush).
- `TrafficExport`: one conversion of requests into a new dataset version (a selection, a filter, or a capture
  batch), with its counts (exported, failed skipped, duplicates, ...). Its version's job is "traffic.export".
"""
from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class RequestEntry(models.Model):
    log = models.OneToOneField("proxy.RequestLog", primary_key=True, on_delete=models.CASCADE,
                               related_name="traffic_entry")
    created_at = models.DateTimeField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    api_key_id = models.BigIntegerField(null=True, blank=True)
    endpoint = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=200, blank=True)  # the name the client asked for
    alias = models.CharField(max_length=200, blank=True)  # that name, when it was an alias
    # The target that answered (`provider:openrouter/gpt-4o`, `version:12`); before the proxy reported it,
    # `version:<id>` or the upstream model name.
    served_by = models.CharField(max_length=300, blank=True)
    fallback = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(default=0)
    latency_ms = models.FloatField(null=True, blank=True)
    stream = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    preview = models.CharField(max_length=300, blank=True)  # the start of the last user turn
    text = models.TextField(blank=True)  # the conversation as plain text (search; the SQLite fallback)
    search = SearchVectorField(null=True, blank=True)  # PostgreSQL only: to_tsvector(FTS_CONFIG, text)

    class Meta:
        ordering = ["-created_at", "-log_id"]
        indexes = [
            models.Index(fields=["-created_at", "-log"], name="traffic_entry_time"),
            models.Index(fields=["user", "-created_at"], name="traffic_entry_user_time"),
            models.Index(fields=["model", "-created_at"], name="traffic_entry_model_time"),
            models.Index(fields=["served_by", "-created_at"], name="traffic_entry_target_time"),
            models.Index(fields=["api_key_id", "-created_at"], name="traffic_entry_key_time"),
        ]


class CaptureRule(models.Model):
    # fnmatch pattern matched against the alias and the requested model: `production`, `gpt-*`, `*`
    pattern = models.CharField(max_length=200)
    percentage = models.FloatField(validators=[MinValueValidator(0.01), MaxValueValidator(100)])
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="capture_rules")
    enabled = models.BooleanField(default=True)
    # Only requests that finished cleanly (2xx, not cut by max tokens, not a broken stream). Failed requests
    # (status >= 400) are never captured: they have no answer to learn from.
    only_successful = models.BooleanField(default=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    captured = models.PositiveBigIntegerField(default=0)  # requests sampled into the buffer, ever
    last_cut_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.percentage:g}% of {self.pattern} → {self.dataset_id}"


class TrafficExport(models.Model):
    class Source(models.TextChoices):
        SELECTION = "selection"
        FILTER = "filter"
        CAPTURE = "capture"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices)
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="traffic_exports")
    version = models.OneToOneField("datasets.DatasetVersion", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="traffic_export")
    rule = models.ForeignKey(CaptureRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="exports")
    # what was chosen: {"ids": [...]} or {"filters": {...}, "until_id": N}; a capture batch: its CaptureItems
    spec = models.JSONField(default=dict, blank=True)
    # {"selected", "exported", "failed", "duplicates", "in_parent", "unsupported", "truncated", "fallback"}
    counts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class CaptureItem(models.Model):
    """A request sampled by a rule, waiting for its batch (`export` is set when a batch takes it)."""

    rule = models.ForeignKey(CaptureRule, on_delete=models.CASCADE, related_name="items")
    log = models.ForeignKey("proxy.RequestLog", on_delete=models.CASCADE, related_name="+")
    export = models.ForeignKey(TrafficExport, null=True, blank=True, on_delete=models.SET_NULL, related_name="items")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "log"], name="traffic_capture_item_once")]
        indexes = [models.Index(fields=["rule", "export", "created_at"], name="traffic_capture_pending")]
