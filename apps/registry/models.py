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
