"""Online experiments and guarded rollouts on a deployment alias.

- `Experiment`: an alias's traffic split across model versions (`Arm`s with weights), sticky by API key, user,
  session or request. `kind` experiment (compare arms; a sequential test on a primary metric; promote the
  winner) or canary (the alias's current version as arm `stable`, a new one as arm `canary` at X %, watched by
  the monitor actor against thresholds; rolled back on a breach, promoted after `hold_minutes`). At most one
  running experiment per alias. The proxy reads running ones with the alias's cached plan
  (apps.experiments.selectors.split_rows); every change publishes invalidation.ROUTES.
- `Exposure`: a unit (hashed sticky key) seen in an arm, written by the request-log worker; the
  sample-ratio-mismatch check counts these.
- `Feedback`: a caller's verdict on one /v1 answer, keyed by its request id (thumbs, score 0..1, comment,
  edit accepted); the experiment and arm are copied from the request's log row.
- `RolloutEvent`: what happened to a rollout and why (started, breach + rollback, promoted, stopped), with the
  metric, its value, the threshold and the window (the Monitoring page lists them via
  selectors.rollout_events_recent).
Requests carry `experiment_id` and `arm` in apps.proxy.models.RequestLog (written by the same worker).
"""
from django.conf import settings
from django.db import models


class Experiment(models.Model):
    class Kind(models.TextChoices):
        EXPERIMENT = "experiment"
        CANARY = "canary"

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        STOPPED = "stopped", "stopped"
        PROMOTED = "promoted", "promoted"
        ROLLED_BACK = "rolled_back", "rolled back"

    class StickyBy(models.TextChoices):
        API_KEY = "api_key", "API key"
        USER = "user", "user (request's user / metadata.user_id)"
        SESSION = "session", "session (X-Claude-Code-Session-Id, session-id, x-session-id)"
        REQUEST = "request", "request (no stickiness)"

    class Metric(models.TextChoices):
        FEEDBACK = "feedback", "feedback (thumbs / score)"
        ERROR_RATE = "error_rate", "error rate"
        TOOL_CALL_VALIDITY = "tool_call_validity", "tool-call validity"
        LATENCY = "latency_ms", "latency (mean of successful requests)"

    name = models.CharField(max_length=200, blank=True)
    alias = models.SlugField(max_length=100, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.EXPERIMENT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    sticky_by = models.CharField(max_length=16, choices=StickyBy.choices, default=StickyBy.API_KEY)
    metric = models.CharField(max_length=32, choices=Metric.choices, default=Metric.FEEDBACK)
    # canary: {"error_rate": 0.05, "p95_ms": 2000, "ttft_ms": ..., "tool_call_validity": 0.9, "feedback": 0.5}
    thresholds = models.JSONField(default=dict, blank=True)
    window_minutes = models.PositiveIntegerField(default=5)
    min_requests = models.PositiveIntegerField(default=20)
    hold_minutes = models.PositiveIntegerField(default=30)
    auto_promote = models.BooleanField(default=False)
    webhook_url = models.URLField(max_length=500, blank=True)
    # the monitor's memory: running minimum of each always-valid p-value, the last evaluation, readiness
    stats = models.JSONField(default=dict, blank=True)
    winner = models.CharField(max_length=16, blank=True)  # the arm promoted
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    ended_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["alias"], condition=models.Q(status="running"),
                                    name="experiments_one_running_per_alias"),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.kind} {self.pk} on {self.alias}"

    @property
    def running(self) -> bool:
        return self.status == self.Status.RUNNING


class Arm(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    name = models.CharField(max_length=16)  # A, B, ... (the first is the control); canary: stable, canary
    position = models.PositiveSmallIntegerField()
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    weight = models.PositiveIntegerField()

    class Meta:
        ordering = ["experiment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="experiments_arm_name"),
            models.UniqueConstraint(fields=["experiment", "model_version"], name="experiments_arm_version"),
        ]


class Exposure(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    arm = models.CharField(max_length=16)
    unit = models.CharField(max_length=32)  # assign.unit_hash: never the raw key, user or session
    first_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "unit", "arm"], name="experiments_exposure_once")]


class Feedback(models.Model):
    request_id = models.CharField(max_length=64, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    thumbs = models.BooleanField(null=True, blank=True)  # True up, False down
    score = models.FloatField(null=True, blank=True)  # 0..1
    value = models.FloatField()  # what the metric averages: the score, else thumbs up 1 / down 0
    comment = models.TextField(blank=True)
    edit_accepted = models.BooleanField(null=True, blank=True)
    experiment_id = models.BigIntegerField(null=True, blank=True)
    arm = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["request_id", "user"], name="experiments_feedback_once")]
        indexes = [models.Index(fields=["experiment_id", "arm"], name="experiments_feedback_arm")]


class RolloutEvent(models.Model):
    class Kind(models.TextChoices):
        STARTED = "started"
        BREACH = "breach"  # a threshold breached: the canary was rolled back
        PROMOTED = "promoted"
        STOPPED = "stopped"
        READY = "ready"  # held for hold_minutes: can be promoted

    experiment = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="events")
    alias = models.SlugField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    metric = models.CharField(max_length=32, blank=True)
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    values = models.JSONField(default=dict, blank=True)  # each arm's metrics over the window
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    webhook_status = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
