"""Base models, model versions (with lineage), deployment aliases and their history."""
from django.conf import settings
from django.db import models


class BaseModel(models.Model):
    """A model one can train from: the prepared default, or any local Hugging Face folder."""

    id = models.SlugField(primary_key=True, max_length=100)
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=1000)  # absolute path of a Hugging Face model folder
    source = models.CharField(max_length=1000, blank=True)
    architecture = models.CharField(max_length=100, blank=True)
    parameters = models.BigIntegerField(null=True, blank=True)
    context_length = models.PositiveIntegerField(default=2048)
    hidden_size = models.PositiveIntegerField(default=0)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "id"]

    def __str__(self) -> str:
        return self.id


class ModelVersion(models.Model):
    class Kind(models.TextChoices):
        ADAPTER = "adapter"  # LoRA adapter on top of base_model
        FULL = "full"  # full weights
        REMOTE = "remote"  # trained and served elsewhere (e.g. Together)

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ADAPTER)
    base_model = models.ForeignKey(BaseModel, null=True, blank=True, on_delete=models.PROTECT, related_name="versions")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    run = models.OneToOneField("training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="model_version")
    dataset_version = models.ForeignKey("datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="model_versions")
    artifact_path = models.CharField(max_length=1000, blank=True)  # relative to ARTIFACT_ROOT
    remote_model_id = models.CharField(max_length=300, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    final_loss = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def served_name(self) -> str:
        """The name the inference server knows this version by."""
        return f"mv-{self.pk}"


class Alias(models.Model):
    """A deployment alias (production, staging, ...) pointing at one model version."""

    name = models.SlugField(max_length=100, unique=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Deployment(models.Model):
    """Append-only history of what each alias pointed at, by whom, when and why: the basis of rollback."""

    alias_name = models.SlugField(max_length=100, db_index=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="deployments")
    previous_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT,
                                         related_name="+")
    # deploy | rollback | canary (a canary started: the alias still serves previous_version to most) | promote
    action = models.CharField(max_length=16, default="deploy")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)  # why (typed by the admin, or the canary monitor's breach)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class Export(models.Model):
    """One export of a model version (a job "registry.export"): the adapter folder, merged full weights, or a
    GGUF file made with llama.cpp; checked against the source version after it is written (`checks`)."""

    class Format(models.TextChoices):
        ADAPTER = "adapter"  # the PEFT adapter folder
        MERGED = "merged"  # full weights (safetensors), tokenizer, chat template, generation_config.json
        GGUF = "gguf"  # one .gguf file (llama.cpp's converter + quantizer)

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"  # written and its round-trip checks passed
        DEGRADED = "degraded"  # written, loads, but a check is past its threshold (`checks.reasons` says why)
        FAILED = "failed"  # could not be written or could not be loaded (`error`: the converter's/loader's message)
        CANCELLED = "cancelled"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=16, choices=Format.choices)
    quantization = models.CharField(max_length=16, blank=True)  # gguf only: f16, q8_0, q4_k_m, ...
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    path = models.CharField(max_length=1000, blank=True)  # relative to ARTIFACT_ROOT: the file or folder
    size_bytes = models.BigIntegerField(null=True, blank=True)
    # {"prompts": n, "perplexity": {"source", "export", "delta_pct"}, "greedy_agreement": 0..1,
    #  "tool_calls": {"total", "valid", "validity"}, "thresholds": {...}, "reasons": ["..."]}
    checks = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)  # {"merge_s", "convert_s", "quantize_s", "check_s", "peak_rss_mb"}
    llama_cpp_version = models.CharField(max_length=64, blank=True)  # the pinned llama.cpp that made a GGUF
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        q = f" {self.quantization}" if self.quantization else ""
        return f"{self.model_version.name} · {self.format}{q}"


class Bundle(models.Model):
    """A deploy bundle (a zip under ARTIFACT_ROOT/bundles/) built from one export: the model files,
    deployment_config.json, the tools config from the registry, integration examples, test_results.json and
    a model card README.md."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="bundles")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    config = models.JSONField(default=dict, blank=True)  # deployment_config.json as asked for (sampling, system prompt)
    path = models.CharField(max_length=1000, blank=True)  # relative to ARTIFACT_ROOT
    size_bytes = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class Tool(models.Model):
    """A tool in the registry: found by scanning dataset versions, or added/edited by an admin.

    `parameters` is the JSON schema of its arguments (OpenAI's `function.parameters`); `call_format` how the
    model writes a call ("bracket": ``[name: args]``, "openai": `tool_calls`, "hermes": ``<tool_call>{json}``)."""

    class Origin(models.TextChoices):
        SCAN = "scan"  # found in data, schema inferred
        ADMIN = "admin"  # defined or edited by an admin (a scan never overwrites its schema)
        BUILTIN = "builtin"  # shipped with the hub (the demo's tabletop tools)

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    call_format = models.CharField(max_length=16, default="bracket")
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.SCAN)
    # what scans saw: {"calls": n, "datasets": {version_id: n}, "argument_shapes": {...}, "examples": [...]}
    observed = models.JSONField(default=dict, blank=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
