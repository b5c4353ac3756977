"""The proxy's rows: upstream providers, the fallback chain of each alias, and the requests that came
through /v1 (written by a worker, never on the request path).

A chain is keyed by the alias *name*, not by a foreign key to registry.Alias: an alias can exist only as a
chain of provider models (a registry alias always points at a model version), and a registry alias without a
chain serves its deployed version alone."""
from django.conf import settings
from django.db import models


class Provider(models.Model):
    """An upstream the hub calls besides its own inference process: an OpenAI-compatible server (vLLM,
    llama.cpp, OpenAI, Together, OpenRouter, Gemini's OpenAI endpoint, ...) or Anthropic's Messages API.
    The key is stored encrypted (apps.proxy.crypto) and never leaves the server."""

    class Kind(models.TextChoices):
        OPENAI = "openai"
        ANTHROPIC = "anthropic"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.OPENAI)
    base_url = models.CharField(max_length=500)
    api_key_encrypted = models.TextField(blank=True)
    connect_timeout_s = models.FloatField(default=5.0)
    first_byte_timeout_s = models.FloatField(default=60.0)
    total_timeout_s = models.FloatField(default=600.0)
    max_concurrency = models.PositiveIntegerField(null=True, blank=True)  # None: no cap
    context_length = models.PositiveIntegerField(null=True, blank=True)  # None: unknown (no pre-check)
    enabled = models.BooleanField(default=True)
    model_ids = models.JSONField(default=list, blank=True)  # ids from the last GET {base}/models
    models_fetched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_key(self) -> bool:
        return bool(self.api_key_encrypted)


class AliasChain(models.Model):
    """An alias's ordered fallback targets and the settings applied to every request on it."""

    name = models.SlugField(max_length=100, unique=True)
    temperature = models.FloatField(null=True, blank=True)  # used when a request sets none
    max_tokens = models.PositiveIntegerField(null=True, blank=True)  # cap (and default) on the answer's tokens
    timeout_s = models.FloatField(null=True, blank=True)  # per target: to the first byte and in total
    system_prefix = models.TextField(blank=True)
    tools_allow = models.JSONField(null=True, blank=True)  # tool names that reach the model; None: all
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ChainTarget(models.Model):
    """One step of a chain: a hub model version, or a model of a provider."""

    chain = models.ForeignKey(AliasChain, on_delete=models.CASCADE, related_name="targets")
    position = models.PositiveSmallIntegerField()
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="chain_targets")
    provider = models.ForeignKey(Provider, null=True, blank=True, on_delete=models.PROTECT, related_name="targets")
    model = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["chain", "position"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "position"], name="proxy_chain_target_position"),
            models.CheckConstraint(
                condition=(models.Q(model_version__isnull=False, provider__isnull=True)
                           | models.Q(model_version__isnull=True, provider__isnull=False)),
                name="proxy_chain_target_one_kind"),
        ]


class RequestLog(models.Model):
    request_id = models.CharField(max_length=64, unique=True)
    idempotency_key = models.CharField(max_length=200, blank=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    api_key_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    endpoint = models.CharField(max_length=64)  # chat.completions | completions | messages
    model_requested = models.CharField(max_length=200)
    alias = models.CharField(max_length=200, blank=True, db_index=True)  # the requested name, when an alias
    model_served = models.CharField(max_length=200, blank=True)
    served_by = models.CharField(max_length=300, blank=True, db_index=True)  # version:12 | provider:NAME/MODEL
    fallback = models.BooleanField(default=False)  # served by other than the chain's first target
    attempts = models.JSONField(default=list, blank=True)  # [{target, status, error, ms}]
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="request_logs")
    stream = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField(null=True)
    ttft_ms = models.FloatField(null=True)
    upstream_ms = models.FloatField(null=True)  # waiting on upstreams (every attempt) until the answer began
    overhead_ms = models.FloatField(null=True)  # the hub's own time until the answer began
    prompt_tokens = models.PositiveIntegerField(null=True)
    completion_tokens = models.PositiveIntegerField(null=True)
    tools_dropped = models.PositiveIntegerField(default=0)  # tools the alias's allow-list removed
    request = models.JSONField(default=dict)
    response = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)
    # the online experiment / canary (apps.experiments) whose arm served the request, when one ran on the alias
    experiment_id = models.BigIntegerField(null=True, blank=True)
    arm = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["experiment_id", "arm", "created_at"], name="proxy_reqlog_experiment")]
