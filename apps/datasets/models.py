"""Datasets and their immutable versions.

A DatasetVersion never changes once it is `ready`: every import, fix or edit makes a new one
(with `parent` pointing at what it came from). Training runs pin a version.
"""
from django.conf import settings
from django.db import models


class Dataset(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="datasets")
    created_at = models.DateTimeField(auto_now_add=True)
    # The version pinned as the dataset's current one (its owner or an admin pins it: services.dataset_pin);
    # None: the newest ready version is current (selectors.current_version).
    pinned_version = models.ForeignKey("DatasetVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def latest_version(self):
        return self.versions.order_by("-number").first()


class DatasetVersion(models.Model):
    class Status(models.TextChoices):
        IMPORTING = "importing"
        READY = "ready"
        FAILED = "failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IMPORTING)
    format = models.CharField(max_length=40, blank=True)
    # Raw upload, relative to ARTIFACT_ROOT; kept even when parsing fails.
    source_file = models.CharField(max_length=500, blank=True)
    source_name = models.CharField(max_length=255, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    example_count = models.PositiveIntegerField(default=0)
    validation = models.JSONField(default=dict, blank=True)  # {"errors": [...], "warnings": [...]}
    stats = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    # Validation target (local | openai | together), base model used for token counts, split ratio.
    target = models.CharField(max_length=16, default="local")
    base_model_id = models.CharField(max_length=100, blank=True)
    split_ratio = models.FloatField(default=0.1)
    # Live import progress: {"examples": N, "total": N | null, "stage": "..."}.
    progress = models.JSONField(default=dict, blank=True)
    # The background job that imports (or derives) it (apps.core.models.Job): which process holds it,
    # its heartbeat, phase and progress; a version whose holder died is re-queued or failed by the job
    # reconciler (apps.core.jobs.reconcile, hooks in apps/datasets/jobs.py).
    job = models.OneToOneField("core.Job", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="dataset_version")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="uniq_dataset_version_number")]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"

    @property
    def error_count(self) -> int:
        return len((self.validation or {}).get("errors", []))

    @property
    def warning_count(self) -> int:
        return len((self.validation or {}).get("warnings", []))


class Example(models.Model):
    """One normalized training example: chat messages (+ tools, per-turn weight)."""

    class Split(models.TextChoices):
        TRAIN = "train"
        VALIDATION = "validation"

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="examples")
    index = models.PositiveIntegerField()
    messages = models.JSONField()
    tools = models.JSONField(null=True, blank=True)
    source_file = models.CharField(max_length=500, blank=True)
    source_line = models.PositiveIntegerField(null=True, blank=True)
    category = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=list, blank=True)
    content_hash = models.CharField(max_length=64, db_index=True)
    split = models.CharField(max_length=16, choices=Split.choices, default=Split.TRAIN)
    token_count = models.PositiveIntegerField(null=True, blank=True)
    # Content tokens per role ({"user": n, "assistant": n, ...}) with the version's tokenizer: with
    # token_count, the per-example figures a derived version's statistics are recomputed from when the
    # example is carried over unchanged (apps.datasets.services.versions.Unchanged). Null: not counted.
    role_tokens = models.JSONField(null=True, blank=True)
    # Its MinHash signature for near-duplicate detection (apps.datasets.validation.dedup.pack: a version byte and
    # 32 uint32): a version that carries the example over unchanged uses it instead of hashing the text again.
    # Null: not computed (rows written by other means, or before this field).
    minhash = models.BinaryField(null=True, blank=True)
    # Issue codes raised on this example, as "|code|code|" so that a filter is a plain `contains`.
    issues = models.CharField(max_length=400, blank=True, default="")
    # Row shape it came from ({"kind": "chat" | "text" | "prompt_completion" | "preference", ...}).
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["version_id", "index"]
        constraints = [models.UniqueConstraint(fields=["version", "index"], name="uniq_example_index")]
