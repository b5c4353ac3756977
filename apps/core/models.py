"""The one record of every background job (a dataset import, a local or remote training run, and every
later kind): its lifecycle state, who holds it, how far it got, and enough to send its message again.

Only `apps.core.jobs.services` and `apps.core.jobs.reconcile` change a Job. A domain row (TrainingRun,
DatasetVersion, ...) links to its Job with a one-to-one field; the Job points back through `target`
(content type + id), so core knows no app and any later kind can use it without a migration here.
"""
from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=64, db_index=True)  # a registered kind: "training.local", ...
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    phase = models.CharField(max_length=40, blank=True)  # free per kind: loading, training, evaluating, ...
    progress = models.JSONField(default=dict, blank=True)  # {current, total, unit, message}
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="jobs")
    target_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    target_id = models.PositiveBigIntegerField(null=True, blank=True)
    target = GenericForeignKey("target_type", "target_id")
    # liveness: the process working on it ("host:pid", apps.core.liveness) and when it last showed life
    holder = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.CharField(max_length=500, blank=True)  # one line, fit to show a user
    error_code = models.CharField(max_length=40, blank=True)  # E_TRAIN_FAILED, E_OOM, E_WORKER_LOST, ...
    # times this job was handed to a worker: 1 at creation, +1 each time the reconciler sends it again
    attempts = models.PositiveIntegerField(default=1)
    # how to send its message again (a lost message, a dead holder, a retry)
    actor_name = models.CharField(max_length=100, blank=True)
    queue_name = models.CharField(max_length=50, blank=True)
    args = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)  # its message was last sent then
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)  # remote jobs: when its next poll is due
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "kind"], name="core_job_status_kind"),
                   models.Index(fields=["target_type", "target_id"], name="core_job_target")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE
