"""Training runs and their metric points."""
from django.conf import settings
from django.db import models


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    class Method(models.TextChoices):
        LORA = "lora"
        FULL = "full"
        SCRATCH = "scratch"
        DPO = "dpo", "DPO"  # preference pairs: a LoRA adapter trained to prefer the chosen answers
        KTO = "kto", "KTO"  # the same pairs unpaired: chosen answers desirable, rejected ones not
        GRPO = "grpo", "GRPO"  # reward-based RL on verifiable tasks (weighted reward components)
        GROW = "grow", "Grow"  # a trained from-scratch model expanded into a larger size, then trained on

    class Backend(models.TextChoices):
        LOCAL = "local"
        TOGETHER = "together"

    name = models.CharField(max_length=200, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    dataset_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="runs")
    base_model = models.ForeignKey("registry.BaseModel", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="runs")
    parent_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="continued_runs")
    method = models.CharField(max_length=16, choices=Method.choices, default=Method.LORA)
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.LOCAL)
    hyperparameters = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    current_step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)  # latest loss, tokens/s, steps/s, eta_s, ...
    output_dir = models.CharField(max_length=1000, blank=True)  # relative to ARTIFACT_ROOT
    remote_job_id = models.CharField(max_length=200, blank=True)
    # its background job (apps.core.models.Job): holder, heartbeat, phase, attempts; every status change
    # of the run goes through that job's lifecycle (apps.core.jobs.services, hooks in apps/training/jobs.py)
    job = models.OneToOneField("core.Job", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="training_run")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or f"run {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class MetricPoint(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metric_points")
    step = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, default="train")  # train | eval
    values = models.JSONField()  # loss, learning_rate, grad_norm, tokens_per_s, ...
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run_id", "step", "id"]
        indexes = [models.Index(fields=["run", "kind", "step"])]


class Checkpoint(models.Model):
    """A Trainer checkpoint on disk (weights/adapter + optimizer, scheduler and RNG state)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()  # global step (across pipeline stages)
    stage = models.PositiveIntegerField(default=0)
    path = models.CharField(max_length=1000)  # relative to ARTIFACT_ROOT
    eval_loss = models.FloatField(null=True, blank=True)
    deleted = models.BooleanField(default=False)  # rotated away (keep last K)
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run_id", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="uniq_run_checkpoint_step")]


class SavedRunConfig(models.Model):
    """A new-run form's settings saved under a name by a user (method, backend, base model and the
    hyperparameters they set), offered back on the form next to the presets."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_run_configs")
    name = models.CharField(max_length=100)
    values = models.JSONField(default=dict)  # {method, backend, base_model, hyperparameters: {...}}
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="saved_run_config_owner_name")]

    def __str__(self) -> str:
        return self.name
