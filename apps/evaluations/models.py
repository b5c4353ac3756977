"""Reward-based evaluations: a model version (and optionally a second one, usually its parent) answers a task set;
every answer is scored by the reward components (workers.engine.rewards) with the evaluation's weights.

Contract:
- An `Evaluation` names its version (`model_version`), the version it is compared with (`compare_to`, may be
  null), where its tasks came from (`source`: a dataset version, or a list given at creation), the component
  `weights` (a preset's, or given), generation `params` ({max_new_tokens, max_tasks}) and its job
  (`evaluation.run`, apps/evaluations/jobs.py). `summary` is written when the job succeeds (stats.summarize).
- An `EvaluationTask` is one task, copied at creation: `task` is the rewards module's task dict (prompt messages,
  answer, tests, language, tools, metadata); `example_index` where it came from in the dataset version.
- An `EvaluationAnswer` is one version's answer to one task (`side` "a": the evaluated version, "b": the one
  compared with), unique per task and side: the text, `total` and `components` ({name: {score, weight, error,
  detail, skipped}}, the per-component scores), or `error` when the generation itself failed.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

SIDES = ("a", "b")


class Evaluation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Source(models.TextChoices):
        DATASET = "dataset"  # a dataset version (its validation split, or all examples)
        TASKS = "tasks"  # a JSON / JSONL list given at creation

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="evaluations")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="evaluations")
    compare_to = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="evaluations_compared")
    source = models.CharField(max_length=16, choices=Source.choices)
    dataset_version = models.ForeignKey("datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="evaluations")
    split = models.CharField(max_length=16, blank=True)  # "validation" | "all" (dataset source)
    preset = models.CharField(max_length=64, blank=True)
    weights = models.JSONField(default=dict)
    params = models.JSONField(default=dict, blank=True)  # {"max_new_tokens", "max_tasks"}
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    job = models.OneToOneField("core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluation")
    summary = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class EvaluationTask(models.Model):
    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="tasks")
    index = models.PositiveIntegerField()
    task = models.JSONField()
    example_index = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["evaluation_id", "index"]
        constraints = [models.UniqueConstraint(fields=["evaluation", "index"], name="uniq_evaluation_task_index")]


class EvaluationAnswer(models.Model):
    task = models.ForeignKey(EvaluationTask, on_delete=models.CASCADE, related_name="answers")
    side = models.CharField(max_length=1, choices=[(s, s) for s in SIDES])
    text = models.TextField(blank=True)
    total = models.FloatField(null=True, blank=True)
    components = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)
    generation_s = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task_id", "side"]
        constraints = [models.UniqueConstraint(fields=["task", "side"], name="uniq_evaluation_answer_side")]
